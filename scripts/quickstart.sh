#!/usr/bin/env bash
# The main job: the seed walkthrough on this machine, with no Azure and no cluster.
# Builds the release provider and the quickstart example, then runs the example against the
# release binary: an Azure stand-in (Entra ID / Key Vault behind a recording proxy with a
# generated CA, NMI on 127.0.0.1:2579), the provider on a temporary socket, the shipped `mount` subcommand as the driver,
# and the synced Secret. Ends with SECRET=hVFkk965BuUv; exits non-zero on any failure.
# Extra arguments go to the example, e.g. --keep-running.
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir="${CARGO_TARGET_DIR:-target}"
cargo build --release --locked --bin rust-azure-provider --example quickstart
exec "$target_dir/release/examples/quickstart" \
  --provider-bin "$target_dir/release/rust-azure-provider" \
  --spc deploy/examples/seed-secretproviderclass.yaml \
  --pod deploy/examples/seed-pod.yaml \
  "$@"
