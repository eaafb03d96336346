#!/bin/bash
# The differential schema fuzz of tests/sim/test_schema_fuzz.lua at a larger size: every
# provider's write endpoints, bodies judged by the vendor schemas (python3-jsonschema) and by the
# emulator, which must agree on every one.
#   bench/schema_fuzz.sh [bodies per route (default 2000)] [seeds (default "1 2 3")]
# 12 routes: the default is 24,000 bodies per seed. Builds sgrun (build/) first.
set -euo pipefail
cd "$(dirname "$0")/.."
per_route=${1:-2000}
seeds=${2:-"1 2 3"}
bash .ci/setup >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 >/dev/null
status=0
for seed in $seeds; do
  LUA_PATH="tests/lua/?.lua;tests/support/?.lua;;" SGRUN_FUZZ_PER_ROUTE=$per_route SGRUN_FUZZ_SEED=$seed \
    tests/support/with_sim.sh build/sgrun tests/sim/test_schema_fuzz.lua | grep -E "^(schema fuzz|DISAGREE|FAIL)" || status=1
done
exit $status
