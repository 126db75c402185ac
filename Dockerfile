# syntax=docker/dockerfile:1
# The ferrocert image: one static binary (/ferrocert) on distroless "static" (CA certificates,
# /etc/passwd with the nonroot user, nothing else: no shell, no libc), running as uid 65532.
#
#   docker build -t ghcr.io/ferrocert/ferrocert:0.1.0 .
#
# Builds linux/amd64 (x86_64-unknown-linux-musl). On another host architecture add
# `--platform linux/amd64`.

FROM rust:1.95-bookworm AS build
# musl-gcc compiles aws-lc-sys's C code for the musl target (its cc builder; no cmake or bindgen
# needed: the crate ships pre-generated bindings for x86_64-unknown-linux-musl).
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin ferrocert --target x86_64-unknown-linux-musl \
 && cp target/x86_64-unknown-linux-musl/release/ferrocert /ferrocert

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="ferrocert" \
      org.opencontainers.image.description="Kubernetes operator that obtains TLS certificates from ACME CAs and keeps them renewed in Secrets" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /ferrocert /ferrocert
USER 65532:65532
ENTRYPOINT ["/ferrocert"]
