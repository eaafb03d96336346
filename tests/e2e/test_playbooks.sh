#!/bin/bash
# The shipped playbooks as a user runs them: the README's main job (roll-out against the
# embedded emulator), a dry run that sends no write (checked in the emulator's request log),
# the drift check finding a rule added behind its back (exit 3), and the audit.
set -u
sgrun=$1
root=${SGRUN_SOURCE_DIR:?}
tmp=$(mktemp -d)
export SGRUN_LOCK_DIR=$tmp
sim_pid=""
trap '[ -n "$sim_pid" ] && kill $sim_pid 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "${BASH_SOURCE[0]}")/../support/check.sh"
. "$(dirname "${BASH_SOURCE[0]}")/../support/sim.sh"

"$sgrun" --sim "$root/scripts/rollout.lua" >"$tmp/out" 2>"$tmp/err"
check "the main job exits 0" [ $? = 0 ]
check "and prints the report" grep -q "roll-out: ok" "$tmp/out"
for p in $("$sgrun" -e 'for _, p in ipairs(require "_sg.providers") do if p ~= "exoscale" then print(p) end end'); do
  check "$p is in the report" grep -q "^  $p " "$tmp/out"
done
check "the losses are listed" grep -q "lossy" "$tmp/out"
[ "$failed" = 0 ] || cat "$tmp/out" "$tmp/err" >&2

"$sgrun" --sim --json "$root/scripts/rollout.lua" >"$tmp/out.json" 2>/dev/null
check "--json prints the report as JSON" "$sgrun" -e "
  local r = assert(require('sg').json.decode(io.open('$tmp/out.json'):read('a')))
  assert(r.ok == true and #r.targets == 4)"

start_sim --task-delay 150
mutations() {
  "$sgrun" -e "
    local sg = require 'sg'
    local log = sg.json.decode(assert(sg.http.request { url = '$url/_sim/log' }).body)
    local n = 0
    for _, e in ipairs(log.requests) do if e.method ~= 'GET' then n = n + 1 end end
    print(n)"
}
curl -s -X DELETE "$url/_sim/log" >/dev/null

"$sgrun" --dry-run "$root/scripts/rollout.lua" --allow-lossy exoscale:web gcore:web hostup:vm=10000 >"$tmp/out" 2>&1
check "a dry run reports what it would do" grep -q "planned" "$tmp/out"
check "a dry run sends no mutating request" [ "$(mutations)" = 0 ]

# A playbook cannot get past --dry-run with a second copy of sgrun's network library (its switch
# is per copy), another C module, or another program: each way of trying is refused, and the
# emulator sees no write.
cp "$(dirname "$sgrun")/libsgrun_net.so" "$tmp/copy.so"
mkdir -p "$tmp/cmod" && cp "$tmp/copy.so" "$tmp/cmod/_sg_http_copy.so"
cat >"$tmp/bypass.lua" <<EOF
local tries = {
  loadlib = function() return package.loadlib("$tmp/copy.so", "luaopen__sg_http") end,
  cpath = function() package.cpath = "$tmp/cmod/?.so" return require("_sg_http_copy") end,
  execute = function() return os.execute("curl -s -X DELETE '$url/_sim/log'") end,
  popen = function() return io.popen("curl -s -X POST '$url/_sim/reset'") end,
  -- crafted bytecode can run native code: only source is loaded
  bytecode = function() return assert(load(string.dump(function() return 1 end))) end,
  -- the load that takes bytecode is an upvalue of the one that does not
  upvalue = function()
    for i = 1, 10 do
      local name, raw_load = debug.getupvalue(load, i)
      if name == "raw_load" then return assert(raw_load(string.dump(function() return 1 end))) end
    end
  end,
  required = function() return require("debug").getregistry() end,
  -- the process's own memory, where the switch is: through /proc, by name or by a link to it
  mem = function() return assert(io.open("/proc/self/mem", "r+b")) end,
  memlink = function() return assert(io.open("$tmp/mem-link", "r+b")) end, -- made below: /proc/self/mem
  memout = function() return io.output("/proc/self/mem") end,
}
for _, name in ipairs { "loadlib", "cpath", "execute", "popen", "bytecode", "upvalue", "required", "mem",
  "memlink", "memout" } do
  local ok, err = pcall(tries[name])
  print(name, ok and "ALLOWED" or err)
end
EOF
ln -sf /proc/self/mem "$tmp/mem-link"
"$sgrun" --dry-run "$tmp/bypass.lua" >"$tmp/out" 2>&1
check "--dry-run: package.loadlib is refused" grep -q "^loadlib.*package.loadlib is off under --dry-run" "$tmp/out"
check "--dry-run: require finds no C module" grep -q "^cpath.*module '_sg_http_copy' not found" "$tmp/out"
check "--dry-run: os.execute is refused" grep -q "^execute.*os.execute is off under --dry-run" "$tmp/out"
check "--dry-run: io.popen is refused" grep -q "^popen.*io.popen is off under --dry-run" "$tmp/out"
check "--dry-run: load takes no bytecode" grep -q "^bytecode.*attempt to load a binary chunk" "$tmp/out"
check "--dry-run: the debug library cannot reach load's insides" \
  grep -q "^upvalue.*debug.getupvalue is off under --dry-run" "$tmp/out"
check "--dry-run: nor through require" grep -q "^required.*debug.getregistry is off under --dry-run" "$tmp/out"
check "--dry-run: /proc/self/mem is not opened for writing" grep -q "^mem.*writing to /proc is off under --dry-run" "$tmp/out"
check "--dry-run: nor through a link to it" grep -q "^memlink.*writing to /proc is off under --dry-run" "$tmp/out"
check "--dry-run: nor as the default output" grep -q "^memout.*writing to /proc is off under --dry-run" "$tmp/out"
check "--dry-run: nothing was allowed" bash -c "! grep -q ALLOWED '$tmp/out'"
"$sgrun" -e "io.open('$tmp/compiled.lua', 'wb'):write(string.dump(load('print(\"ran\")')))"
"$sgrun" --dry-run "$tmp/compiled.lua" >"$tmp/out" 2>&1
check "--dry-run: a compiled script is refused (exit 2), saying so" bash -c \
  "[ $? = 2 ] && grep -q 'cannot run under --dry-run' '$tmp/out' && ! grep -q ran '$tmp/out'"
check "--dry-run: still no mutating request" [ "$(mutations)" = 0 ]

"$sgrun" "$root/scripts/snapshot.lua" exoscale:web "$tmp/web.json" >/dev/null
check "snapshot.lua writes a snapshot" [ -s "$tmp/web.json" ]
"$sgrun" "$root/scripts/drift.lua" "$tmp/web.json" >"$tmp/out" 2>&1
check "no drift right after the snapshot: exit 0" [ $? = 0 ]

"$sgrun" -e "
  local sg = require 'sg'
  local exo = sg.connect('exoscale')
  local g = assert(exo:group('web'))
  exo:wait(exo:add_rule_to_security_group(g.id, { ['flow-direction'] = 'ingress', protocol = 'tcp',
    ['start-port'] = 6379, ['end-port'] = 6379, network = '0.0.0.0/0' }))"
"$sgrun" "$root/scripts/drift.lua" "$tmp/web.json" >"$tmp/out" 2>&1
check "the drift check finds a rule added behind its back: exit 3" [ $? = 3 ]
check "and names it" grep -q "6379" "$tmp/out"

"$sgrun" -e "
  local sg = require 'sg'
  local snap = sg.load('$tmp/web.json')
  snap.group.id, snap.group.name = '00000000-0000-4000-8000-00000000dead', 'gone'
  sg.save(snap, '$tmp/gone.json')"
"$sgrun" "$root/scripts/drift.lua" "$tmp/gone.json" >"$tmp/out" 2>&1
check "a snapshot's group that no longer exists is drift: exit 3" [ $? = 3 ]
check "said without a traceback" sh -c "grep -q 'no longer exists' '$tmp/out' && ! grep -q traceback '$tmp/out'"

"$sgrun" "$root/scripts/audit.lua" exoscale:web >"$tmp/out" 2>&1
check "the audit flags the exposed Redis port: exit 3" [ $? = 3 ]
check "naming it" grep -q "6379" "$tmp/out"

"$sgrun" "$root/scripts/rollout.lua" exoscale:web 2>"$tmp/err"
check "a roll-out without targets is a usage error" [ $? = 2 ]

# A rule description holding terminal escapes (set a window title, clear the screen) reaches the
# terminal of no playbook's output as escapes: drift, audit and a dry-run roll-out (with its text
# log) show them as \xHH
"$sgrun" -e "
  local sg = require 'sg'
  local exo = sg.connect('exoscale')
  local g = assert(exo:group('web'))
  exo:wait(exo:add_rule_to_security_group(g.id, { ['flow-direction'] = 'ingress', protocol = 'tcp',
    ['start-port'] = 3306, ['end-port'] = 3306, network = '0.0.0.0/0',
    description = 'db \27]0;owned\7\27[2J\u{9B}2J end' }))"
# C0 controls but tab and newline, DEL, and C1 controls (U+0080-U+009F, UTF-8 C2 80-9F)
no_controls() { ! LC_ALL=C grep -q -e "$(printf '[\001-\010\013-\037\177]')" -e "$(printf '\302[\200-\237]')" "$1"; }
"$sgrun" "$root/scripts/drift.lua" "$tmp/web.json" >"$tmp/out" 2>&1
check "drift: the escaped description is shown" grep -q 'db \\x1b\]0;owned' "$tmp/out"
check "drift: no control byte reaches the output" no_controls "$tmp/out"
"$sgrun" "$root/scripts/audit.lua" exoscale:web >"$tmp/out" 2>&1
check "audit: the finding names the port" grep -q 3306 "$tmp/out"
check "audit: no control byte reaches the output" no_controls "$tmp/out"
"$sgrun" --dry-run --log-format text "$root/scripts/rollout.lua" --allow-lossy exoscale:web gcore:web >"$tmp/out" 2>&1
check "a dry-run roll-out: the escaped description is shown" grep -q 'db \\x1b' "$tmp/out"
check "a dry-run roll-out: no control byte reaches the output" no_controls "$tmp/out"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
