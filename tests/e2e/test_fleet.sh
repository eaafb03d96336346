#!/bin/bash
# Fleets on the emulator: 50 accounts (10 per provider, `sgrun sim --accounts 10 --fleet-file`),
# run by scripts/fleet.lua with the inventory and profile file as the emulator wrote them.
# Drift reports exactly the accounts changed behind its back; rollout converges them; an account
# with bad credentials and a provider answering 429 to 30% of requests still give a complete
# report (that account failed, every other one done); 4 shards cover every account once and
# merge to the report of one unsharded run; a credential written in an inventory is refused.
set -u
sgrun=$1
root=${SGRUN_SOURCE_DIR:?}
tmp=$(mktemp -d)
export SGRUN_LOCK_DIR=$tmp
sim_pid=""
trap '[ -n "$sim_pid" ] && kill $sim_pid 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "${BASH_SOURCE[0]}")/../support/check.sh"
. "$(dirname "${BASH_SOURCE[0]}")/../support/sim.sh"
fleet() { "$sgrun" "$root/scripts/fleet.lua" "$@"; }
# canon: a Lua function giving a value's JSON with sorted keys, so two reports compare as text
canon='local function canon(v)
  if type(v) ~= "table" then return require("sg").json.encode(v) end
  local keys, out = {}, {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do out[#out + 1] = tostring(k) .. "=" .. canon(v[k]) end
  return "{" .. table.concat(out, ",") .. "}"
end'

# report FILE LUA: runs LUA with `r` the decoded JSON report and `by` its accounts by name
report() {
  "$sgrun" -e "
    local r = assert(require('sg').json.decode(io.open('$1'):read('a')))
    local by = {}
    for _, a in ipairs(r.accounts) do by[a.name] = a end
    $2"
}

start_sim --accounts 10 --fleet-file "$tmp/fleet.lua" --task-delay 100 --seed 7
check "the profile file is beside the inventory, mode 0600" \
  [ "$(stat -c %a "$tmp/fleet.profiles")" = 600 ]
check "the env file names it" [ "$SGRUN_PROFILES" = "$tmp/fleet.profiles" ]
"$sgrun" sim --port 0 --accounts 1 --fleet-file "$tmp/fleet.lua" >/dev/null 2>"$tmp/excl.err"
check "an existing fleet file is never overwritten" grep -q "never overwritten" "$tmp/excl.err"

fleet drift --json "$tmp/fleet.lua" >"$tmp/clean.json" 2>"$tmp/err"
check "a fresh fleet has no drift (exit 0)" [ $? = 0 ]
check "50 accounts, all clean" report "$tmp/clean.json" \
  "assert(#r.accounts == 50 and r.totals.by_status.clean == 50, require('sg').json.encode(r.totals))"

# change three accounts behind the fleet's back: drop one ingress rule each
changed="exoscale-003 gcore-007 hostup-002"
for name in $changed; do
  "$sgrun" -e "
    local sg = require 'sg'
    local f = require('sg.fleet').load('$tmp/fleet.lua')
    local a = f.by_name['$name']
    local conn, ref = f:connection(a), a.groups[1].ref
    local snap = sg.snapshot(conn, ref)
    for i = #snap.rules, 1, -1 do
      if snap.rules[i].direction == 'ingress' then table.remove(snap.rules, i) break end
    end
    assert(sg.apply(sg.plan(conn, ref, snap, { lossy = 'allow' })).ok)" 2>>"$tmp/err"
done
fleet drift --json "$tmp/fleet.lua" >"$tmp/drift.json" 2>>"$tmp/err"
check "drift exits 3" [ $? = 3 ]
check "drift reports exactly the changed accounts" report "$tmp/drift.json" "
  local want = {}
  for n in ('$changed'):gmatch('%S+') do want[n] = true end
  assert(#r.accounts == 50)
  for _, a in ipairs(r.accounts) do
    assert((a.status == 'drift') == (want[a.name] == true), a.name .. ' ' .. a.status)
    if want[a.name] then assert(#a.groups[1].changes.add == 1, a.name) end
  end"
fleet drift "$tmp/fleet.lua" >"$tmp/drift.txt" 2>>"$tmp/err"
check "the text report has a line per account and the missing rule" \
  bash -c "[ \$(grep -cE '^  [a-z]+-[0-9]{3} ' '$tmp/drift.txt') = 50 ] && grep -q '^        + ingress' '$tmp/drift.txt'"

# on a terminal a roll-out over the fleet is refused without --yes (it removed rules on every
# account without a word); `script` gives it a terminal
curl -s -X DELETE "$url/_sim/log" >/dev/null
script -qec "'$sgrun' '$root/scripts/fleet.lua' rollout '$tmp/fleet.lua'" /dev/null >"$tmp/tty.out" 2>&1 </dev/null
check "fleet rollout on a terminal without --yes: exit 2" [ $? = 2 ]
check "fleet rollout on a terminal without --yes: says how to review and go ahead" \
  grep -q "review it with \`sgrun --dry-run .*scripts/fleet.lua rollout .*fleet.lua\`, then run it with --yes" "$tmp/tty.out"
check "fleet rollout on a terminal without --yes: no write" [ "$(curl -s "$url/_sim/log" | "$sgrun" -e "
  local n = 0
  for _, e in ipairs(require('sg').json.decode(io.read('a')).requests) do if e.method ~= 'GET' then n = n + 1 end end
  print(n)")" = 0 ]
fleet rollout --json "$tmp/fleet.lua" >"$tmp/rollout.json" 2>>"$tmp/err"
check "rollout exits 0" [ $? = 0 ]
check "rollout converged the changed accounts and left the others" report "$tmp/rollout.json" "
  local want = {}
  for n in ('$changed'):gmatch('%S+') do want[n] = true end
  for _, a in ipairs(r.accounts) do
    assert(a.status == (want[a.name] and 'converged' or 'clean'), a.name .. ' ' .. a.status)
  end"
fleet drift "$tmp/fleet.lua" >/dev/null 2>>"$tmp/err"
check "after the rollout, no drift" [ $? = 0 ]

# --timeout reaches every account's calls: against a 5 s latency a 0.3 s limit fails them all on a
# timeout (the default of 30 s would wait the latency out and report them clean)
curl -s -X PUT -d '{"latency_ms": 5000}' "$url/_sim/knobs" >/dev/null
fleet drift --json --timeout 0.3 "$tmp/fleet.lua" >"$tmp/timeout.json" 2>>"$tmp/err"
check "fleet drift --timeout 0.3 against a 5 s latency exits 1" [ $? = 1 ]
curl -s -X PUT -d '{"latency_ms": 0}' "$url/_sim/knobs" >/dev/null
check "every account failed on the timeout" report "$tmp/timeout.json" "
  assert(r.totals.by_status.failed == 50, require('sg').json.encode(r.totals))
  for _, a in ipairs(r.accounts) do assert(a.error:lower():find('timeout'), a.error) end"
fleet drift --timeout 0x10 "$tmp/fleet.lua" >/dev/null 2>"$tmp/usage.err"
check "--timeout takes a plain number of seconds: 0x10 is a usage error (exit 2)" [ $? = 2 ]
check "naming the option" grep -q -- "--timeout" "$tmp/usage.err"

# the per-provider limit: never more than 3 requests to one provider at once (the emulator's log)
curl -s -X DELETE "$url/_sim/log" >/dev/null
curl -s -X PUT -d '{"latency_ms": 30}' "$url/_sim/knobs" >/dev/null
fleet drift --per-provider 3 "$tmp/fleet.lua" >/dev/null 2>>"$tmp/err"
curl -s "$url/_sim/log" >"$tmp/log.json"
curl -s -X PUT -d '{"latency_ms": 0}' "$url/_sim/knobs" >/dev/null
check "--per-provider 3 keeps each provider at 3 requests in flight" "$sgrun" -e "
  local log = require('sg').json.decode(io.open('$tmp/log.json'):read('a'))
  local events = {}
  for _, e in ipairs(log.requests) do
    events[e.provider] = events[e.provider] or {}
    table.insert(events[e.provider], { e.t_start, 1 })
    table.insert(events[e.provider], { e.t_end, -1 })
  end
  local most = 0
  for _, list in pairs(events) do
    table.sort(list, function(x, y) if x[1] ~= y[1] then return x[1] < y[1] end return x[2] < y[2] end)
    local n = 0
    for _, ev in ipairs(list) do n = n + ev[2]; most = math.max(most, n) end
  end
  assert(most == 3, 'at most ' .. most .. ' at once')"

# one account with bad credentials, and Gcore answering 429 to 60% of requests: about a dozen
# Gcore requests are sent (one listing per account), so 30% left none answered 429 in about
# one run of fifty; 60% leaves none in about one of 25,000, and a request is re-sent up to 30
# times
sed '/^\[barrack-004.barrack\]/,/^$/ s/^api_key = .*/api_key = not-the-right-key/' "$tmp/fleet.profiles" >"$tmp/bad.profiles"
chmod 600 "$tmp/bad.profiles"
curl -s -X DELETE "$url/_sim/log" >/dev/null
curl -s -X PUT -d '{"throttle_rate": 0.6, "throttle_only": "gcore"}' "$url/_sim/knobs" >/dev/null
SGRUN_PROFILES=$tmp/bad.profiles fleet drift --json "$tmp/fleet.lua" >"$tmp/bad.json" 2>>"$tmp/err"
check "an account failed: exit 1" [ $? = 1 ]
check "the report is complete: that account failed, every other one done" report "$tmp/bad.json" "
  assert(#r.accounts == 50)
  for _, a in ipairs(r.accounts) do
    if a.name == 'barrack-004' then
      assert(a.status == 'failed' and a.error and a.error:find('401'), tostring(a.error))
      assert(not a.error:find('not-the-right-key', 1, true), 'the key is printed')
    else
      assert(a.status == 'clean', a.name .. ' ' .. a.status .. ' ' .. tostring(a.error))
    end
  end"
# the log read once into a file (and shown when a check fails): a check that fails must say
# whether the emulator answered no 429 or the log could not be read
curl -sS --retry 5 --retry-connrefused "$url/_sim/log" >"$tmp/throttle-log.json" 2>>"$tmp/err"
check "Gcore did answer 429, and only Gcore" "$sgrun" -e "
  local log = require('sg').json.decode(io.open('$tmp/throttle-log.json'):read('a'))
  local by = {}
  for _, e in ipairs(log.requests) do
    if e.status == 429 then by[e.provider] = (by[e.provider] or 0) + 1 end
  end
  assert((by.gcore or 0) > 0, 'no 429 from gcore in ' .. #log.requests .. ' requests')
  for name, n in pairs(by) do assert(name == 'gcore', name .. ' answered 429 ' .. n .. ' times') end"
[ "$failed" = 0 ] || head -c 600 "$tmp/throttle-log.json" >&2
curl -s -X PUT -d '{"throttle_rate": 0}' "$url/_sim/knobs" >/dev/null

# shards: every account in exactly one of 4, merged equal to one unsharded run
"$sgrun" -e "
  local sg = require 'sg'
  local f = require('sg.fleet').load('$tmp/fleet.lua')
  local a = f:connection(f.by_name['genesis-005'])
  local snap = sg.snapshot(a, 'demo-ssh-web')
  table.remove(snap.rules, 1)
  assert(sg.apply(sg.plan(a, 'demo-ssh-web', snap, { lossy = 'allow' })).ok)" 2>>"$tmp/err"
fleet drift --json "$tmp/fleet.lua" >"$tmp/all.json" 2>>"$tmp/err"
for i in 0 1 2 3; do
  fleet drift --json --shard "$i/4" "$tmp/fleet.lua" >"$tmp/shard$i.json" 2>>"$tmp/err"
done
JOB_COMPLETION_INDEX=2 fleet drift --json --shards 4 "$tmp/fleet.lua" >"$tmp/job2.json" 2>>"$tmp/err"
check "--shards N takes the index from JOB_COMPLETION_INDEX" \
  "$sgrun" -e "$canon
    local json = require('sg').json
    local a = json.decode(io.open('$tmp/job2.json'):read('a'))
    local b = json.decode(io.open('$tmp/shard2.json'):read('a'))
    assert(canon(a.accounts) == canon(b.accounts))"
check "4 shards cover every account exactly once" "$sgrun" -e "
  local json = require('sg').json
  local seen, n = {}, 0
  for i = 0, 3 do
    local r = json.decode(io.open('$tmp/shard' .. i .. '.json'):read('a'))
    assert(#r.accounts > 0, 'shard ' .. i .. ' is empty')
    for _, a in ipairs(r.accounts) do assert(not seen[a.name], a.name); seen[a.name] = true; n = n + 1 end
  end
  assert(n == 50, n)"
fleet merge --json "$tmp"/shard{0,1,2,3}.json >"$tmp/merged.json" 2>>"$tmp/err"
check "the merge exits as the unsharded run (3)" [ $? = 3 ]
check "and equals the unsharded report" "$sgrun" -e "$canon
  local json = require('sg').json
  local a = json.decode(io.open('$tmp/all.json'):read('a'))
  local m = json.decode(io.open('$tmp/merged.json'):read('a'))
  assert(canon(a.accounts) == canon(m.accounts), 'accounts differ')
  assert(canon(a.totals) == canon(m.totals), 'totals differ')"
fleet merge "$tmp"/shard{0,1,3}.json >/dev/null 2>"$tmp/merge.err"
check "a missing shard is an error (exit 2)" [ $? = 2 ]
check "naming the missing shard" grep -q "shard 2/4 is missing" "$tmp/merge.err"
# a damaged report is never merged into a clean result
printf '{"format":"sgrun.fleet' >"$tmp/cut.json"
fleet merge "$tmp/cut.json" >"$tmp/merge.out" 2>"$tmp/merge.err"
check "a cut-off report is a user error (exit 2)" [ $? = 2 ]
check "saying it is not JSON, and no report" \
  bash -c "grep -q 'cut.json is not JSON' '$tmp/merge.err' && [ ! -s '$tmp/merge.out' ]"
printf '{"format":"sgrun.fleet-report/1","action":"drift","accounts":[1]}' >"$tmp/noname.json"
fleet merge "$tmp/noname.json" >/dev/null 2>"$tmp/merge.err"
check "a report with a damaged account is a user error (exit 2)" [ $? = 2 ]
check "naming the account" grep -q "report 1: account 1 has no name" "$tmp/merge.err"
fleet merge "$tmp/absent.json" >/dev/null 2>"$tmp/merge.err"
check "a missing report file: exit 2" [ $? = 2 ]
fleet drift "$tmp/absent.lua" >/dev/null 2>"$tmp/merge.err"
check "a missing inventory: exit 2" [ $? = 2 ]
check "naming it" grep -q "cannot read the inventory: .*absent.lua: No such file" "$tmp/merge.err"
check "a stable assignment: an added account moves no other" "$sgrun" -e "
  local fleet = require 'sg.fleet'
  for i = 1, 200 do
    local name = 'acct-' .. i
    local s4, s5 = fleet.shard_of(name, 4), fleet.shard_of(name, 5)
    assert(s5 == s4 or s5 == 4, name)
  end"

# the inventory is checked on load
cat >"$tmp/inline.lua" <<'EOF'
return {
  { name = "ok", provider = "hostup", profile = "x", groups = { { group = "vm=10000", source = "hostup:vm=10000" } } },
  { name = "leaky", provider = "gcore", connect = { api_key = "123$abc" },
    groups = { { group = "web", source = "gcore:web" } } },
}
EOF
fleet drift "$tmp/inline.lua" >/dev/null 2>"$tmp/inline.err"
check "an inline credential is refused (exit 2)" [ $? = 2 ]
check "naming the entry, without the secret" \
  bash -c "grep -q 'account 2 (leaky): connect.api_key is a credential' '$tmp/inline.err' && ! grep -q 'abc' '$tmp/inline.err'"
# a credential written where env wants a variable's name: it looks like a name (so the account
# fails when its variable is found unset) or it does not (refused on load); never echoed
cat >"$tmp/envlit.lua" <<'EOF'
return {
  { name = "lab-hostup", provider = "hostup", env = { api_key = "abcdefSECRETtoken123" },
    groups = { { group = "vm=10000", source = "hostup:vm=10000" } } },
}
EOF
fleet drift "$tmp/envlit.lua" >"$tmp/envlit.out" 2>&1
check "a credential-like env name whose variable is unset fails the account (exit 1)" [ $? = 1 ]
fleet drift --json "$tmp/envlit.lua" >"$tmp/envlit.json" 2>>"$tmp/envlit.out"
check "in --json too" [ $? = 1 ]
check "both say env.api_key's variable is not set, without the value" \
  bash -c "grep -q 'env.api_key names an environment variable that is not set' '$tmp/envlit.out' &&
    grep -q 'env.api_key names an environment variable that is not set' '$tmp/envlit.json' &&
    ! grep -q 'SECRET' '$tmp/envlit.out' '$tmp/envlit.json'"
sed 's/abcdefSECRETtoken123/hostup-demo-key-5f3a9c0d7e/' "$tmp/envlit.lua" >"$tmp/envdash.lua"
fleet drift "$tmp/envdash.lua" >"$tmp/envdash.out" 2>&1
check "a value that cannot be a variable's name is refused on load (exit 2)" [ $? = 2 ]
check "saying what env.api_key must hold, without the value" \
  bash -c "grep -q 'env.api_key must be the name of the environment variable' '$tmp/envdash.out' &&
    grep -q 'e.g. HOSTUP_API_KEY' '$tmp/envdash.out' && ! grep -q '5f3a9c0d7e' '$tmp/envdash.out'"
printf 'return { { name = "x", provider = "hostup", groups = { { group = "vm=1", source = "nobody:web" } } } }\n' >"$tmp/ref.lua"
fleet drift "$tmp/ref.lua" >/dev/null 2>"$tmp/ref.err"
check "an unknown source account is named" grep -q "account 1 (x): groups\[1\]: source nobody:web" "$tmp/ref.err"

echo "fleet: $passed passed, $failed failed"
if [ "$failed" != 0 ]; then
  tail -20 "$tmp/err" >&2
  exit 1
fi
