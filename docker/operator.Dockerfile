# syntax=docker/dockerfile:1
# The operator image (`seshat-operator run`), built from source in a multi-stage build.
#   docker build -f docker/operator.Dockerfile -t seshat-operator:0.1.0 .
# Stateless: runs as uid 65532 with a read-only root filesystem and writes nothing.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked -p seshat-operator --bin seshat-operator --target x86_64-unknown-linux-gnu \
 && install -D target/x86_64-unknown-linux-gnu/release/seshat-operator /out/seshat-operator

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/seshat-operator /usr/local/bin/seshat-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/seshat-operator"]
CMD ["run"]
