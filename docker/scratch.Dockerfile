# syntax=docker/dockerfile:1
# Images FROM scratch around host-built static binaries, for machines that cannot
# pull a base image. Build the binaries first (static glibc, name resolution works):
#
#   RUSTFLAGS="-C target-feature=+crt-static" cargo build --release \
#       --target x86_64-unknown-linux-gnu -p seshat-server -p seshat-operator
#   mkdir -p docker/context && cp target/x86_64-unknown-linux-gnu/release/{seshat,seshat-operator} docker/context/
#
# then one image per target:
#
#   docker build -f docker/scratch.Dockerfile --target server   -t seshat:0.1.0          docker/context
#   docker build -f docker/scratch.Dockerfile --target operator -t seshat-operator:0.1.0 docker/context
#
# The binaries keep their executable mode from the build context (no COPY --chmod,
# so the classic builder works too). Both run as uid 65532 and need no writable root filesystem. There is no shell and
# no CA bundle in these images: the server needs neither, and the operator reaches the
# API server with the service account's own CA (mounted by Kubernetes).

FROM scratch AS server
COPY seshat /usr/local/bin/seshat
# Numeric uid/gid (no /etc/passwd). The data dir and /tmp are volumes in Kubernetes.
USER 65532:65532
EXPOSE 6379 7379 8080
ENTRYPOINT ["/usr/local/bin/seshat"]
CMD ["serve", "--data-dir=/var/lib/seshat/data"]

FROM scratch AS operator
COPY seshat-operator /usr/local/bin/seshat-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/seshat-operator"]
CMD ["run"]
