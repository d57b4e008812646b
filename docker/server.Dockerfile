# syntax=docker/dockerfile:1
# The Seshat server image (`seshat serve`), built from source in a multi-stage build.
#   docker build -f docker/server.Dockerfile -t seshat:0.1.0 .
# Runs as uid 65532 with a read-only root filesystem: everything it writes goes to
# the data dir (a PVC at /var/lib/seshat) and /tmp (an emptyDir), as the operator's
# StatefulSet mounts them.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Static glibc binary: the runtime stage has no libc at all.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked -p seshat-server --bin seshat --target x86_64-unknown-linux-gnu \
 && install -D target/x86_64-unknown-linux-gnu/release/seshat /out/seshat \
 && install -d -m 0755 /out/rootfs/var/lib/seshat /out/rootfs/tmp

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/seshat /usr/local/bin/seshat
COPY --from=build --chown=65532:65532 /out/rootfs/var/lib/seshat /var/lib/seshat
USER 65532:65532
EXPOSE 6379 7379 8080
VOLUME ["/var/lib/seshat"]
ENTRYPOINT ["/usr/local/bin/seshat"]
CMD ["serve", "--data-dir=/var/lib/seshat/data"]
