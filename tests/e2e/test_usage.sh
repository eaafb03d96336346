#!/bin/bash
# Safety rails of the command line (issue 11, items 1 and 8): a misplaced or mistyped option and
# a malformed target are usage errors (exit 2, a usage line, no traceback) that send no request at
# all (checked in the emulator's request log); a dry run exits 3 when changes are pending and 0
# when there is nothing to change; tracebacks come back with --debug or SGRUN_DEBUG=1.
set -u
sgrun=$1
root=${SGRUN_SOURCE_DIR:?}
tmp=$(mktemp -d)
export SGRUN_LOCK_DIR=$tmp
sim_pid=""
trap '[ -n "$sim_pid" ] && kill $sim_pid 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "${BASH_SOURCE[0]}")/../support/check.sh"
. "$(dirname "${BASH_SOURCE[0]}")/../support/sim.sh"

start_sim --task-delay 50
requests() {
  curl -s "$url/_sim/log" | "$sgrun" -e "
    local log = require('sg').json.decode(io.read('a'))
    print(#log.requests)"
}
curl -s -X DELETE "$url/_sim/log" >/dev/null

# usage_case NAME ARGS...: exit 2, a message naming the problem, the usage line, no traceback
usage_case() {
  local name=$1
  shift
  "$@" >"$tmp/out" 2>"$tmp/err"
  check "$name: exit 2" [ $? = 2 ]
  check "$name: no traceback" bash -c "! grep -q 'stack traceback' '$tmp/err'"
  check "$name: no table address" bash -c "! grep -q 'table: 0x' '$tmp/err'"
}
usage_case "misplaced --dry-run" "$sgrun" "$root/scripts/rollout.lua" --dry-run exoscale:web gcore:web
check "says where --dry-run belongs" grep -q "put --dry-run before the playbook name" "$tmp/err"
check "and where the options are" grep -q "^Try 'sgrun --help'" "$tmp/err"
# with a value too: a playbook of the user's own would not look for --dry-run=yes and write for real
printf 'print("ran")\n' >"$tmp/own.lua"
for slip in --dry-run=yes --sim=1 --profile=prod; do
  usage_case "misplaced $slip" "$sgrun" "$tmp/own.lua" "$slip"
  check "misplaced $slip: says where it belongs" grep -q "put ${slip%%=*} before the playbook name" "$tmp/err"
  check "misplaced $slip: the playbook did not run" bash -c "! grep -q ran '$tmp/out'"
done
usage_case "misplaced --json" "$sgrun" "$root/scripts/drift.lua" x.json --json
check "says where --json belongs" grep -q "put --json before the playbook name" "$tmp/err"
# every option of sgrun's own (read off its --help, so a new one cannot be missed) given after
# the playbook name is pointed back before it
for opt in $("$sgrun" --help | grep -oE '^  (-[a-z], )?--[a-z][a-z-]*' | sed 's/.*--/--/'); do
  case $opt in --help | --version) continue ;; esac
  usage_case "misplaced $opt" "$sgrun" "$root/scripts/rollout.lua" exoscale:web gcore:web "$opt"
  check "says where $opt belongs" grep -q "put $opt before the playbook name" "$tmp/err"
done
usage_case "typoed flag" "$sgrun" "$root/scripts/rollout.lua" --addtive exoscale:web gcore:web
check "names the unknown option" grep -q "unknown option --addtive" "$tmp/err"
usage_case "empty group" "$sgrun" "$root/scripts/rollout.lua" exoscale:web gcore:
check "names the expected form" grep -q "expected PROVIDER:GROUP" "$tmp/err"
usage_case "vm that is not a number" "$sgrun" "$root/scripts/rollout.lua" exoscale:web hostup:vm=abc
check "says vm= takes a number" grep -q "vm= takes a positive whole number" "$tmp/err"
usage_case "a reference of another provider's form" "$sgrun" "$root/scripts/rollout.lua" exoscale:web gcore:vm=10000
check "says what gcore takes" grep -q 'target "gcore:vm=10000": gcore: a group reference is a name or an id' "$tmp/err"
usage_case "a HostUp target named like a group" "$sgrun" "$root/scripts/snapshot.lua" hostup:web "$tmp/s.json"
check "says HostUp takes vm=N" grep -q 'hostup: group reference "web" is not {vm = N}' "$tmp/err"
usage_case "an instance on a provider without them" "$sgrun" "$root/scripts/rollout.lua" exoscale:web genesis:instance=BRK-1
check "names the form" grep -q 'not {instance = "BRK-1"}' "$tmp/err"
usage_case "unknown provider" "$sgrun" "$root/scripts/snapshot.lua" nocloud:web "$tmp/s.json"
check "lists the known providers" grep -q "known: barrack, exoscale" "$tmp/err"
usage_case "an empty file name for the snapshot" "$sgrun" "$root/scripts/snapshot.lua" gcore:web ""
check "an empty file name: said before any request" grep -q "FILE is empty" "$tmp/err"
usage_case "a value-taking option before another option" "$sgrun" "$root/scripts/rollout.lua" --save --additive exoscale:web hostup:vm=10000
check "says --save needs its value" grep -q -- "--save needs a value (FILE) before --additive" "$tmp/err"
[ ! -e ./--additive ]
check "and writes no file named --additive" [ $? = 0 ]
usage_case "a value-taking option before a target" "$sgrun" "$root/scripts/rollout.lua" --save exoscale:web hostup:vm=10000 gcore:web
check "says exoscale:web is a target" grep -q "exoscale:web is a target" "$tmp/err"
usage_case "a target given twice" "$sgrun" "$root/scripts/rollout.lua" exoscale:web genesis:web genesis:web
check "names the repeated target" grep -q "target genesis:web is given twice" "$tmp/err"
usage_case "the same VM twice" "$sgrun" "$root/scripts/rollout.lua" exoscale:web hostup:vm=10000 hostup:vm=10000
usage_case "a playbook that does not exist" "$sgrun" "$tmp/nothere.lua"
check "names it" grep -q "cannot open .*nothere.lua" "$tmp/err"
usage_case "bad --timeout" "$sgrun" "$root/scripts/drift.lua" --timeout=soon x.json
usage_case "missing snapshot file" "$sgrun" "$root/scripts/drift.lua" "$tmp/none.json"
check "names the file" grep -q "none.json" "$tmp/err"
# no credential for any of the five: exit 2 before any request, naming the variable to set
mkdir -p "$tmp/nohome"
for target in barrack:web exoscale:web gcore:web genesis:web hostup:vm=10000; do
  usage_case "$target with no credential anywhere" env -i PATH="$PATH" HOME="$tmp/nohome" SGRUN_LOCK_DIR="$tmp" \
    "$sgrun" "$root/scripts/audit.lua" "$target"
  check "$target with no credential: says which variable to set" grep -q "set the environment variable [A-Z_]*" "$tmp/err"
done
# ... from a playbook of the user's own too: a user error (it raised with a traceback, exit 1)
usage_case "sg.connect with no credential, from -e" env -i PATH="$PATH" HOME="$tmp/nohome" SGRUN_LOCK_DIR="$tmp" \
  "$sgrun" -e 'require("sg").connect("gcore")'
check "sg.connect with no credential, from -e: says which variable to set" grep -q "set the environment variable GCORE_API_KEY" "$tmp/err"
# a chosen profile holds a real account's credentials: with --sim they would go to the emulator
usage_case "--sim with --profile" "$sgrun" --sim --profile prod -e 'print("ran")'
check "--sim with --profile: says to drop one" grep -q "drop one" "$tmp/err"
# a playbook of the user's own, which reads no options: one of the options that decide whether
# and where anything is written, given after its name (or after "-"), stops the run before it
# starts; after "--" it is the playbook's
printf 'local sg = require "sg"\nsg.connect("genesis"):create_security_group({ name = "should-not-exist" })\n' >"$tmp/writes.lua"
usage_case "--dry-run after a user's playbook" "$sgrun" "$tmp/writes.lua" --dry-run
check "says where --dry-run belongs" grep -q "put --dry-run before the playbook name" "$tmp/err"
usage_case "--dry-run after -" bash -c "\"\$0\" - --dry-run <'$tmp/writes.lua'" "$sgrun"
check "says where --dry-run belongs, for -" grep -q "put --dry-run before the '-'" "$tmp/err"
usage_case "--profile=x after a user's playbook" "$sgrun" "$tmp/writes.lua" a --profile=x
check "says where --profile belongs" grep -q "put --profile before the playbook name" "$tmp/err"
check "no request was sent by any of these" [ "$(requests)" = 0 ]
# a credential the provider refuses (401, Exoscale's 403 for a bad signature): the message names
# where it came from, never its value
GCORE_API_KEY=wrong-gcore-key-123 "$sgrun" "$root/scripts/audit.lua" gcore:web >"$tmp/out" 2>"$tmp/err"
check "a refused Gcore key: exit 1" [ $? = 1 ]
check "a refused Gcore key: names the variable to check" \
  grep -q "did not accept the credentials for this call: check the environment variable GCORE_API_KEY" "$tmp/err"
check "a refused Gcore key: its value is not printed" bash -c "! grep -q wrong-gcore-key '$tmp/err'"
EXOSCALE_API_SECRET=wrong-exo-secret-456 "$sgrun" "$root/scripts/audit.lua" exoscale:web >"$tmp/out" 2>"$tmp/err"
check "a refused Exoscale signature: names both variables" \
  grep -q "check the environment variable EXOSCALE_API_KEY and the environment variable EXOSCALE_API_SECRET" "$tmp/err"
check "a refused Exoscale signature: the secret is not printed" bash -c "! grep -q wrong-exo-secret '$tmp/err'"
printf 'print(arg[1], arg[2])\n' >"$tmp/args.lua"
"$sgrun" "$tmp/args.lua" -- --dry-run >"$tmp/out" 2>&1
check "after --, --dry-run is the playbook's" grep -q "^--	--dry-run$" "$tmp/out"

# user errors met after reading: exit 2 (or 1 for this machine's), a message, no traceback
usage_case "a group that does not exist" "$sgrun" "$root/scripts/audit.lua" gcore:wbe
check "names the group and what to do" grep -q "gcore has no group wbe: .*check the name" "$tmp/err"
mkdir -p "$tmp/adir"
usage_case "a directory for a snapshot file" "$sgrun" "$root/scripts/drift.lua" "$tmp/adir"
check "says it cannot be read" grep -q "cannot read: .*adir is not a regular file (a directory)" "$tmp/err"
# a FIFO planted where a snapshot, an inventory or a report is named is refused at once; opening
# it would wait for a writer for ever (timeout 20 turns such a hang into exit 124)
mkfifo "$tmp/fifo"
usage_case "a FIFO for a snapshot file" timeout 20 "$sgrun" "$root/scripts/drift.lua" "$tmp/fifo"
check "says it is a FIFO" grep -q "cannot read: .*fifo is not a regular file (a FIFO)" "$tmp/err"
usage_case "a FIFO for a roll-out's source" timeout 20 "$sgrun" "$root/scripts/rollout.lua" --dry-run "$tmp/fifo" gcore:web
usage_case "a FIFO for a fleet inventory" timeout 20 "$sgrun" "$root/scripts/fleet.lua" drift "$tmp/fifo"
check "says the inventory is a FIFO" grep -q "fifo is not a regular file (a FIFO)" "$tmp/err"
usage_case "a FIFO for a fleet report" timeout 20 "$sgrun" "$root/scripts/fleet.lua" merge "$tmp/fifo"
check "says the report is a FIFO" grep -q "fifo is not a regular file (a FIFO)" "$tmp/err"
"$sgrun" "$root/scripts/snapshot.lua" gcore:web "$tmp/adir" >"$tmp/out" 2>"$tmp/err"
check "a snapshot that cannot be written: exit 1" [ $? = 1 ]
check "a snapshot that cannot be written: no traceback" bash -c "! grep -q 'stack traceback' '$tmp/err'"
check "a snapshot that cannot be written: says why" grep -q "write failed: Is a directory" "$tmp/err"
# a directory reached through a symlink is written to (its sync refused the symlink: exit 1
# after the file was written, and a roll-out with --save stopped)
mkdir -p "$tmp/real-dir" && ln -s "$tmp/real-dir" "$tmp/linked-dir"
"$sgrun" "$root/scripts/snapshot.lua" gcore:web "$tmp/linked-dir/s.json" >"$tmp/out" 2>"$tmp/err"
check "a snapshot into a symlinked directory: exit 0" [ $? = 0 ]
check "a snapshot into a symlinked directory: the file is there" [ -s "$tmp/real-dir/s.json" ]
"$sgrun" --sim --state "$tmp/linked-dir/state.json" -e 'print("ran")' >"$tmp/out" 2>"$tmp/err"
check "--state in a symlinked directory: exit 0 and saved" bash -c "[ $? = 0 ] && [ -s '$tmp/real-dir/state.json' ]"

SGRUN_DEBUG=1 "$sgrun" "$root/scripts/drift.lua" "$tmp/none.json" 2>"$tmp/err"
check "SGRUN_DEBUG=1 shows the traceback" grep -q "stack traceback" "$tmp/err"
"$sgrun" --debug "$root/scripts/drift.lua" "$tmp/none.json" 2>"$tmp/err"
check "--debug shows the traceback" grep -q "stack traceback" "$tmp/err"

"$sgrun" "$root/scripts/rollout.lua" --help >"$tmp/out"
check "--help after the playbook prints its usage, exit 0" grep -q "^usage: " "$tmp/out"

"$sgrun" --dry-run "$root/scripts/rollout.lua" --allow-lossy exoscale:web gcore:web >"$tmp/out" 2>&1
check "a dry run with pending changes exits 3" [ $? = 3 ]
"$sgrun" "$root/scripts/rollout.lua" --yes --allow-lossy exoscale:web gcore:web >"$tmp/out" 2>&1
check "the roll-out itself exits 0" [ $? = 0 ]
"$sgrun" --dry-run "$root/scripts/rollout.lua" --allow-lossy exoscale:web gcore:web >"$tmp/out" 2>&1
check "a dry run with nothing to change exits 0" [ $? = 0 ]
[ "$failed" = 0 ] || cat "$tmp/out" >&2

# --timeout reaches every call: against a slow emulator a short limit fails fast with a timeout
# (without it the default of 30 s would let the call wait out the 5 s latency and succeed)
"$sgrun" sim --port 0 --ready-file "$tmp/slow.url" --env-file "$tmp/slow.env" --latency 5000 --quiet \
  >/dev/null &
slow_pid=$!
for _ in $(seq 1200); do [ -s "$tmp/slow.env" ] && break; sleep 0.05; done
(
  set -a
  . "$tmp/slow.env"
  set +a
  "$sgrun" "$root/scripts/snapshot.lua" --timeout 0.5 exoscale:web "$tmp/slow.json" >"$tmp/out" 2>&1
)
check "snapshot.lua --timeout 0.5 against a 5 s latency fails" [ $? = 1 ]
check "with a timeout error" grep -qi "timeout" "$tmp/out"
check "and writes no file" [ ! -e "$tmp/slow.json" ]
kill $slow_pid 2>/dev/null
# seconds are written in decimal: Lua's tonumber would read 0x10 as 16 s and 1e3 as 1000 s
for t in 0x10 1e3 ' 5' inf; do
  "$sgrun" "$root/scripts/snapshot.lua" --timeout "$t" exoscale:web "$tmp/slow.json" >/dev/null 2>"$tmp/err"
  check "--timeout '$t' is a usage error (exit 2)" [ $? = 2 ]
  check "saying it takes a number of seconds" grep -q -- "--timeout takes a number of seconds" "$tmp/err"
done

# A file named like a target (planted by another user in a shared directory, or written by an
# earlier command) is never read in the target's place: PROVIDER:GROUP is the live group always,
# a snapshot file so named is given as ./gcore:web, and snapshot.lua will not write one.
mkdir "$tmp/shared"
cd "$tmp/shared" || exit 1
"$sgrun" -e "require('sg').save({format = 'sgrun.snapshot/1', provider = 'exoscale', group = {name = 'web'},
  rules = {{direction = 'ingress', protocol = 'any', cidr = '0.0.0.0/0', description = 'planted'}}}, 'gcore:web')"
"$sgrun" --dry-run "$root/scripts/rollout.lua" --allow-lossy gcore:web exoscale:web >"$tmp/out" 2>&1
check "a planted gcore:web file is not the roll-out's source" bash -c "! grep -q planted '$tmp/out'"
"$sgrun" "$root/scripts/audit.lua" gcore:web >"$tmp/out" 2>&1
check "nor what audit.lua reads for gcore:web" bash -c "! grep -q planted '$tmp/out'"
"$sgrun" --dry-run "$root/scripts/rollout.lua" --allow-lossy ./gcore:web exoscale:web >"$tmp/out" 2>&1
check "./gcore:web names the file" grep -q planted "$tmp/out"
"$sgrun" "$root/scripts/drift.lua" gcore:web >"$tmp/out" 2>"$tmp/err"
check "drift.lua does not read a file named like a target: exit 2" [ $? = 2 ]
check "it says to name the file ./gcore:web" grep -q "given as ./gcore:web" "$tmp/err"
# ... nor one named with a provider's name in another letter case: a typo of a target, which
# without the file is the usage error naming the lower-case name, not a file that may be there
cp gcore:web GCORE:web
cp gcore:web Exoscale:web
"$sgrun" "$root/scripts/audit.lua" GCORE:web >"$tmp/out" 2>"$tmp/err"
check "a planted GCORE:web file: audit.lua exits 2" [ $? = 2 ]
check "saying provider names are lower case" grep -q 'unknown provider "GCORE".*provider names are lower case: gcore' "$tmp/err"
check "without reading the file" bash -c "! grep -q 'planted\|no exposure' '$tmp/out' '$tmp/err'"
"$sgrun" --dry-run "$root/scripts/rollout.lua" --allow-lossy Exoscale:web gcore:web >"$tmp/out" 2>"$tmp/err"
check "a planted Exoscale:web file is not the roll-out's source: exit 2" [ $? = 2 ]
check "saying provider names are lower case: exoscale" \
  grep -q 'unknown provider "Exoscale".*provider names are lower case: exoscale' "$tmp/err"
check "and planning nothing from it" bash -c "! grep -q 'planted\|planned' '$tmp/out' '$tmp/err'"
"$sgrun" "$root/scripts/audit.lua" ./GCORE:web >"$tmp/out" 2>&1
check "./GCORE:web names the file" grep -q planted "$tmp/out"
# ... nor one named like a target with no group: gcore: is the malformed target README names
cp gcore:web gcore:
cp gcore:web HOSTUP:
"$sgrun" --dry-run "$root/scripts/rollout.lua" --allow-lossy gcore: exoscale:web >"$tmp/out" 2>"$tmp/err"
check "a planted gcore: file is not the roll-out's source: exit 2" [ $? = 2 ]
check "saying what a target looks like" grep -q 'target "gcore:": ' "$tmp/err"
check "and planning nothing from it" bash -c "! grep -q 'planted\|planned' '$tmp/out' '$tmp/err'"
"$sgrun" "$root/scripts/audit.lua" HOSTUP: >"$tmp/out" 2>"$tmp/err"
check "a planted HOSTUP: file: audit.lua exits 2" [ $? = 2 ]
check "without reading the file" bash -c "! grep -q 'planted\|no exposure' '$tmp/out' '$tmp/err'"
"$sgrun" "$root/scripts/snapshot.lua" exoscale:web gcore:db >"$tmp/out" 2>"$tmp/err"
check "snapshot.lua refuses to write a file named like a target: exit 2" [ $? = 2 ]
check "saying how to name one" grep -q "write ./gcore:db" "$tmp/err"
check "and writes none" [ ! -e gcore:db ]
cd - >/dev/null || exit 1

# an empty profile name is a typo (an unset variable in a script), not the profile "" of every account
"$sgrun" --profile '' -e 'print("ran")' >"$tmp/out" 2>"$tmp/err"
check "--profile '' is a usage error (exit 2)" [ $? = 2 ]
check "saying a profile name is needed, before running anything" \
  bash -c "grep -q \"'--profile' needs a profile name\" '$tmp/err' && ! grep -q ran '$tmp/out'"

# a profile file or base URL sgrun refuses is the user's to fix, in a playbook of their own too:
# exit 2 with the message, no traceback into sgrun's library
printf '[default.gcore]\napi_key = k-12345678\nproject_id = 1\nregion_id = 9\n' >"$tmp/open.profiles"
chmod 644 "$tmp/open.profiles"
for setting in "SGRUN_PROFILES=$tmp/open.profiles" "SGRUN_GCORE_URL=https://user:pw@api.example/cloud" \
    "SGRUN_GCORE_URL=ftp://api.example/cloud" "SGRUN_GCORE_URL=http://api.example/cloud"; do
  env -u GCORE_API_KEY SGRUN_PROFILES="$tmp/none.profiles" "$setting" \
    "$sgrun" -e 'require("sg").connect("gcore", {api_key = "k-12345678", project_id = 1, region_id = 9})' \
    >"$tmp/out" 2>&1
  check "sg.connect with $setting: exit 2" [ $? = 2 ]
  check "... without a traceback" bash -c "! grep -q 'stack traceback' '$tmp/out'"
done

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
