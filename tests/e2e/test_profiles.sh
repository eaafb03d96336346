#!/bin/bash
# Profiles from the command line: --profile picks the section sg.connect reads, a chosen profile
# is the whole account (the vendor variables are not read, never mixed in key by key; a key it
# lacks is an error naming it), and a profile file others can read is refused with the fix.
set -u
sgrun=$1
tmp=$(mktemp -d)
export SGRUN_LOCK_DIR=$tmp
sim_pid=""
trap '[ -n "$sim_pid" ] && kill $sim_pid 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "${BASH_SOURCE[0]}")/../support/check.sh"

"$sgrun" sim --port 0 --ready-file "$tmp/url" --env-file "$tmp/env" --quiet >/dev/null &
sim_pid=$!
for _ in $(seq 1200); do [ -s "$tmp/env" ] && [ -s "$tmp/url" ] && break; sleep 0.05; done
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
check "a chosen profile wins over the environment ($out)" [ "$out" = accepted ]
out=$(HOSTUP_API_KEY=$key "$sgrun" -e "$probe" 2>&1)
check "with no profile chosen the environment still wins over the default profile" [ "$out" = accepted ]
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

# --- a chosen profile is one whole account, against an emulator with accounts besides the demo
# one: its env file exports the demo account's credentials and SGRUN_PROFILES (the accounts').
"$sgrun" sim --port 0 --ready-file "$tmp/url2" --env-file "$tmp/env2" --accounts 1 \
  --fleet-file "$tmp/fleet.lua" --quiet >/dev/null &
sim_pid="$sim_pid $!"
for _ in $(seq 1200); do [ -s "$tmp/env2" ] && break; sleep 0.05; done
set -a
. "$tmp/env2"
set +a
# absent TEXT GREP-ARGS...: none of the strings is in TEXT
absent() {
  local text=$1
  shift
  ! grep -qF "$@" <<<"$text"
}
# the ids of the groups a connection sees: which account it reached
cat >"$tmp/ids.lua" <<'LUA'
local sg = require "sg"
local conn = sg.connect(arg[1], arg[2] and load("return " .. arg[2])() or nil)
local ids = {}
for _, g in ipairs(conn:groups()) do ids[#ids + 1] = tostring(g.id) end
table.sort(ids)
io.write(table.concat(ids, " "))
LUA
unset_gcore="-u GCORE_API_KEY -u GCORE_CLOUD_PROJECT_ID -u GCORE_CLOUD_REGION_ID"
for p in gcore exoscale genesis; do
  case $p in
    gcore) unset_env=$unset_gcore ;;
    exoscale) unset_env="-u EXOSCALE_API_KEY -u EXOSCALE_API_SECRET" ;;
    genesis) unset_env="-u GENESISCLOUD_TOKEN" ;;
  esac
  demo=$("$sgrun" "$tmp/ids.lua" $p 2>&1)
  # shellcheck disable=SC2086
  alone=$(env $unset_env "$sgrun" --profile $p-001 "$tmp/ids.lua" $p 2>&1)
  check "$p: the emulator's two accounts have different groups ($demo / $alone)" \
    bash -c "[ -n '$demo' ] && [ -n '$alone' ] && [ '$demo' != '$alone' ]"
  out=$("$sgrun" --profile $p-001 "$tmp/ids.lua" $p 2>&1)
  check "$p: --profile with the demo credentials in the environment reaches the profile's account ($out)" \
    [ "$out" = "$alone" ]
  out=$("$sgrun" "$tmp/ids.lua" $p "{profile = '$p-001'}" 2>&1)
  check "$p: so does the profile connect option ($out)" [ "$out" = "$alone" ]
  out=$("$sgrun" "$tmp/ids.lua" $p 2>&1)
  check "$p: with no profile chosen the environment's account is used, as before" [ "$out" = "$demo" ]
done
# shellcheck disable=SC2086
gcore_001=$(env $unset_gcore "$sgrun" --profile gcore-001 "$tmp/ids.lua" gcore 2>&1)

# a profile that lacks a key is never completed by the environment's (another account's) value
gkey=$(sed -n '/^\[gcore-001.gcore\]/,/^$/ s/^api_key = //p' "$SGRUN_PROFILES")
cp "$SGRUN_PROFILES" "$tmp/mixed.profiles"
printf '\n[half.gcore]\napi_key = %s\nregion_id = 76\n\n[half.exoscale]\nsecret = half-secret-0000\n' "$gkey" \
  >>"$tmp/mixed.profiles"
chmod 600 "$tmp/mixed.profiles"
out=$(SGRUN_PROFILES=$tmp/mixed.profiles "$sgrun" --profile half "$tmp/ids.lua" gcore 2>&1)
code=$?
check "gcore: a profile without project_id is not completed from GCORE_CLOUD_PROJECT_ID: exit $code" [ "$code" = 2 ]
check "naming the key, the profile and the section ($out)" grep -qF \
  "profile 'half' has no project_id: add 'project_id = ...' under [half.gcore] in $tmp/mixed.profiles" <<<"$out"
check "saying the environment variable is not used" \
  grep -q "GCORE_CLOUD_PROJECT_ID in the environment is not used" <<<"$out"
check "without a traceback" absent "$out" -e traceback
check "and without a credential" absent "$out" -e "$gkey" -e "$GCORE_API_KEY"
out=$(SGRUN_PROFILES=$tmp/mixed.profiles "$sgrun" --profile half "$tmp/ids.lua" exoscale 2>&1)
code=$?
check "exoscale: a profile with the secret but not the key is refused: exit $code" [ "$code" = 2 ]
check "naming the key and the profile ($out)" grep -qF \
  "sg.connect('exoscale'): profile 'half' has no key: add 'key = ...' under [half.exoscale]" <<<"$out"
check "and no credential" absent "$out" -e half-secret -e "$EXOSCALE_API_KEY" -e "$EXOSCALE_API_SECRET"
out=$("$sgrun" --profile nosuch "$tmp/ids.lua" gcore 2>&1)
code=$?
check "a chosen profile without a section for the provider is refused: exit $code" [ "$code" = 2 ]
check "naming the section ($out)" grep -qF \
  "profile 'nosuch' has no api_key: $SGRUN_PROFILES has no section [nosuch.gcore]" <<<"$out"
# explicit connect options still win over the profile, and may complete it
out=$(SGRUN_PROFILES=$tmp/mixed.profiles "$sgrun" "$tmp/ids.lua" gcore "{profile = 'half', project_id = 1}" 2>&1)
check "connect options complete a chosen profile ($out)" [ "$out" = "$gcore_001" ]

# a fleet account with a profile follows the same rule
cat >"$tmp/half-fleet.lua" <<'LUA'
return {
  { name = "whole", provider = "gcore", profile = "gcore-001", groups = { { group = "web", source = "gcore:web" } } },
  { name = "half", provider = "gcore", profile = "half", groups = { { group = "web", source = "gcore:web" } } },
}
LUA
out=$(SGRUN_PROFILES=$tmp/mixed.profiles "$sgrun" -e "
  local f = require('sg.fleet').load('$tmp/half-fleet.lua')
  local ids = {}
  for _, g in ipairs(f:connection(f.by_name.whole):groups()) do ids[#ids + 1] = tostring(g.id) end
  table.sort(ids)
  print(table.concat(ids, ' '))
  print(select(2, pcall(f.connection, f, f.by_name.half)))" 2>&1)
check "fleet: an account with a profile reaches the profile's account, not the environment's ($out)" \
  [ "$(head -1 <<<"$out")" = "$gcore_001" ]
check "fleet: an account whose profile lacks a key is refused, naming it" \
  grep -q "profile 'half' has no project_id" <<<"$out"

# a file far larger than a profile file is refused before it is read (not read whole into memory)
truncate -s 100M "$tmp/huge.profiles"
chmod 600 "$tmp/huge.profiles"
SGRUN_PROFILES="$tmp/huge.profiles" "$sgrun" --profile prod -e "$probe" >"$tmp/out" 2>&1
check "a 100 MB profile file is refused, saying it is too large" grep -q "more than a profile file holds" "$tmp/out"
rm -f "$tmp/huge.profiles"

# a misspelt profile name: the section it most likely meant is named
printf '[prod.hostup]\napi_key = %s\n' "$key" >"$tmp/prod.profiles"
chmod 600 "$tmp/prod.profiles"
SGRUN_PROFILES="$tmp/prod.profiles" "$sgrun" --profile prdo -e "$probe" >"$tmp/out" 2>&1
check "--profile prdo names the section it most likely meant" grep -q "no section \[prdo.hostup\].*did you mean \[prod.hostup\]?" "$tmp/out"

# lines that would be dropped or overridden without a word are refused, naming the line: a key
# before any section (whose account?), and a key given twice in a section (which one is meant?)
printf 'api_key = %s\n[prod.hostup]\napi_key = %s\n' "$key" "$key" >"$tmp/early.profiles"
printf '[prod.hostup]\napi_key = %s\napi_key = other-key\n' "$key" >"$tmp/twice.profiles"
chmod 600 "$tmp/early.profiles" "$tmp/twice.profiles"
SGRUN_PROFILES="$tmp/early.profiles" "$sgrun" --profile prod -e "$probe" >"$tmp/out" 2>&1
check "a key before any section is refused, naming line 1" grep -q "early.profiles line 1: key 'api_key' is before any \[profile.provider\] section" "$tmp/out"
check "... without showing its value" bash -c "! grep -q -- '$key' '$tmp/out'"
SGRUN_PROFILES="$tmp/twice.profiles" "$sgrun" --profile prod -e "$probe" >"$tmp/out" 2>&1
check "a key given twice in a section is refused, naming both lines" \
  grep -q "twice.profiles line 3: key 'api_key' is given again in \[prod.hostup\] (first on line 2)" "$tmp/out"
check "... without showing either value" bash -c "! grep -q -- '$key\|other-key' '$tmp/out'"
# a credential pasted twice on lines of its own reads as a key given twice: not named
printf '[prod.hostup]\nZ2NvcmUtcHJvZC1zZWNyZXQ=\nZ2NvcmUtcHJvZC1zZWNyZXQ=\n' >"$tmp/twice.profiles"
SGRUN_PROFILES="$tmp/twice.profiles" "$sgrun" --profile prod -e "$probe" >"$tmp/out" 2>&1
check "a pasted credential given twice is refused without being shown" \
  bash -c "grep -q 'line 3: key (not shown' '$tmp/out' && ! grep -q Z2NvcmUt '$tmp/out'"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
