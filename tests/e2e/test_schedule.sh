#!/bin/bash
# Scheduled runs: repeated runs, overruns skipped, the lock across processes (checked from the
# emulator's request log), SIGTERM finishing the current run, JSON logs that parse line by line.
set -u
sgrun=$1
tmp=$(mktemp -d)
export SGRUN_LOCK_DIR=$tmp
sim_pid=""
trap '[ -n "$sim_pid" ] && kill $sim_pid 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "${BASH_SOURCE[0]}")/../support/check.sh"
count() { grep -c "\"event\":\"$1\"" "$2"; }

# every line must be one JSON object with the documented fields
cat >"$tmp/parse.lua" <<'LUA'
local json = require("sg").json
local n = 0
for line in io.lines(arg[1]) do
  local v = assert(json.decode(line), "not JSON: " .. line)
  for _, k in ipairs({ "time", "level", "playbook", "run_id", "event", "fields" }) do
    assert(v[k] ~= nil, "missing " .. k .. " in " .. line)
  end
  n = n + 1
end
assert(n > 0, "no log lines")
LUA

printf 'print("tick")\n' >"$tmp/tick.lua"
"$sgrun" --every 1s --log-format json "$tmp/tick.lua" >"$tmp/out" 2>"$tmp/log" &
pid=$!
sleep 3.5
kill -TERM $pid
wait $pid
check "SIGTERM ends a schedule with exit 0" [ $? = 0 ]
runs=$(count run_finished "$tmp/log")
check "a 1-second schedule ran several times ($runs)" [ "$runs" -ge 3 ]
check "each run printed" [ "$(grep -c tick "$tmp/out")" = "$runs" ]
check "JSON logs parse line by line" "$sgrun" "$tmp/parse.lua" "$tmp/log"
check "the stop is logged" grep -q '"event":"schedule_stopped"' "$tmp/log"

printf 'require("sg").sleep(2.2)\n' >"$tmp/slow.lua"
"$sgrun" --every 1s --log-format json "$tmp/slow.lua" 2>"$tmp/log" &
pid=$!
sleep 3
kill -TERM $pid
wait $pid
check "SIGTERM during a run exits 0" [ $? = 0 ]
check "an overrunning run makes the next ones skipped" grep -q '"event":"run_skipped"' "$tmp/log"
check "SIGTERM let the running run finish" [ "$(count run_finished "$tmp/log")" -ge 1 ]
check "no run was cut short" bash -c "! grep -q '\"status\":\"error\"' '$tmp/log'"

printf 'error("scheduled failure")\n' >"$tmp/fails.lua"
"$sgrun" --every 1s --log-format json "$tmp/fails.lua" 2>"$tmp/log" &
pid=$!
sleep 1.5
kill -TERM $pid
wait $pid
check "errors are logged and the schedule goes on" [ "$(count run_finished "$tmp/log")" -ge 2 ]
check "the error is a JSON log line" grep -q '"event":"error","message":"[^"]*scheduled failure' "$tmp/log"

# waits (at most 30 s) until the log has n lines of an event
await() {
  for _ in $(seq 300); do [ "$(count "$1" "$3")" -ge "$2" ] && return 0; sleep 0.1; done
  return 1
}
# a playbook's own os.exit(130) or (143) is its status, not a signal: the schedule goes on
for status in 130 143; do
  printf 'os.exit(%s)\n' "$status" >"$tmp/exits.lua"
  "$sgrun" --every 1s --log-format json "$tmp/exits.lua" 2>"$tmp/log" &
  pid=$!
  check "os.exit($status) in a run: the schedule goes on to a second run" await run_finished 2 "$tmp/log"
  kill -TERM $pid
  wait $pid
  check "os.exit($status) in a run: a later SIGTERM still stops it with 0" [ $? = 0 ]
  check "os.exit($status) in a run: logged as the run's exit code" grep -q "\"exit_code\":\"$status\"" "$tmp/log"
done
# The wall clock set back or forward an hour mid-schedule (an NTP step, `date -s`): --every
# counts elapsed time, so runs go on each second and none is counted as skipped (set back, the
# next run waited the hour; set forward, 3,600 runs were logged as skipped)
for step in -3600 3600; do
  LD_PRELOAD=${CLOCKSTEP:?} CLOCKSTEP_AFTER=1.5 CLOCKSTEP_SECONDS=$step \
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
    "$sgrun" --every 1s --log-format json "$tmp/tick.lua" >/dev/null 2>"$tmp/log" &
  pid=$!
  check "--every with the clock set ${step}s mid-schedule: runs go on" await run_finished 4 "$tmp/log"
  kill -TERM $pid
  wait $pid
  check "--every with the clock set ${step}s mid-schedule: no run counted as skipped" \
    bash -c "! grep -q run_skipped '$tmp/log'"
done
# between_runs SIGNAL: an hourly schedule, signalled once its first run is over; leaves the
# schedule's pid in $pid
between_runs() {
  "$sgrun" --every 1h --log-format json "$tmp/tick.lua" >/dev/null 2>"$tmp/log" &
  pid=$!
  await run_finished 1 "$tmp/log"
  kill -"$1" $pid
}
# Ctrl-C between runs ends the schedule with 130, as during one; SIGTERM there is a clean stop (0)
between_runs INT
wait $pid
check "SIGINT between runs: exit 130" [ $? = 130 ]
check "SIGINT between runs: the stop says SIGINT" grep -q '"event":"schedule_stopped","message":"SIGINT"' "$tmp/log"
# a hangup stops a schedule as SIGTERM does, unless it is ignored (nohup): then it runs on
between_runs HUP
wait $pid
check "SIGHUP between runs: a clean stop, exit 0" [ $? = 0 ]
# Ignored: a run that started after the hangup arrived finishes (the second run counted from
# the kill, as one may have been under way when it landed)
(trap '' HUP; exec "$sgrun" --every 1s --log-format json "$tmp/tick.lua") >/dev/null 2>"$tmp/log" &
pid=$!
await run_finished 1 "$tmp/log"
kill -HUP $pid
runs_at_hangup=$(count run_finished "$tmp/log")
check "SIGHUP ignored (nohup): the schedule runs on" await run_finished $((runs_at_hangup + 2)) "$tmp/log"
kill -TERM $pid
wait $pid
check "SIGHUP ignored (nohup): a later SIGTERM is the stop" \
  grep -q '"event":"schedule_stopped","message":"SIGTERM"' "$tmp/log"

# Two processes, one playbook: the emulator's log must never show two runs overlapping.
"$sgrun" sim --port 0 --ready-file "$tmp/url" --quiet >/dev/null &
sim_pid=$!
for _ in $(seq 1200); do [ -s "$tmp/url" ] && break; sleep 0.05; done
url=$(cat "$tmp/url")
cat >"$tmp/marked.lua" <<LUA
local sg = require "sg"
local id = tostring(math.random(1, 1e9))
sg.http.request { url = "$url/hostup/api/vm/10000/firewall?mark=start-" .. id }
sg.sleep(0.4)
sg.http.request { url = "$url/hostup/api/vm/10000/firewall?mark=end-" .. id }
LUA
"$sgrun" --every 1s "$tmp/marked.lua" 2>"$tmp/log1" &
a=$!
"$sgrun" --every 1s "$tmp/marked.lua" 2>"$tmp/log2" &
b=$!
sleep 3.2
kill -TERM $a $b
wait $a $b
"$sgrun" -e "
local sg, json = require 'sg', require('sg').json
local log = json.decode(assert(sg.http.request { url = '$url/_sim/log' }).body)
local entries = log.requests
local open, runs = nil, 0
for _, e in ipairs(entries) do
  local kind = (e.query or ''):match('mark=(%a+)%-')
  if kind == 'start' then assert(not open, 'two runs overlapped') open = true runs = runs + 1
  elseif kind == 'end' then assert(open, 'an end without a start') open = nil end
end
assert(runs >= 3, 'only ' .. runs .. ' runs')
" 2>"$tmp/err"
check "two processes with the same lock never overlap" [ $? = 0 ]
[ -s "$tmp/err" ] && cat "$tmp/err" >&2
check "the loser logs the skip" grep -q 'another sgrun process is running this playbook' "$tmp/log1" "$tmp/log2"
check "a skipped run is a warning, not an error" bash -c \
  "grep -h 'run_finished status=skipped' '$tmp/log1' '$tmp/log2' | grep -q ' warn ' &&
   ! grep -h 'run_finished status=skipped' '$tmp/log1' '$tmp/log2' | grep -q ' error '"

# A single run finding the lock taken exits 75; a lock left by a dead process is taken over.
# (tests/support/hold_lock.lua: the environment is not part of the lock key)
cp "$(dirname "${BASH_SOURCE[0]}")/../support/hold_lock.lua" "$tmp/hold.lua"
# hold ARGS...: starts a holder (in the current directory) and returns once it holds the lock
hold() {
  rm -f "$tmp/held" "$tmp/release"
  HOLD_MARK=$tmp/held HOLD_RELEASE=$tmp/release "$sgrun" "$tmp/hold.lua" "$@" &
  holder=$!
  for _ in $(seq 300); do [ -e "$tmp/held" ] && return; sleep 0.1; done
}
let_go() { touch "$tmp/release"; wait $holder; }
hold
lock=$(ls "$tmp"/sgrun-hold.lua-*.lock)
"$sgrun" "$tmp/hold.lua" 2>"$tmp/err"
check "a run that finds the lock taken exits 75" [ $? = 75 ]
check "and names the holder" grep -q "pid $holder" "$tmp/err"
# a dry-run preview, another account or the emulator is another job: a preview holding the lock
# made the real scheduled run skip (75)
"$sgrun" --dry-run "$tmp/hold.lua" 2>/dev/null
check "a --dry-run of a held job is another job: it runs" [ $? = 0 ]
printf '[other]\n' >"$tmp/profiles" && chmod 600 "$tmp/profiles"
SGRUN_PROFILES=$tmp/profiles "$sgrun" --profile other "$tmp/hold.lua" 2>/dev/null
check "the same job with another --profile is another job: it runs" [ $? = 0 ]
let_go
echo "999999 1700000000" >"$lock"
"$sgrun" "$tmp/hold.lua" 2>"$tmp/err"
check "a stale lock is taken over" [ $? = 0 ]
check "and that is logged" grep -q "lock_taken_over" "$tmp/err"
# the key is the job, however its files are named: a relative file name is the file it names from
# the run's directory, so the same name in two directories is two jobs; PROVIDER:GROUP is no file
mkdir -p "$tmp/a" "$tmp/b"
echo '{}' >"$tmp/a/web.json"
echo '{}' >"$tmp/b/web.json"
cd "$tmp/a" && hold web.json gcore:web && cd - >/dev/null
(cd "$tmp/b" && exec "$sgrun" "$tmp/hold.lua" web.json gcore:web 2>"$tmp/err")
check "the same relative name in another directory is another job: it runs" [ $? = 0 ]
"$sgrun" "$tmp/hold.lua" "$tmp/a/web.json" gcore:web 2>/dev/null
check "the same file by its absolute name is the same job: 75" [ $? = 75 ]
(cd "$tmp/b" && exec "$sgrun" "$tmp/hold.lua" ../a/web.json gcore:web 2>/dev/null)
check "the same file by another relative name is the same job: 75" [ $? = 75 ]
let_go
# a file a run writes (not there yet when the first run starts) is the same job once it exists
cd "$tmp/a" && hold out.json && cd - >/dev/null
echo '{}' >"$tmp/a/out.json"
(cd "$tmp/a" && exec "$sgrun" "$tmp/hold.lua" out.json 2>/dev/null)
check "an output file that appeared meanwhile keeps the job's key: 75" [ $? = 75 ]
let_go

"$sgrun" --every 1s "$tmp/no-such.lua" >"$tmp/out" 2>"$tmp/err"
check "a schedule of a script that is not there: exit 2 at once" [ $? = 2 ]
check "naming the script" grep -q "cannot read the script .*no-such.lua" "$tmp/err"
mkdir -p "$tmp/a-dir.lua"
"$sgrun" --every 1s "$tmp/a-dir.lua" >"$tmp/out" 2>"$tmp/err"
check "a schedule of a directory: exit 2 at once" bash -c "[ $? = 2 ] && grep -q 'not a regular file' '$tmp/err'"
"$sgrun" --every 1s -i "$tmp/tick.lua" >"$tmp/out" 2>"$tmp/err" </dev/null
check "a schedule with -i: exit 2, no run" bash -c "[ $? = 2 ] && ! grep -q tick '$tmp/out'"
"$sgrun" --every 0 "$tmp/tick.lua" 2>/dev/null
check "a bad duration is a usage error" [ $? = 2 ]
# periods a time_t schedule cannot keep would spin: refused before the first run
for every in 0.5 1.9 inf nan 1e300 400d; do
  "$sgrun" --every "$every" "$tmp/tick.lua" >"$tmp/out" 2>"$tmp/err"
  check "--every $every is a usage error" [ $? = 2 ]
  check "--every $every runs nothing" [ ! -s "$tmp/out" ]
done
check "and says what it takes" grep -q "whole seconds from 1s to 366d" "$tmp/err"
"$sgrun" --cron "0 0 31 2 *" "$tmp/tick.lua" >"$tmp/out" 2>"$tmp/err"
check "a cron expression that never matches is a usage error" [ $? = 2 ]
check "and runs nothing" [ ! -s "$tmp/out" ]
check "and says so" grep -q "matches no time" "$tmp/err"
"$sgrun" --cron "* * *" "$tmp/tick.lua" 2>"$tmp/err"
check "a bad cron expression is a usage error" [ $? = 2 ]
check "that explains the fields" grep -q "5 fields" "$tmp/err"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
