#!/usr/bin/env bash
# Standard benchmark scenarios (BENCHMARKS.md): builds release, runs the load
# generator against the release binary, prints one table per scenario and
# collects the BENCH_JSON lines in target/bench/results.jsonl. Bounded: every
# scenario has a Mount count and a --max-duration; the whole run takes 2-4 min.
# Not part of the CI test script. BENCH_QUICK=1 runs smaller counts.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== machine"
echo "nproc: $(nproc)"
lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core|Socket|Hypervisor)' || true
free -m | sed -n 1,2p
echo "uptime: $(uptime)"

echo "== build (release)"
# Two invocations: building the example unifies dev-dependency features into
# the library, so the binary is built (and uplifted) on its own, last.
cargo build --release --locked --example loadgen
cargo build --release --locked --bin rust-azure-provider
BIN=target/release/rust-azure-provider
LOADGEN=target/release/examples/loadgen
ls -l "$BIN"

mkdir -p target/bench
OUT=target/bench/results.jsonl
: > "$OUT"
q=${BENCH_QUICK:-0}
n() { if [ "$q" = 1 ]; then echo "$2"; else echo "$1"; fi; }

TMP=$(mktemp)
trap 'rm -f "$TMP"' EXIT
run() {
  echo
  echo "== $1 (load: $(cut -d' ' -f1-3 /proc/loadavg))"
  local rc=0
  "$LOADGEN" --provider "$BIN" --name "$@" > "$TMP" || rc=$?
  grep -v '^BENCH_JSON ' "$TMP" || true
  sed -n 's/^BENCH_JSON //p' "$TMP" >> "$OUT"
  return "$rc"
}

# 1. 50 secrets, 50 ms Key Vault round trip, warm token, one Mount at a time:
#    the default per-vault limit (64, one wave), then the former default of 16 (four waves).
run latency50 --objects 50 --kv-latency 50ms --mounts "$(n 30 10)" --concurrency 1 --warmup 3
run latency50-limit16 --objects 50 --kv-latency 50ms --mounts "$(n 30 10)" --concurrency 1 --warmup 3 \
  -- --max-concurrent-per-vault=16
# 2. Warm steady state: sequential Mounts of 10 identities -> GETs and token requests per Mount.
run steady --objects 5 --mounts "$(n 1000 200)" --concurrency 1 --identities 10 --warmup 20
# 3. Coalescing: 200 identical Mounts (one identity) at once, 50 ms round trip.
run coalesce --objects 5 --kv-latency 50ms --mounts 200 --concurrency 200 --identities 1 --warmup 200
# 4. Memory: 200 concurrent Mounts of 5 objects, 200 distinct identities (nothing coalesces).
run peak200 --objects 5 --kv-latency 50ms --mounts 200 --concurrency 200 --identities 200 --warmup 0
# 5. Throughput: one small secret, zero-latency fake, 64 in flight, 64 identities.
run throughput --objects 1 --mounts "$(n 20000 4000)" --concurrency 64 --identities 64 --max-duration 40s
# 6. Start-up to serving: 11 spawns, median.
run startup --objects 1 --mounts 10 --concurrency 1 --warmup 1 --startup-runs 11

echo
echo "== binary"
ls -l "$BIN"
echo "results: $OUT"
