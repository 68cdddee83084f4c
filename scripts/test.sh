#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test. README.md names this
# command and .ci/run calls it; it installs what it needs itself.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d ../shared/testdata/keyvault-responses ]; then
  echo "error: ../shared/testdata/keyvault-responses is missing; the shared/ directory must sit beside this checkout" >&2
  exit 1
fi

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --locked --no-fail-fast 2>&1 | tee target/cargo-test.log
echo "== cargo doc"
RUSTDOCFLAGS=-Dwarnings cargo doc --no-deps --locked --quiet
