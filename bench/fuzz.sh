#!/bin/bash
# The long fuzz runs (docs/security.md): every libFuzzer target for FUZZ_SECONDS each (600 by
# default), on the clang build with the fuzzing instrumentation (build-fuzz/, as .ci/test makes
# it). The suite keeps its 15-second runs; this is the soak, not part of ctest.
#   bench/fuzz.sh                 all targets, 10 minutes each
#   bench/fuzz.sh json codecs     some of them
#   FUZZ_SECONDS=60 bench/fuzz.sh a shorter soak
# Prints one line per target and exits 1 when any target found a crash, a leak or a timeout;
# reproducers are left in build-fuzz/fuzz-findings/<target>/. "cov" counts the instrumented C
# edges only; the Lua targets' own code is seen through "ft" (libFuzzer's features, which include
# the Lua line edges that tests/fuzz/fuzz_lua.c feeds it), so "ft" is the figure that grows.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-600}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(schedule json codecs snapshot)
bash .ci/setup >/dev/null
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DSGRUN_FUZZ=ON >/dev/null
cmake --build build-fuzz -j2 >/dev/null
status=0
printf '%-10s %10s %6s %6s %6s %s\n' target runs cov ft corpus result
for t in "${targets[@]}"; do
  bin=build-fuzz/tests/fuzz_$t
  [ -x "$bin" ] || { echo "no fuzz target '$t' (have: schedule json codecs snapshot)" >&2; exit 2; }
  corpus=build-fuzz/tests/fuzz-corpus/$t findings=build-fuzz/fuzz-findings/$t
  mkdir -p "$corpus" "$findings"
  log=$(mktemp)
  if "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$findings/" "$corpus" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
    result="no crash"
  else
    result="FAILED: see $findings/ and $log"
    status=1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -n1)
  cov=$(grep -o 'cov: [0-9]*' <<<"$last" | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' <<<"$last" | cut -d' ' -f2)
  units=$(grep -o 'corp: [0-9]*' <<<"$last" | cut -d' ' -f2)
  printf '%-10s %10s %6s %6s %6s %s\n' "$t" "${runs:-?}" "${cov:-?}" "${ft:-?}" "${units:-?}" "$result"
  [ $status = 0 ] && rm -f "$log"
done
exit $status
