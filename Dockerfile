# syntax=docker/dockerfile:1
# The provider's image on a machine with Docker: build the static musl binary, then ship it on
# scratch with the same runtime layout as Containerfile (which scripts/image.sh builds offline
# with buildah): /bin/rust-azure-provider, /etc/ssl/certs/ca-certificates.crt, /etc/passwd and
# /etc/group, one layer, user 65532.
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools=1.2.3-1 \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
COPY src ./src
# Cargo.toml declares these targets; cargo refuses a manifest whose targets are missing.
COPY benches ./benches
COPY examples ./examples
COPY deploy/image/etc /rootfs/etc
# No .git in the build context: the commit for rust_azure_provider_build_info comes from here
# (docker build --build-arg REVISION=$(git rev-parse --short=12 HEAD)).
ARG REVISION=unknown
RUN RUST_AZURE_PROVIDER_BUILD_COMMIT="${REVISION}" CC_x86_64_unknown_linux_musl=musl-gcc cargo build --release --locked --target x86_64-unknown-linux-musl --bin rust-azure-provider \
 && install -D -m 0755 target/x86_64-unknown-linux-musl/release/rust-azure-provider /rootfs/bin/rust-azure-provider \
 && install -D -m 0644 /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ca-certificates.crt \
 && chmod 0644 /rootfs/etc/passwd /rootfs/etc/group

FROM scratch
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="rust-azure-provider" \
      org.opencontainers.image.description="Secrets Store CSI Driver provider for Azure Key Vault" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /rootfs/ /
# The DaemonSet runs it as root because the socket directory (a hostPath) is root-owned.
USER 65532:65532
ENTRYPOINT ["/bin/rust-azure-provider"]
