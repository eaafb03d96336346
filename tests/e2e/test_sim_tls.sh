#!/bin/bash
# Issue 14 item 1: `sgrun sim --tls` serves HTTPS from a CA of its own; its env file names that CA
# (SGRUN_CA_FILE), which every connection trusts, so the roll-out playbook runs against it with
# verification on; a client without the CA is refused; --tls-dir keeps the CA across restarts.
set -u
sgrun=$1
root=${SGRUN_SOURCE_DIR:?}
tmp=$(mktemp -d)
export SGRUN_LOCK_DIR=$tmp
unset SGRUN_CA_FILE
sim_pid=""
stop_sim() {
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
  sim_pid=""
}
trap 'stop_sim; rm -rf "$tmp"' EXIT
. "$(dirname "${BASH_SOURCE[0]}")/../support/check.sh"
start_sim() {
  rm -f "$tmp/url" "$tmp/env"
  "$sgrun" sim --tls --tls-dir "$tmp/tls" --port 0 --ready-file "$tmp/url" --env-file "$tmp/env" \
    --task-delay 150 --quiet >"$tmp/sim.out" 2>&1 &
  sim_pid=$!
  for _ in $(seq 1200); do [ -s "$tmp/env" ] && [ -s "$tmp/url" ] && break; sleep 0.05; done
}
env_value() { sed -n "s/^$1=//p" "$tmp/env"; }

start_sim
url=$(cat "$tmp/url")
ca=$(env_value SGRUN_CA_FILE)
check "the emulator serves https" [ "${url#https://127.0.0.1:}" != "$url" ]
check "the env file names the CA in --tls-dir" [ "$ca" = "$tmp/tls/ca.pem" ]
check "and points the providers at https" [ "$(env_value SGRUN_GCORE_URL)" = "$url/gcore" ]
check "the banner prints where the certificates are" grep -q "TLS: certificates in $tmp/tls" "$tmp/sim.out"
check "the CA key is private" [ "$(stat -c %a "$tmp/tls/ca.key")" = 600 ]

# sg.http with and without the CA: the code of a refusal is "tls"
probe() {
  "$sgrun" -e "
    local r, err, code = require('sg').http.request { url = '$url/_sim/knobs' }
    io.write(r and tostring(r.status) or code)" 2>&1
}
check "a client without the CA is refused" [ "$(probe)" = tls ]
check "curl without the CA is refused too" bash -c "! curl -sf '$url/_sim/knobs' >/dev/null 2>&1"
check "SGRUN_CA_FILE makes sg.http trust it" [ "$(SGRUN_CA_FILE=$ca probe)" = 200 ]
mkdir "$tmp/empty"
check "a ca_path of the request wins over SGRUN_CA_FILE" [ "$(SGRUN_CA_FILE=$ca "$sgrun" -e "
    local r, err, code = require('sg').http.request { url = '$url/_sim/knobs', ca_path = '$tmp/empty' }
    io.write(r and tostring(r.status) or code)" 2>&1)" = tls ]

# the roll-out playbook with the emulator's environment, verification on
(
  set -a
  . "$tmp/env"
  set +a
  "$sgrun" "$root/scripts/rollout.lua" --allow-lossy exoscale:web gcore:web hostup:vm=10000 >"$tmp/out" 2>&1
)
check "the roll-out over TLS exits 0" [ $? = 0 ]
check "and reports success" grep -q "roll-out: ok" "$tmp/out"
check "its writes reached the emulator" [ "$(curl -s --cacert "$ca" "$url/_sim/log" | grep -o '"method":"POST"' | wc -l)" -gt 0 ]
(
  set -a
  . "$tmp/env"
  set +a
  unset SGRUN_CA_FILE
  "$sgrun" "$root/scripts/rollout.lua" --allow-lossy exoscale:web gcore:web >"$tmp/out.noca" 2>&1
)
check "without SGRUN_CA_FILE the roll-out fails" [ $? != 0 ]
check "and says how to trust the CA" grep -q SGRUN_CA_FILE "$tmp/out.noca"

# a restart keeps the CA: what clients trust stays valid, the server certificate is new
cp "$tmp/tls/ca.pem" "$tmp/ca.before"
cp "$tmp/tls/server.pem" "$tmp/server.before"
stop_sim
start_sim
url=$(cat "$tmp/url")
check "a restart reuses the CA" cmp -s "$tmp/ca.before" "$tmp/tls/ca.pem"
check "with a new server certificate" bash -c "! cmp -s '$tmp/server.before' '$tmp/tls/server.pem'"
check "which the old CA still verifies" [ "$(SGRUN_CA_FILE=$tmp/ca.before probe)" = 200 ]
stop_sim
check "--tls-dir is kept on exit" [ -s "$tmp/tls/ca.pem" ]

# without --tls-dir the directory is private to the run and removed at exit
TMPDIR=$tmp "$sgrun" sim --tls --port 0 --env-file "$tmp/env2" --quiet >/dev/null 2>&1 &
sim_pid=$!
for _ in $(seq 1200); do [ -s "$tmp/env2" ] && break; sleep 0.05; done
ca2=$(sed -n 's/^SGRUN_CA_FILE=//p' "$tmp/env2")
check "a temporary CA directory is made" [ -s "$ca2" ]
check "and is private" [ "$(stat -c %a "$(dirname "$ca2")")" = 700 ]
stop_sim
check "and removed at exit" [ ! -e "$(dirname "$ca2")" ]

# the in-process emulator too
"$sgrun" --sim --tls -e "
  local sg = require 'sg'
  assert(os.getenv('SGRUN_SIM_URL'):match('^https://'), os.getenv('SGRUN_SIM_URL'))
  assert(os.getenv('SGRUN_CA_FILE'))
  local r = assert(sg.http.request { url = os.getenv('SGRUN_SIM_URL') .. '/_sim/knobs' })
  assert(r.status == 200)" >"$tmp/out" 2>&1
check "sgrun --sim --tls serves https and trusts its CA" [ $? = 0 ]
"$sgrun" --tls -e "" 2>/dev/null
check "--tls without --sim is a usage error" [ $? = 2 ]
"$sgrun" sim --tls-dir "$tmp/x" 2>/dev/null
check "--tls-dir without --tls is a usage error" [ $? = 2 ]

# The CA there is what clients are told to trust: a --tls-dir others can write (or a link to
# one) is refused before anything is made in it, as the lock directory is.
mkdir -m 777 "$tmp/shared-tls"
chmod 777 "$tmp/shared-tls"
"$sgrun" sim --tls --tls-dir "$tmp/shared-tls" --port 0 >"$tmp/out" 2>&1
check "a --tls-dir others can write is refused: exit 2" [ $? = 2 ]
check "saying why" grep -q "invalid --tls-dir .*: it is writable by others" "$tmp/out"
check "and nothing is made in it" [ -z "$(ls -A "$tmp/shared-tls")" ]
ln -s "$tmp/tls" "$tmp/tls-link"
"$sgrun" sim --tls --tls-dir "$tmp/tls-link" --port 0 >"$tmp/out" 2>&1
check "a --tls-dir that is a symbolic link is refused: exit 2" [ $? = 2 ]
check "saying so" grep -q "it is a symbolic link" "$tmp/out"
# Checked, then swapped: whoever can write the parent of --tls-dir could move it aside and put a
# link to a directory of theirs in its place after the check; the CA key must still be written
# only in the directory that was checked.
mkdir -m 700 "$tmp/parent" "$tmp/parent/tls"
mkdir -m 777 "$tmp/theirs"
chmod 777 "$tmp/theirs"
rm -f "$tmp/url"
LD_PRELOAD=${SWAPDIR:?} SWAPDIR_TRIGGER=/ca.pem SWAPDIR_DIR="$tmp/parent/tls" SWAPDIR_TO="$tmp/theirs" \
  ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
  "$sgrun" sim --tls --tls-dir "$tmp/parent/tls" --port 0 --ready-file "$tmp/url" --quiet >"$tmp/out" 2>&1 &
sim_pid=$!
for _ in $(seq 1200); do [ -s "$tmp/url" ] && break; sleep 0.05; done
stop_sim
check "--tls-dir swapped for a link after its check: the link was planted" [ -L "$tmp/parent/tls" ]
check "nothing is written where the link points" [ -z "$(ls -A "$tmp/theirs")" ]
check "the CA is in the directory that was checked" [ -s "$tmp/parent/tls.moved/ca.key" ]

echo "$passed passed, $failed failed"
[ "$failed" = 0 ] || { cat "$tmp/out" "$tmp/sim.out" >&2; exit 1; }
