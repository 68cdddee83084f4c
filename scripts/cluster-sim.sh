#!/usr/bin/env bash
# Cluster-scale model and its validation (BENCHMARKS.md "Cluster scale"): prints
# Key Vault requests per 10 s and Entra ID requests per minute by provider for
# the mix below, the largest cluster under Key Vault's 4,000 requests per 10 s
# per vault, then plays the same (time-compressed) schedule against 8 release
# provider processes and fails if the fake's counts differ from the model by
# more than 10 %. Bounded: about 2 minutes after the build. Not part of
# scripts/test.sh. Extra arguments go to the simulator (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
# Separate invocations, binary last: building the example unifies dev-dependency
# features into the library (see BENCHMARKS.md, build note).
cargo build --release --locked --example cluster_sim
cargo build --release --locked --bin rust-azure-provider
exec target/release/examples/cluster_sim \
  --pods 30 --identities 3 --objects 3 --rotation 2m \
  --provider target/release/rust-azure-provider --validate "$@"
