#!/usr/bin/env bash
# Runs a Lua test against a fresh `sgrun sim`: with_sim.sh <sgrun> <test.lua> [sim options...]
# Starts the emulator on a free port, waits (bounded) for its ready file, exports SGRUN_SIM_URL
# and the emulator's environment (SGRUN_*_URL, demo credentials), runs `<sgrun> <test.lua>`,
# stops the emulator and exits with the test's status. The emulator's output is shown when the
# test fails.
set -u
if [ $# -lt 2 ]; then
  echo "usage: $0 <sgrun> <test.lua> [sim options...]" >&2
  exit 2
fi
sgrun=$1
test=$2
shift 2

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sgrun-sim.XXXXXX")
# locks and roll-out journals of this test only: a parallel run of the same test (another build's
# suite) must neither find its lock taken nor its journals
mkdir -m 700 "$tmp/locks"
export SGRUN_LOCK_DIR="$tmp/locks"
sim_pid=
cleanup() {
  if [ -n "$sim_pid" ] && kill -0 "$sim_pid" 2>/dev/null; then
    kill -TERM "$sim_pid" 2>/dev/null
    wait "$sim_pid" 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# With SGRUN_TRAFFIC_DIR set (the suite sets it), the emulator records every request it answers
# in <dir>/<test>.jsonl for tests/schemas/validate_traffic.py.
traffic=
if [ -n "${SGRUN_TRAFFIC_DIR:-}" ]; then
  mkdir -p "$SGRUN_TRAFFIC_DIR"
  traffic="$SGRUN_TRAFFIC_DIR/$(basename "$test" .lua).jsonl"
fi

# A short task duration keeps the suite fast; tests that care set it through /_sim/knobs. The
# test hooks (/_sim/kill) are on: this emulator serves one test on loopback.
SGRUN_SIM_TEST_HOOKS=1 SGRUN_SIM_TRAFFIC=$traffic "$sgrun" sim --port 0 --ready-file "$tmp/ready" --env-file "$tmp/env" --task-delay 200 --quiet "$@" \
  >"$tmp/sim.log" 2>&1 &
sim_pid=$!

for _ in $(seq 1 100); do
  [ -s "$tmp/ready" ] && break
  if ! kill -0 "$sim_pid" 2>/dev/null; then
    echo "with_sim.sh: the emulator exited before it was ready:" >&2
    cat "$tmp/sim.log" >&2
    exit 1
  fi
  sleep 0.1
done
if [ ! -s "$tmp/ready" ]; then
  echo "with_sim.sh: the emulator was not ready after 10 s:" >&2
  cat "$tmp/sim.log" >&2
  exit 1
fi

# KEY=VALUE lines, exported without any shell evaluation of the values.
while IFS= read -r line; do
  case $line in
    [A-Za-z_]*=*) export "${line%%=*}=${line#*=}" ;;
  esac
done <"$tmp/env"
SGRUN_SIM_URL=$(head -n 1 "$tmp/ready")
export SGRUN_SIM_URL

"$sgrun" "$test"
status=$?
if [ "$status" -ne 0 ]; then
  echo "--- emulator output ---" >&2
  cat "$tmp/sim.log" >&2
fi
exit "$status"
