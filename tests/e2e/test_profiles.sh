#!/bin/bash
# Profiles from the command line: --profile picks the section sg.connect reads, the environment
# still wins over the file, and a profile file others can read is refused with the fix.
set -u
sgrun=$1
tmp=$(mktemp -d)
export SGRUN_LOCK_DIR=$tmp
sim_pid=""
trap '[ -n "$sim_pid" ] && kill $sim_pid 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "${BASH_SOURCE[0]}")/../support/check.sh"

"$sgrun" sim --port 0 --ready-file "$tmp/url" --env-file "$tmp/env" --quiet >/dev/null &
sim_pid=$!
for _ in $(seq 100); do [ -s "$tmp/env" ] && break; sleep 0.05; done
url=$(cat "$tmp/url")
key=$(sed -n 's/^HOSTUP_API_KEY=//p' "$tmp/env")
export SGRUN_HOSTUP_URL="$url/hostup/api"
export SGRUN_PROFILES="$tmp/profiles"
unset HOSTUP_API_KEY
printf '[default.hostup]\napi_key = wrong-key\n\n[prod.hostup]\napi_key = %s\n' "$key" >"$SGRUN_PROFILES"
chmod 600 "$SGRUN_PROFILES"
probe='local ok, err = pcall(function() return require("sg").connect("hostup"):list_firewall_rules(10000) end)
print(ok and "accepted" or "refused: " .. tostring(err))'

out=$("$sgrun" -e "$probe" 2>&1)
check "without --profile the default profile is used (its key is refused)" grep -q "refused" <<<"$out"
check "and the key is not printed" bash -c "! grep -q wrong-key <<<'$out'"
out=$("$sgrun" --profile prod -e "$probe" 2>&1)
check "--profile prod selects the prod section" [ "$out" = accepted ]
out=$(HOSTUP_API_KEY=wrong-env-key "$sgrun" --profile prod -e "$probe" 2>&1)
check "the environment wins over the profile file" grep -q "refused" <<<"$out"
out=$("$sgrun" --profile prod -e "
  local ok = pcall(function() return require('sg').connect('hostup', {api_key = 'wrong-opt'}):list_firewall_rules(10000) end)
  print(ok and 'accepted' or 'refused')" 2>&1)
check "sg.connect options win over everything" [ "$out" = refused ]

chmod 644 "$SGRUN_PROFILES"
out=$("$sgrun" --profile prod -e "$probe" 2>&1)
check "a profile file others can read is refused" grep -q "others can read it" <<<"$out"
check "saying how to fix it" grep -q "chmod 600 $SGRUN_PROFILES" <<<"$out"

# a FIFO in its place is refused at once, not waited on for ever (bounded: a hang fails the check)
mkfifo -m 600 "$tmp/fifo-profiles"
out=$(SGRUN_PROFILES="$tmp/fifo-profiles" timeout 20 "$sgrun" --profile prod -e "$probe" 2>&1)
code=$?
check "a FIFO as the profile file is refused without waiting" [ "$code" != 124 ]
check "saying it is not a regular file" grep -q "is not a regular file" <<<"$out"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
