# syntax=docker/dockerfile:1
# Build a static binary, then ship it alone on a distroless base that carries
# CA certificates (Entra ID and Key Vault use TLS).
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools=1.2.3-1 \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
COPY src ./src
RUN cargo build --release --locked --target x86_64-unknown-linux-musl \
 && cp target/x86_64-unknown-linux-musl/release/rust-azure-provider /rust-azure-provider

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="rust-azure-provider" \
      org.opencontainers.image.description="Secrets Store CSI Driver provider for Azure Key Vault" \
      org.opencontainers.image.licenses="MIT"
COPY --from=build /rust-azure-provider /bin/rust-azure-provider
# The socket directory is a hostPath owned by root; the DaemonSet runs as root
# when the driver requires it and as this non-root user otherwise.
USER 65532:65532
ENTRYPOINT ["/bin/rust-azure-provider"]
