#!/usr/bin/env bash
# Short fuzzing runs of every target under fuzz/ (cargo-fuzz, nightly toolchain).
#
#   scripts/fuzz.sh            # every target, 20 s each
#   FUZZ_SECONDS=60 scripts/fuzz.sh render_pkcs12 parse_params
#
# The committed seeds in fuzz/corpus/<target>/ are read-only inputs; what libFuzzer
# finds goes to a scratch corpus under fuzz/target/. A crash leaves its input under
# fuzz/artifacts/<target>/ and makes the script exit non-zero.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${FUZZ_SECONDS:-20}"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"

if ! cargo "+$toolchain" --version >/dev/null 2>&1; then
  echo "error: the $toolchain toolchain is missing (rustup toolchain install $toolchain)" >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo "+$toolchain" fuzz list)
fi

cargo "+$toolchain" fuzz build -O

status=0
for t in "${targets[@]}"; do
  scratch="target/scratch-corpus/$t"
  mkdir -p "$scratch"
  start=$(date +%s)
  if cargo "+$toolchain" fuzz run -O "$t" "$scratch" "corpus/$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
      >"target/fuzz-$t.log" 2>&1; then
    result=ok
  else
    result=FAILED
    status=1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "target/fuzz-$t.log" | grep -o '[0-9]*$' || echo "?")
  echo "fuzz $t: $result in $(( $(date +%s) - start )) s, $runs executions (log: fuzz/target/fuzz-$t.log)"
  if [ "$result" = FAILED ]; then
    grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written' "target/fuzz-$t.log" | head -n 8 >&2 || true
  fi
done
exit "$status"
