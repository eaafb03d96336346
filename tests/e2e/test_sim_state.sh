#!/bin/bash
# Reproducible emulator runs and scheduled playbooks that keep running (issue 11, items 9 and 11):
# `sgrun --sim --state FILE` keeps the emulator's accounts between commands, so the README's
# snapshot -> drift flow works across separate runs; under --every, the drift playbook's
# os.exit(3) ends that run (logged with its status) and the schedule goes on.
set -u
sgrun=$1
root=${SGRUN_SOURCE_DIR:?}
tmp=$(mktemp -d)
export SGRUN_LOCK_DIR=$tmp
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "${BASH_SOURCE[0]}")/../support/check.sh"
state=$tmp/sim-state.json

"$sgrun" --sim --state "$state" "$root/scripts/snapshot.lua" exoscale:web "$tmp/web.json" >/dev/null
check "snapshot against the emulator with --state" [ -s "$tmp/web.json" ]
check "and the emulator's state is saved" [ -s "$state" ]
"$sgrun" --sim --state "$state" "$root/scripts/drift.lua" "$tmp/web.json" >"$tmp/out" 2>&1
check "the next command sees the same accounts: no drift, exit 0" [ $? = 0 ]

"$sgrun" --sim --state "$state" -e "
  local sg = require 'sg'
  local exo = sg.connect('exoscale')
  local g = assert(exo:group('web'))
  exo:wait(exo:add_rule_to_security_group(g.id, { ['flow-direction'] = 'ingress', protocol = 'tcp',
    ['start-port'] = 6379, ['end-port'] = 6379, network = '0.0.0.0/0' }))"
"$sgrun" --sim --state "$state" "$root/scripts/drift.lua" "$tmp/web.json" >"$tmp/out" 2>&1
check "a rule added in between is found by a later command: exit 3" [ $? = 3 ]
check "and named" grep -q "6379" "$tmp/out"
"$sgrun" --sim --state "$state" "$root/scripts/drift.lua" "$tmp/web.json" >"$tmp/out" 2>&1
check "the playbook's os.exit(3) released its lock: no takeover warning on the next run" \
  bash -c "! grep -q lock_taken_over '$tmp/out'"

# add_port PORT: a chunk that opens PORT in Exoscale's web group
add_port() {
  echo "local sg = require 'sg'
  local exo = sg.connect('exoscale')
  local g = assert(exo:group('web'))
  exo:wait(exo:add_rule_to_security_group(g.id, { ['flow-direction'] = 'ingress', protocol = 'tcp',
    ['start-port'] = $1, ['end-port'] = $1, network = '0.0.0.0/0' }))"
}
"$sgrun" --sim --state "$state" -e "$(add_port 5432) os.exit(0)" -e 'print("after os.exit")' >"$tmp/out"
check "os.exit ends the whole command line" bash -c "! grep -q 'after os.exit' '$tmp/out'"
"$sgrun" --sim --state "$state" "$root/scripts/drift.lua" "$tmp/web.json" >"$tmp/out" 2>&1
check "a run that ends with os.exit still saves the emulator's state" grep -q "5432" "$tmp/out"
# ... and one stopped by SIGTERM (a service manager's stop) as well
"$sgrun" --sim --state "$state" -e "$(add_port 6543)
  io.open('$tmp/added', 'w'):close()
  sg.sleep(60)" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1200); do [ -e "$tmp/added" ] && break; sleep 0.1; done
kill -TERM $pid
wait $pid
check "a run stopped by SIGTERM exits 143" [ $? = 143 ]
"$sgrun" --sim --state "$state" "$root/scripts/drift.lua" "$tmp/web.json" >"$tmp/out" 2>&1
check "a run stopped by SIGTERM still saves the emulator's state" grep -q "6543" "$tmp/out"
"$sgrun" --sim --seed 7 "$root/scripts/snapshot.lua" exoscale:web "$tmp/seeded.json" >/dev/null
"$sgrun" --sim --seed 7 "$root/scripts/drift.lua" "$tmp/seeded.json" >"$tmp/out" 2>&1
check "with the same --seed, a fresh emulator has the same ids: no drift, exit 0" [ $? = 0 ]
"$sgrun" --seed 7 "$root/scripts/drift.lua" "$tmp/web.json" 2>"$tmp/err"
check "--state and --seed without --sim are a usage error" [ $? = 2 ]
"$sgrun" --sim --seed 99999999999999999999999 -e 'print("ran")' >"$tmp/out" 2>"$tmp/err"
check "a --seed too large for a 64-bit number is refused, not clamped" bash -c \
  "[ $? = 2 ] && grep -q 'at most 19 digits' '$tmp/err' && ! grep -q ran '$tmp/out'"

# a hostile or hand-edited state file is refused before anything runs, naming the place, and left
# as it was; a directory is said to be one
printf '{"providers":{"exoscale":{"groups":5}}}' >"$tmp/hostile.json"
"$sgrun" --sim --state "$tmp/hostile.json" -e 'print("ran")' >"$tmp/out" 2>"$tmp/err"
check "a state file of the wrong shape is refused as the user's error: exit 2" [ $? = 2 ]
check "naming the field, without a traceback, before the playbook ran" bash -c \
  "grep -q 'providers.exoscale.groups must be an object, not a number' '$tmp/err' && ! grep -q traceback '$tmp/err' && ! grep -q ran '$tmp/out'"
check "and the file is left as it was" [ "$(cat "$tmp/hostile.json")" = '{"providers":{"exoscale":{"groups":5}}}' ]
mkdir "$tmp/state-dir"
"$sgrun" --sim --state "$tmp/state-dir" -e 'print("ran")' >"$tmp/out" 2>"$tmp/err"
check "a directory as the state file is refused: exit 2" [ $? = 2 ]
check "saying it is a directory" bash -c \
  "grep -q 'it is a directory; --state takes a regular file' '$tmp/err' && ! grep -q 'not JSON' '$tmp/err'"
mkfifo "$tmp/state-fifo"
timeout 20 "$sgrun" --sim --state "$tmp/state-fifo" -e 'print("ran")' >"$tmp/out" 2>"$tmp/err"
check "a FIFO as the state file is refused at once: exit 2 (124 would be a hang)" [ $? = 2 ]
check "saying it is a FIFO" grep -q "it is a FIFO; --state takes a regular file" "$tmp/err"
timeout 20 "$sgrun" sim --state "$tmp/state-fifo" --port 0 >"$tmp/out" 2>"$tmp/err"
check "sgrun sim --state FIFO too: exit 2" [ $? = 2 ]
# a state file to be written at exit in a directory that is not there: said at start, not after
"$sgrun" --sim --state "$tmp/no-such-dir/state.json" -e 'print("ran")' >"$tmp/out" 2>"$tmp/err"
check "a --state in a missing directory is refused before the playbook runs: exit 2" bash -c \
  "[ $? = 2 ] && grep -q 'its directory .*no-such-dir cannot be written' '$tmp/err' && ! grep -q ran '$tmp/out'"
"$sgrun" sim --port 0 --state "$tmp/no-such-dir/state.json" >"$tmp/out" 2>"$tmp/err"
check "so does sgrun sim: exit 2" [ $? = 2 ]

"$sgrun" --sim --state "$state" --every 1s --log-format json "$root/scripts/drift.lua" "$tmp/web.json" \
  >"$tmp/out" 2>"$tmp/log" &
pid=$!
# bounded only against a hang: a sanitizer build on a busy machine takes seconds a run
for _ in $(seq 1200); do
  [ "$(grep -c '"event":"run_finished"' "$tmp/log")" -ge 2 ] && break
  sleep 0.1
done
kill -0 $pid 2>/dev/null
check "the schedule is still running after the playbook's os.exit" [ $? = 0 ]
kill -TERM $pid
wait $pid
check "and ends with SIGTERM, exit 0" [ $? = 0 ]
runs=$(grep '"event":"run_finished"' "$tmp/log" | grep -c '"exit_code":"3"')
check "two runs or more, each logged with the playbook's status 3 ($runs)" [ "$runs" -ge 2 ]

cat >"$tmp/exit.lua" <<'LUA'
pcall(os.exit, 4)
print("after os.exit")
LUA
"$sgrun" --every 1s --log-format json "$tmp/exit.lua" >"$tmp/out" 2>"$tmp/log" &
pid=$!
for _ in $(seq 1200); do grep -q '"event":"run_finished"' "$tmp/log" && break; sleep 0.1; done
kill -TERM $pid
wait $pid
check "pcall does not swallow os.exit in a scheduled run" bash -c "! grep -q 'after os.exit' '$tmp/out'"
check "whose status is logged" grep -q '"exit_code":"4"' "$tmp/log"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
