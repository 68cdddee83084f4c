#!/usr/bin/env bash
# Cross-language interop tests of the shipped binary: the Secrets Store CSI
# Driver's own Go client code (v1.6.0 and v1.5.x) and Python grpcio/grpcurl.
# Fails loudly when Go, the Go modules or the Python packages cannot be had.
# See tests/interop/README.md.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

die() {
  echo "interop: error: $*" >&2
  exit 1
}

echo "== interop: cargo build --locked (provider and the quickstart's Azure stand-in)"
cargo build --locked --bin rust-azure-provider --example quickstart || die "cargo build failed"
export RUST_AZURE_PROVIDER_BIN="$ROOT/target/debug/rust-azure-provider"
[ -x "$RUST_AZURE_PROVIDER_BIN" ] || die "$RUST_AZURE_PROVIDER_BIN was not built"

# Full mode: the quickstart keeps its Azure stand-in (Entra ID, NMI, Key Vault
# behind a recording proxy with a generated CA) running, and every provider the
# tests start reaches it through its normal outbound path. The provider-specific
# env twins are used (not HTTPS_PROXY) so the gRPC clients under test are not
# sent through the proxy themselves.
STANDIN_LOG="$ROOT/target/interop-standin.log"
"$ROOT/target/debug/examples/quickstart" --provider-bin "$RUST_AZURE_PROVIDER_BIN" --keep-running >"$STANDIN_LOG" 2>&1 &
STANDIN_PID=$!
trap 'kill -TERM $STANDIN_PID 2>/dev/null; wait $STANDIN_PID 2>/dev/null' EXIT
for _ in $(seq 1 600); do
  grep -q '^METRICS_ADDR=' "$STANDIN_LOG" 2>/dev/null && break
  kill -0 $STANDIN_PID 2>/dev/null || { cat "$STANDIN_LOG" >&2; die "the quickstart stand-in exited early"; }
  sleep 0.1
done
grep -q '^METRICS_ADDR=' "$STANDIN_LOG" || { cat "$STANDIN_LOG" >&2; die "the quickstart stand-in did not start within 60s"; }
grep -q '^SECRET=hVFkk965BuUv$' "$STANDIN_LOG" || { cat "$STANDIN_LOG" >&2; die "the quickstart did not print SECRET=hVFkk965BuUv"; }
grep -q 'certificate-backed secret ingress-cert' "$STANDIN_LOG" || { cat "$STANDIN_LOG" >&2; die "the stand-in vault does not hold ingress-cert (the certificate scenario)"; }
grep -q 'JSON secret db-config' "$STANDIN_LOG" || { cat "$STANDIN_LOG" >&2; die "the stand-in vault does not hold db-config (the jmesPath scenario)"; }
RUST_AZURE_PROVIDER_OUTBOUND_PROXY=$(sed -n 's/^HTTPS_PROXY=//p' "$STANDIN_LOG")
RUST_AZURE_PROVIDER_CA_BUNDLE=$(sed -n 's/^CA_BUNDLE=//p' "$STANDIN_LOG")
export RUST_AZURE_PROVIDER_OUTBOUND_PROXY RUST_AZURE_PROVIDER_CA_BUNDLE
export RUST_AZURE_INTEROP_FULL=1
echo "== interop: full mode (Azure stand-in at $RUST_AZURE_PROVIDER_OUTBOUND_PROXY)"

command -v go >/dev/null 2>&1 || die "go is not installed (needed for the driver-client interop tests; Go >= 1.25)"
PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON is not installed (needed for the grpcio interop tests; Python >= 3.11)"

failed=()

run_go() {
  local label=$1
  shift
  echo "== interop: go test ($label)"
  local start=$SECONDS
  if (cd "$ROOT/tests/interop/go" && go test -count=1 -v "$@" ./...); then
    echo "== interop: go test ($label) passed in $((SECONDS - start))s"
  else
    echo "== interop: go test ($label) FAILED after $((SECONDS - start))s" >&2
    failed+=("go test ($label)")
  fi
}

# The Go build does not record -modfile: tell TestDriverVersionUnderTest which one is in use.
RUST_AZURE_INTEROP_MODFILE=go.mod run_go "driver v1.6.0, go.mod"
RUST_AZURE_INTEROP_MODFILE=go.v15.mod run_go "driver v1.5.6, go.v15.mod" -modfile=go.v15.mod

echo "== interop: python venv"
VENV="$ROOT/target/interop-venv"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV" || die "cannot create $VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/interop/python/requirements.txt \
  || die "pip install -r tests/interop/python/requirements.txt failed"

echo "== interop: pytest"
if (cd "$ROOT/tests/interop/python" && "$VENV/bin/python" -m pytest -p no:cacheprovider -v -rfE); then
  :
else
  failed+=("pytest")
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "interop: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "interop: all passed"
