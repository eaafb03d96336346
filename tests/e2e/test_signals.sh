#!/bin/bash
# Interrupted roll-outs (issue 11, items 3 and 7): scripts/rollout.lua against a real emulator over
# HTTP, stopped by SIGINT/SIGTERM while a target has writes in flight. The emulator holds every
# provider task (the hold_tasks knob), so a target that has sent its first write waits on it for
# as long as the test needs; the signal is sent on that target's "waiting" progress event, the
# tasks are let go once the run has announced the interruption, and every assertion is about what
# was printed and what the clouds read back, not about time.
set -u
sgrun=$1
root=${SGRUN_SOURCE_DIR:?}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d)
export SGRUN_LOCK_DIR=$tmp
sim_pid="" run_pid=""
trap '[ -n "$run_pid" ] && kill -KILL $run_pid 2>/dev/null; [ -n "$sim_pid" ] && kill $sim_pid 2>/dev/null; rm -rf "$tmp"' EXIT
. "$here/../support/check.sh"
. "$here/../support/sim.sh"

start_sim --task-delay 200

source=exoscale:web
targets=(gcore:web genesis:web barrack:web hostup:vm=10000)
outcome=("$sgrun" "$here/../support/rollout_outcome.lua")

# wait_for PATTERN FILE: until a line of FILE matches (bounded: 3 minutes), or the run ended
wait_for() {
  for _ in $(seq 1800); do
    grep -q "$1" "$2" && return 0
    kill -0 "$run_pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# hold_tasks true|false: whether the emulator keeps every provider task from completing
hold_tasks() {
  curl -sf -X PUT -d "{\"hold_tasks\": $1}" "$url/_sim/knobs" >/dev/null || { echo "could not set hold_tasks" >&2; exit 1; }
}
# interrupt SIGNAL NAME: sends the signal once the run waits on genesis's held task, then lets the
# tasks go when the run has announced that it stops (the write in flight can then finish)
interrupt() {
  wait_for "$genesis_waiting" "$tmp/$2.log"
  check "$1 ($2): the roll-out was in the middle of a target's writes" [ $? = 0 ]
  kill -"$1" "$run_pid"
  wait_for '"event":"rollout_interrupted"' "$tmp/$2.log"
  hold_tasks false
}

# start NAME [sgrun options] -- [playbook options]: a fresh emulator state, the targets' fingerprints
# saved, then the roll-out in the background (stdout $tmp/NAME.out, JSON log $tmp/NAME.log)
start() {
  local name=$1 pre=() post=()
  shift
  while [ $# -gt 0 ] && [ "$1" != -- ]; do pre+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  post=("$@")
  curl -s -X POST "$url/_sim/reset" >/dev/null
  "${outcome[@]}" save "$tmp/$name.before" "$source" "${targets[@]}"
  hold_tasks true
  "$sgrun" --log-format json "${pre[@]}" "$root/scripts/rollout.lua" --allow-lossy "${post[@]}" \
    "$source" "${targets[@]}" >"$tmp/$name.out" 2>"$tmp/$name.log" &
  run_pid=$!
}
# the JSON log line of genesis:web (a group the roll-out creates, then updates) waiting on the
# provider's task of its first write: the second write has not been sent yet
genesis_waiting='"event":"rollout_progress".*"step":"waiting".*"provider":"genesis"\|"event":"rollout_progress".*"provider":"genesis".*"step":"waiting"'
finish() {
  wait "$run_pid"
  local status=$?
  run_pid=""
  return $status
}

# 1. SIGINT while genesis:web has a write in flight: the write finishes, no new one starts,
# genesis:web is restored (its group deleted again), the others end converged; exit 130.
start int --
interrupt INT int
finish
check "SIGINT: exit 130" [ $? = 130 ]
check "SIGINT: the summary says so" grep -q "^roll-out: INTERRUPTED by SIGINT" "$tmp/int.out"
check "SIGINT: the interruption is announced in the log" grep -q '"event":"rollout_interrupted"' "$tmp/int.log"
for t in "${targets[@]}"; do
  p=${t%%:*} g=${t#*:}
  check "SIGINT: $t is accounted for" grep -Eq "^  $p +$g +[a-z_]+ +\+[0-9]+ -[0-9]+  (changed|restored|left untouched)$" \
    "$tmp/int.out"
done
check "SIGINT: the target that was mid-change is restored, its later writes never sent" bash -c \
  "grep -A3 -E '^  genesis +web +rolled_back .* restored$' '$tmp/int.out' | grep -q 'stopped by SIGINT in the middle of its changes'"
check "SIGINT: every target reads back converged or restored exactly" \
  "${outcome[@]}" check "$tmp/int.before" "$tmp/int.out" "$source" "${targets[@]}"
check "SIGINT: a roll-out that settled leaves no journal" bash -c "! ls '$tmp'/*.journal 2>/dev/null"
[ "$failed" = 0 ] || cat "$tmp/int.out" "$tmp/int.log" >&2

# 2. SIGTERM under --json: exit 143 and the summary is JSON, with an account of every target. A
# hangup (the SSH session closed) is taken as SIGTERM: it killed the run mid-write (exit 129, no
# report, the target left half-changed for --recover).
for sig in TERM HUP; do
  name=$(echo "$sig" | tr A-Z a-z)
  start "$name" --json --
  interrupt "$sig" "$name"
  finish
  check "SIG$sig: exit 143" [ $? = 143 ]
  check "SIG$sig: the --json summary parses and accounts for every target" "$sgrun" -e "
    local r = assert(require('sg').json.decode(io.open('$tmp/$name.out'):read('a')))
    assert(r.interrupted == 'SIGTERM' and r.ok == false and #r.targets == ${#targets[@]})
    for _, t in ipairs(r.targets) do assert(t.account == 'changed' or t.account == 'restored'
      or t.account == 'left untouched', t.provider .. ': ' .. tostring(t.account)) end"
  check "SIG$sig: every target reads back converged or restored exactly" \
    "${outcome[@]}" check "$tmp/$name.before" "$tmp/$name.out" "$source" "${targets[@]}"
done

# 3. --atomic: all or nothing, so SIGINT restores every target, the converged ones too
start atomic -- --atomic
interrupt INT atomic
finish
check "--atomic SIGINT: exit 130" [ $? = 130 ]
check "--atomic SIGINT: no target is left changed" bash -c "! grep -q '  changed$' '$tmp/atomic.out'"
check "--atomic SIGINT: every target reads back exactly as before" \
  "${outcome[@]}" check "$tmp/atomic.before" "$tmp/atomic.out" "$source" "${targets[@]}"
[ "$failed" = 0 ] || cat "$tmp/atomic.out" >&2

# 4. A second signal: exit at once with the summary of what was known; the journal stays, and
# the next run of the same roll-out finds it and completes the roll-out.
start twice --json --
wait_for "$genesis_waiting" "$tmp/twice.log"
kill -INT "$run_pid"
# the first signal is taken (announced) before the second is sent: two signals sent back to back
# may reach the process as one. The tasks stay held, so genesis is still mid-change.
wait_for '"event":"rollout_interrupted"' "$tmp/twice.log"
kill -INT "$run_pid"
finish
check "second SIGINT: exit 130" [ $? = 130 ]
check "second SIGINT: the summary says what was known, in JSON" "$sgrun" -e "
  local r = assert(require('sg').json.decode(io.open('$tmp/twice.out'):read('a')))
  assert(r.interrupted == 'SIGINT' and r.abandoned == true and #r.targets == ${#targets[@]})
  local unknown = 0
  for _, t in ipairs(r.targets) do
    assert(t.account, t.provider .. ' has no account')
    if t.account == 'unknown' then unknown = unknown + 1; assert(t.error:find('run the same roll-out again', 1, true)) end
  end
  assert(unknown > 0, 'genesis was mid-change')"
check "second SIGINT: the journal is left for the next run" bash -c "ls '$tmp'/*.journal >/dev/null 2>&1"
hold_tasks false
"$sgrun" "$root/scripts/rollout.lua" --allow-lossy "$source" "${targets[@]}" >"$tmp/again.out" 2>&1
check "the next run recovers: exit 0" [ $? = 0 ]
check "the next run: every target reads back converged" \
  "${outcome[@]}" check "$tmp/twice.before" - "$source" "${targets[@]}"
check "the next run: the journal is gone" bash -c "! ls '$tmp'/*.journal 2>/dev/null"
[ "$failed" = 0 ] || cat "$tmp/twice.out" "$tmp/again.out" >&2

# 5. Progress (item 7) under --log-format json: one event per target step, never one per write or
# poll; the steps include applying n/m writes and waiting for the provider's task
check "--log-format json: at most one progress event per target step" "$sgrun" -e "
  local seen, steps = {}, {}
  for line in io.lines('$tmp/int.log') do
    local e = require('sg').json.decode(line)
    if e and e.event == 'rollout_progress' then
      local k = e.fields.target .. '/' .. e.fields.step
      assert(not seen[k], 'two events for ' .. k)
      seen[k], steps[e.fields.step] = true, e
    end
  end
  assert(steps.applying and steps.applying.message:match('^applying %d+/%d+ writes$'), 'no applying n/m writes')
  assert(steps.waiting and steps.waiting.message:match(\"^waiting for the provider's task\"), 'no waiting')"

# 7. Under --every, SIGTERM lets the running roll-out finish, then stops the schedule (exit 0);
# SIGINT interrupts the roll-out as in 1, and stops the schedule too, with that run's exit 130.
start sched --every 1h --
wait_for "$genesis_waiting" "$tmp/sched.log"
check "--every SIGTERM: the roll-out was in the middle of a target's writes" [ $? = 0 ]
kill -TERM "$run_pid"
hold_tasks false
finish
check "--every SIGTERM: the schedule stops with exit 0" [ $? = 0 ]
check "--every SIGTERM: the running roll-out was not interrupted" bash -c \
  "grep -q '^roll-out: ok' '$tmp/sched.out' && ! grep -q INTERRUPTED '$tmp/sched.out'"
check "--every SIGTERM: every target reads back converged" \
  "${outcome[@]}" check "$tmp/sched.before" - "$source" "${targets[@]}"
check "--every SIGTERM: the stop is logged" grep -q '"event":"schedule_stopped"' "$tmp/sched.log"
start schedint --every 1h --
interrupt INT schedint
finish
check "--every SIGINT: the schedule stops with the interrupted run's exit 130" [ $? = 130 ]
check "--every SIGINT: the roll-out was interrupted" grep -q "^roll-out: INTERRUPTED by SIGINT" "$tmp/schedint.out"
check "--every SIGINT: the stop is logged" grep -q '"event":"schedule_stopped"' "$tmp/schedint.log"

# 8. A signal while Lua computes: the exit code says which, and no traceback (a bug's mark) is shown
printf 'io.write("ready\\n") io.flush()\nwhile true do end\n' >"$tmp/spin.lua"
for sig in TERM INT; do
  "$sgrun" "$tmp/spin.lua" >"$tmp/spin.out" 2>"$tmp/spin.err" &
  run_pid=$!
  wait_for ready "$tmp/spin.out"
  kill -"$sig" "$run_pid"
  finish
  code=$?
  [ "$sig" = TERM ] && want=143 || want=130
  check "SIG$sig while computing: exit $want" [ "$code" = "$want" ]
  check "SIG$sig while computing: no traceback" bash -c "! grep -q 'stack traceback' '$tmp/spin.err'"
done

# 9. A killed --atomic run whose Gcore task is still running: --recover waits for that task
# (the journal names it, and Gcore lists it as active) before it reads the group, so the group
# ends exactly as saved (a recovery that read first found nothing to undo, and the task landed
# after it).
gcore_waiting='"event":"rollout_progress".*"step":"waiting".*"provider":"gcore"\|"event":"rollout_progress".*"provider":"gcore".*"step":"waiting"'
start killed -- --atomic
wait_for "$gcore_waiting" "$tmp/killed.log"
check "killed: gcore's first write is in flight" [ $? = 0 ]
kill -KILL "$run_pid"
wait "$run_pid" 2>/dev/null
curl -s -X DELETE "$url/_sim/log" >/dev/null
"$sgrun" "$root/scripts/rollout.lua" --recover >"$tmp/recover.out" 2>&1 &
run_pid=$!
tasks_asked() { curl -s "$url/_sim/log?provider=gcore" | grep -q '/cloud/v1/tasks/'; }
for _ in $(seq 1800); do tasks_asked && break; kill -0 "$run_pid" 2>/dev/null || break; sleep 0.1; done
check "--recover asks for gcore's running tasks" tasks_asked
check "--recover waits while gcore's task runs" kill -0 "$run_pid"
hold_tasks false
finish
check "--recover: exit 0" [ $? = 0 ]
"${outcome[@]}" save "$tmp/killed.after" "$source" "${targets[@]}"
check "--recover: gcore:web reads back exactly as before the killed run" \
  [ "$(grep '^gcore:web ' "$tmp/killed.before")" = "$(grep '^gcore:web ' "$tmp/killed.after")" ]
[ "$failed" = 0 ] || cat "$tmp/recover.out" >&2

# 10. The same with Exoscale, whose operations no endpoint lists: the killed run journaled the
# operation it was waiting on, and --recover waits for that one before it reads the group; a
# SIGTERM meanwhile lets the recovery finish, and its exit says it was terminated.
exoscale_waiting='"event":"rollout_progress".*"step":"waiting".*"provider":"exoscale"\|"event":"rollout_progress".*"provider":"exoscale".*"step":"waiting"'
curl -s -X POST "$url/_sim/reset" >/dev/null
"${outcome[@]}" save "$tmp/exokilled.before" gcore:web exoscale:web
hold_tasks true
"$sgrun" --log-format json "$root/scripts/rollout.lua" --allow-lossy --atomic gcore:web exoscale:web \
  >"$tmp/exokilled.out" 2>"$tmp/exokilled.log" &
run_pid=$!
wait_for "$exoscale_waiting" "$tmp/exokilled.log"
check "killed: exoscale's first write is in flight" [ $? = 0 ]
kill -KILL "$run_pid"
wait "$run_pid" 2>/dev/null
curl -s -X DELETE "$url/_sim/log" >/dev/null
"$sgrun" --log-format json "$root/scripts/rollout.lua" --recover >"$tmp/exorecover.out" 2>"$tmp/exorecover.log" &
run_pid=$!
operation_polled() { curl -s "$url/_sim/log?provider=exoscale" | grep -q '/operation/'; }
for _ in $(seq 1800); do operation_polled && break; kill -0 "$run_pid" 2>/dev/null || break; sleep 0.1; done
check "--recover polls the operation the killed run journaled" operation_polled
check "--recover waits while that operation runs" kill -0 "$run_pid"
# a SIGTERM now: the recovery still finishes putting the group back, then exits 143
kill -TERM "$run_pid"
wait_for '"event":"rollout_interrupted"' "$tmp/exorecover.log"
check "--recover announces the SIGTERM" [ $? = 0 ]
hold_tasks false
finish
check "--recover (exoscale) under SIGTERM: finishes, exit 143" [ $? = 143 ]
check "--recover under SIGTERM: says it restored the target" grep -Eq '^  exoscale +web +recovered: restored' "$tmp/exorecover.out"
"${outcome[@]}" save "$tmp/exokilled.after" gcore:web exoscale:web
check "--recover: exoscale:web reads back exactly as before the killed run" \
  [ "$(grep '^exoscale:web ' "$tmp/exokilled.before")" = "$(grep '^exoscale:web ' "$tmp/exokilled.after")" ]
[ "$failed" = 0 ] || cat "$tmp/exorecover.out" "$tmp/exorecover.log" >&2

# 6. Progress on a terminal: stderr a pty (script(1), util-linux); the lines are redrawn in place
if ! command -v script >/dev/null; then
  echo "$passed passed, $failed failed (the terminal part needs script(1) from util-linux: install it)"
  [ "$failed" = 0 ]
  exit
fi
curl -s -X POST "$url/_sim/reset" >/dev/null
curl -s -X PUT -d '{"task_duration_ms": 300}' "$url/_sim/knobs" >/dev/null
script -q -e -c "'$sgrun' '$root/scripts/rollout.lua' --allow-lossy --yes $source ${targets[*]} >'$tmp/tty.out'" \
  "$tmp/tty.raw" </dev/null >/dev/null 2>&1
check "on a terminal: the roll-out succeeds" [ $? = 0 ]
check "on a terminal: progress shows applying n/m writes" grep -aq "applying [0-9]*/[0-9]* writes" "$tmp/tty.raw"
check "on a terminal: and waiting for the provider's task" grep -aq "waiting for the provider's task" "$tmp/tty.raw"
check "on a terminal: redrawn in place (cursor up), not one line per update" grep -aq $'\033\\[[0-9]*A' "$tmp/tty.raw"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
