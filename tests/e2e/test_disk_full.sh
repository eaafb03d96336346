#!/bin/bash
# A roll-out whose lock directory is full (a 64 KiB tmpfs as SGRUN_LOCK_DIR; root only, for the
# mount): whether its lock, a target's lock or its journal cannot be written, it stops before
# anything is sent, with a message that says what to do, exit 1, no traceback, and leaves no
# journal; the same run goes through once there is room. (A journal
# record that fails later, once writes are under way, is tests/sim/test_rollout's: a tmpfs fills
# by whole pages, so when a small record fails is not a test's to choose.)
set -u
sgrun=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=${SGRUN_SOURCE_DIR:-$here/../..}
[ "$(id -u)" = 0 ] || { echo "SKIP: mounting a small tmpfs needs root"; exit 77; }
tmp=$(mktemp -d)
locks=$tmp/locks
mkdir -m 700 "$locks"
mount -t tmpfs -o size=64k,mode=0700 tmpfs "$locks" || { echo "SKIP: cannot mount a tmpfs here"; rm -rf "$tmp"; exit 77; }
export SGRUN_LOCK_DIR=$locks
sim_pid=""
trap '[ -n "$sim_pid" ] && kill $sim_pid 2>/dev/null; umount "$locks"; rm -rf "$tmp"' EXIT
. "$here/../support/check.sh"
. "$here/../support/sim.sh"

start_sim --task-delay 100
source=exoscale:web
targets=(gcore:web genesis:web hostup:vm=10000)
outcome=("$sgrun" "$here/../support/rollout_outcome.lua")
# fill PAGES: leaves that many 4 KiB pages of the 16 free
fill() { rm -f "$locks/fill"; dd if=/dev/zero of="$locks/fill" bs=4k count=$((16 - $1)) 2>/dev/null; }

# run NAME: the roll-out, its output in $tmp/NAME.out; checks what every full-disk run must show
run() {
  curl -s -X DELETE "$url/_sim/log" >/dev/null
  "$sgrun" "$root/scripts/rollout.lua" --allow-lossy "$source" "${targets[@]}" >"$tmp/$1.out" 2>&1
  check "$1: exit 1" [ $? = 1 ]
  check "$1: no traceback" bash -c "! grep -q 'stack traceback' '$tmp/$1.out'"
  check "$1: says what to do" grep -q "(free space there, or set SGRUN_LOCK_DIR to another directory)" "$tmp/$1.out"
  check "$1: no write reached a provider" "$sgrun" -e "
    local log = require('sg').json.decode(io.popen('curl -s $url/_sim/log'):read('a'))
    for _, e in ipairs(log.requests) do assert(e.method == 'GET', e.method .. ' ' .. e.path) end"
  check "$1: no journal is left" bash -c "! ls '$locks'/*.journal 2>/dev/null"
  [ "$failed" = 0 ] || cat "$tmp/$1.out" >&2
}

# 1. No room at all: the playbook's lock file cannot be written
fill 0
run full
check "full: the lock file is named" grep -q "cannot write the lock file" "$tmp/full.out"

# 2. Room for the playbook's lock file only: a target group's lock cannot be written
rm -f "$locks"/*.lock
fill 1
run target_lock
check "target_lock: the target's lock file is named" \
  grep -q "cannot take the lock of this target: cannot write the lock file" "$tmp/target_lock.out"

# 3. Room for the lock files only: the journal's first record cannot be written. A held lock takes
# a page (its holder's pid), a released one none: how many a run holds is counted after one with
# room, on groups then reset to what they were
rm -f "$locks"/*.lock "$locks/fill"
"$sgrun" "$root/scripts/rollout.lua" --allow-lossy "$source" "${targets[@]}" >/dev/null 2>&1
held=$(ls "$locks"/*.lock | wc -l)
curl -s -X POST "$url/_sim/reset" >/dev/null
fill "$held"
run journal
check "journal: the journal's write is named, and that nothing was sent" bash -c "
  grep -q 'roll-out journal .*: write failed: No space left on device' '$tmp/journal.out' &&
  grep -q 'nothing was sent to any provider' '$tmp/journal.out'"

# 4. Room again: the same roll-out goes through
rm -f "$locks/fill"
"$sgrun" "$root/scripts/rollout.lua" --allow-lossy "$source" "${targets[@]}" >"$tmp/room.out" 2>&1
check "with room again: the roll-out converges (exit 0)" [ $? = 0 ]
check "with room again: every target converged" "${outcome[@]}" check /dev/null - "$source" "${targets[@]}"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
