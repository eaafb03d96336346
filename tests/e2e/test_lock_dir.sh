#!/bin/bash
# The lock directory does not depend on the session's environment: the same user's runs with
# different XDG_RUNTIME_DIR values (a login shell's, another session's) or none (cron) share one
# lock and one set of roll-out journals. Runs in the default directory (SGRUN_LOCK_DIR unset),
# on names of its own: a playbook in its own directory, a group name no other test uses.
set -u
sgrun=$1
root=${SGRUN_SOURCE_DIR:?}
unset SGRUN_LOCK_DIR
tmp=$(mktemp -d)
holder=""
trap '[ -n "$holder" ] && kill $holder 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "${BASH_SOURCE[0]}")/../support/check.sh"
mkdir -m 700 "$tmp/login" "$tmp/other"

cp "$(dirname "${BASH_SOURCE[0]}")/../support/hold_lock.lua" "$tmp/hold.lua"
XDG_RUNTIME_DIR=$tmp/login HOLD_MARK=$tmp/held HOLD_RELEASE=$tmp/release "$sgrun" "$tmp/hold.lua" &
holder=$!
for _ in $(seq 300); do [ -e "$tmp/held" ] && break; sleep 0.1; done
check "the login-shell run holds the lock" [ -e "$tmp/held" ]
XDG_RUNTIME_DIR=$tmp/other "$sgrun" "$tmp/hold.lua" 2>"$tmp/err"
check "a run with another XDG_RUNTIME_DIR finds the lock taken: 75" [ $? = 75 ]
check "... naming the holder" grep -q "pid $holder" "$tmp/err"
env -u XDG_RUNTIME_DIR "$sgrun" "$tmp/hold.lua" 2>"$tmp/err"
check "a run without XDG_RUNTIME_DIR (cron) finds the lock taken: 75" [ $? = 75 ]
touch "$tmp/release"
wait $holder
holder=""
check "nothing went to the session's runtime directories" [ -z "$(ls -A "$tmp/login")$(ls -A "$tmp/other")" ]

# a journal left (as by a killed run) under one environment is found by --recover under another
group="lockdir-$$-$RANDOM"
XDG_RUNTIME_DIR=$tmp/login "$sgrun" -e "
local json = require('sg').json
local journal = require 'sg.journal'
local j = journal.start(journal.path('test_lock_dir ' .. '$group'), { atomic = true, mode = 'authoritative',
  targets = json.array { { provider = 'gcore', group = '$group', exists = false, before = json.array(),
    keep = json.array(), add = json.array(), remove = json.array() } } })
j:keep()
print(j.path)" >"$tmp/journal" 2>"$tmp/err"
check "a journal is left in the login session" [ -s "$tmp/journal" ]
# a Gcore account that is never reached: nothing of this journal was written
export GCORE_API_KEY=test-key GCORE_CLOUD_PROJECT_ID=1 GCORE_CLOUD_REGION_ID=1 SGRUN_GCORE_URL=http://127.0.0.1:9
env -u XDG_RUNTIME_DIR "$sgrun" "$root/scripts/rollout.lua" --recover "gcore:$group" >"$tmp/out" 2>&1
check "--recover without XDG_RUNTIME_DIR exits 0" [ $? = 0 ]
check "... and found the login session's journal" grep -qF "journal $(cat "$tmp/journal") (atomic roll-out)" "$tmp/out"
check "... which it dealt with" grep -q "untouched: the killed run had not written to it" "$tmp/out"
check "... and removed" [ ! -e "$(cat "$tmp/journal")" ]
XDG_RUNTIME_DIR=$tmp/other "$sgrun" "$root/scripts/rollout.lua" --recover "gcore:$group" >"$tmp/out" 2>&1
check "--recover with nothing left exits 0" [ $? = 0 ]
dir=$(dirname "$(cat "$tmp/journal")")
check "... naming the directory it searched" \
  grep -qxF "recover: no unfinished roll-out for these targets in $dir; nothing to do" "$tmp/out"
[ "$failed" = 0 ] || cat "$tmp/out" "$tmp/err" >&2

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
