-- The HostUp adapter's positional writes against a Proxmox-like fake server that keeps every rule
-- option it holds (iface, log, icmp-type, ...) and lists every one of them, as Proxmox does: a
-- rule the adapter has to write again, but that says something the v1 write body cannot carry,
-- is refused before the first request instead of coming back wider than it was.
local t = require "testlib"
local json = require "sg.json"
local sg = require "sg"
local rule = require "sg.rule"
local apply = require "sg.apply"

-- The v1 write body (reference 3.2): seven fields, all required; proto one of icmp|tcp|udp.
local BODY = { type = true, action = true, proto = true, dport = true, source = true, comment = true,
  enable = true }
local PROTOS = { icmp = true, tcp = true, udp = true }

local function copy(t0)
  local out = {}
  for k, v in pairs(t0) do out[k] = v end
  return out
end

---A fake VM firewall holding `rules` (Proxmox rule objects, position = index - 1): a connection to
---it, the list of writes it saw ("POST", "PUT pos=1", "DELETE pos=2") and its rules.
local function fake_vm(rules)
  local vm = { rules = rules, writes = {} }
  local function reply(status, data)
    return { status = status, headers = { ["content-type"] = "application/json" },
      body = json.encode(status == 200 and { success = true, data = data } or data) }
  end
  local function transport(req)
    local pos = tonumber(req.url:match("[?&]pos=(%d+)"))
    if req.method == "GET" then
      local data = json.array()
      for i, r in ipairs(vm.rules) do
        local row = copy(r)
        row.pos = i - 1
        data[i] = row
      end
      return reply(200, data)
    end
    vm.writes[#vm.writes + 1] = req.method .. (pos and (" pos=" .. pos) or "")
    local b = req.body and json.decode(req.body)
    if b then
      -- what the vendor refuses, it refuses here too
      for k in pairs(b) do
        if not BODY[k] then return reply(400, { error = "Bad Request", message = "Unknown option: " .. k }) end
      end
      if not PROTOS[b.proto] then
        return reply(400, { error = "Bad Request", message = "proto must be one of: icmp, tcp, udp" })
      end
      for k, v in pairs(b) do
        if v == "" then b[k] = nil end -- Proxmox keeps no empty options
      end
    end
    if req.method == "POST" then
      table.insert(vm.rules, 1, b)
      return reply(200, { success = true, rule = b })
    elseif req.method == "PUT" then
      vm.rules[pos + 1] = b
      return reply(200, { success = true, pos = tostring(pos) })
    end
    table.remove(vm.rules, pos + 1)
    return reply(200, { success = true, pos = tostring(pos) })
  end
  vm.conn = sg.connect("hostup", { api_key = "k", base_url = "http://127.0.0.1:9/api", transport = transport })
  return vm
end

local function r(action, proto, dport, source, extra)
  local out = { type = "in", action = action, proto = proto, dport = dport, source = source, enable = 1 }
  for k, v in pairs(extra or {}) do out[k] = v end
  return out
end

local HTTPS = rule.normalize { direction = "ingress", protocol = "tcp", port = 443, cidr = "0.0.0.0/0" }

-- Adds an accept for 443 and leaves the rest alone: the accept goes right below the last DROP,
-- so every rule above that DROP is written again one place down.
local function add_https(vm)
  return apply.apply(apply.plan(vm.conn, { vm = 10000 }, { HTTPS }, { mode = "additive" }))
end

local function same_rules(vm, before, what)
  for i, want in ipairs(before) do t.eq(vm.rules[i], want, what .. ": rule " .. (i - 1)) end
  t.eq(#vm.rules, #before, what .. ": as many rules as before")
end

for _, case in ipairs {
  -- disabled: not read as a rule, but written again all the same when it stands above the DROP
  { field = "iface", value = "net1",
    rule = r("ACCEPT", "tcp", "22", "198.51.100.0/24", { iface = "net1", enable = 0 }),
    says = "on every interface instead of only net1", names = "ACCEPT tcp port 22 from 198.51.100.0/24" },
  { field = "log", value = "info", rule = r("ACCEPT", "tcp", "22", "198.51.100.0/24", { log = "info" }),
    says = "stop logging", names = "ACCEPT tcp port 22 from 198.51.100.0/24" },
  { field = "icmp-type", value = "echo-request",
    rule = r("ACCEPT", "icmp", nil, "198.51.100.0/24", { ["icmp-type"] = "echo-request" }),
    says = "every ICMP type instead of only echo-request", names = "ACCEPT icmp from 198.51.100.0/24" },
} do
  t.test(case.field .. ": a rule the change must write again is refused before any request", function()
    local vm = fake_vm { case.rule, r("DROP", "tcp", "23", "0.0.0.0/0") }
    local before = { copy(vm.rules[1]), copy(vm.rules[2]) }
    local res = add_https(vm)
    t.ok(not res.ok, "refused")
    t.eq({ res.error.provider, res.error.code }, { "hostup", "unwritable" })
    local text = tostring(res.error)
    for _, needle in ipairs { case.names, "(pos 0 as read)", case.field .. "=" .. case.value, case.says,
      "Nothing was sent", "remove " .. case.field .. " from that rule" } do
      t.ok(text:find(needle, 1, true), "the message says " .. needle .. ": " .. text)
    end
    t.eq(vm.writes, {}, "no write request")
    same_rules(vm, before, case.field)
  end)
end

t.test("log=nolog is what a rule without a log level does: the rule is written again", function()
  local vm = fake_vm { r("ACCEPT", "tcp", "22", "198.51.100.0/24", { log = "nolog" }), r("DROP", "tcp", "23", "0.0.0.0/0") }
  local res = add_https(vm)
  t.ok(res.ok, tostring(res.error))
  t.eq(vm.writes, { "POST", "PUT pos=1", "PUT pos=2" })
end)

-- An active rule restricted to one interface is refused on read: read for every interface it
-- would be wider in a snapshot, as a roll-out's source, or in a plan.
t.test("an active rule with iface is refused on read, naming the rule; nothing is written", function()
  local vm = fake_vm { r("DROP", "tcp", "23", "0.0.0.0/0"), r("ACCEPT", "tcp", "22", "198.51.100.0/24", { iface = "net1" }) }
  local before = { copy(vm.rules[1]), copy(vm.rules[2]) }
  local err = t.raises(function() sg.snapshot(vm.conn, { vm = 10000 }) end,
    "hostup vm 10000, rule at pos 1 (ACCEPT tcp port 22 from 198.51.100.0/24): hostup rule: iface net1")
  for _, needle in ipairs { "applies only on interface net1", "wider in a snapshot, a roll-out or a plan",
    "in HostUp's panel, delete it or replace it" } do
    t.ok(tostring(err):find(needle, 1, true), "the message says " .. needle .. ": " .. tostring(err))
  end
  t.raises(function() add_https(vm) end, "iface net1")
  t.eq(vm.writes, {})
  same_rules(vm, before, "iface")
end)

for _, case in ipairs {
  { what = "no protocol", proto = nil, says = "no protocol", names = "DROP any protocol from 203.0.113.0/24",
    fix = "give that rule a protocol" },
  { what = "protocol gre", proto = "gre", says = 'its protocol "gre" is not one the v1 body takes',
    names = "DROP gre from 203.0.113.0/24", fix = "make it a tcp, udp or icmp rule" },
  { what = "protocol 6", proto = "6", says = 'its protocol "6" is not one the v1 body takes',
    names = "DROP 6 from 203.0.113.0/24", fix = "make it a tcp, udp or icmp rule" },
} do
  t.test(case.what .. ": a rule outside the v1 proto enum is not written again half-way", function()
    -- Proxmox lists it; the v1 body cannot say it, so copying it one place down would fail at
    -- its PUT, after the POST of the copy above it (a DROP twice, the accept never added)
    local vm = fake_vm { r("DROP", "tcp", "23", "0.0.0.0/0"), r("DROP", case.proto, nil, "203.0.113.0/24"),
      r("ACCEPT", "tcp", "22", "198.51.100.10") }
    local before = { copy(vm.rules[1]), copy(vm.rules[2]), copy(vm.rules[3]) }
    local res = add_https(vm)
    t.ok(not res.ok, "refused")
    t.eq({ res.error.provider, res.error.code }, { "hostup", "unwritable" })
    local text = tostring(res.error)
    for _, needle in ipairs { case.names, "(pos 1 as read)", case.says, "Nothing was sent", case.fix } do
      t.ok(text:find(needle, 1, true), "the message says " .. needle .. ": " .. text)
    end
    t.eq(vm.writes, {}, "no write request")
    same_rules(vm, before, case.what)
  end)
end

-- A disabled rule filters nothing: read as active, a roll-out from this VM would open its port
-- elsewhere (reproduced: ACCEPT 3306 from 0.0.0.0/0 listed with "enable":"0" reached a Gcore group).
for _, off in ipairs { { enable = "0" }, { enable = false }, { enabled = 0 }, { enabled = "false" },
  { enable = 0, enabled = false } } do
  local shown = {}
  for k, v in pairs(off) do shown[#shown + 1] = k .. "=" .. tostring(v) end
  table.sort(shown)
  local label = table.concat(shown, ",")

  t.test("a rule listed disabled as " .. label .. " is no rule, and is written again disabled", function()
    local mysql = r("ACCEPT", "tcp", "3306", "0.0.0.0/0", off)
    mysql.enable = off.enable
    local vm = fake_vm { mysql, r("DROP", "tcp", "23", "0.0.0.0/0") }
    local snap = sg.snapshot(vm.conn, { vm = 10000 })
    t.eq(#snap.rules, 1)
    t.eq(rule.tostring(snap.rules[1]), "drop ingress tcp 23 from 0.0.0.0/0")
    -- the accept for 443 goes below the DROP: the disabled rule above it is copied one place down
    local res = add_https(vm)
    t.ok(res.ok, tostring(res.error))
    t.eq(vm.writes, { "POST", "PUT pos=1", "PUT pos=2" })
    t.eq({ vm.rules[1].dport, vm.rules[1].enable }, { "3306", 0 }, "still disabled")
    t.eq({ vm.rules[2].dport, vm.rules[3].dport, #vm.rules }, { "23", "443", 3 })
    t.eq(#sg.snapshot(vm.conn, { vm = 10000 }).rules, 2)
  end)
end

t.test("an enable value that says neither on nor off is refused on read, naming the rule", function()
  for _, case in ipairs {
    { extra = { enable = "yes" }, says = 'enable "yes" is neither 0/1 nor true/false' },
    { extra = { enable = 2 }, says = "enable 2 is neither 0/1 nor true/false" },
    { extra = { enable = 1, enabled = false }, says = "enable 1 and enabled false disagree" },
  } do
    local mysql = r("ACCEPT", "tcp", "3306", "0.0.0.0/0", case.extra)
    local vm = fake_vm { r("DROP", "tcp", "23", "0.0.0.0/0"), mysql }
    local err = t.raises(function() sg.snapshot(vm.conn, { vm = 10000 }) end, case.says)
    for _, needle in ipairs { "hostup vm 10000, rule at pos 1 (ACCEPT tcp port 3306 from 0.0.0.0/0)",
      "cannot tell whether the rule is active", "turn the rule off or on in HostUp's panel" } do
      t.ok(tostring(err):find(needle, 1, true), "the message says " .. needle .. ": " .. tostring(err))
    end
    t.eq(vm.writes, {})
  end
end)

t.test("a DROP whose port or address list is only commas is refused on read, not read as no rule", function()
  for _, case in ipairs {
    { rule = r("DROP", "tcp", ",", "0.0.0.0/0"), says = 'dport "," has an empty entry', names = "DROP tcp port , from 0.0.0.0/0" },
    { rule = r("DROP", "tcp", "22", ",,"), says = 'source ",," has an empty entry', names = "DROP tcp port 22 from ,," },
  } do
    local vm = fake_vm { case.rule, r("ACCEPT", "tcp", "22", "198.51.100.0/24") }
    local err = t.raises(function() sg.snapshot(vm.conn, { vm = 10000 }) end,
      "hostup vm 10000, rule at pos 0 (" .. case.names .. "): hostup rule: " .. case.says)
    t.ok(tostring(err):find("in HostUp's panel", 1, true), tostring(err))
    t.raises(function() add_https(vm) end, case.says)
    t.eq(vm.writes, {})
  end
end)

-- A connection whose every request is answered with `body` (status 200).
local function answering(body)
  return sg.connect("hostup", { api_key = "k", base_url = "http://127.0.0.1:9/api", transport = function()
    return { status = 200, headers = { ["content-type"] = "application/json" }, body = body }
  end })
end

for _, case in ipairs {
  { body = '{"success":true,"data":null}', says = "has 'data': null" },
  { body = '{"success":true}', says = "has no 'data'" },
  { body = '{"success":true,"data":{}}', says = "is not a list (an object)" },
  { body = '{"success":true,"data":{"rules":[{"pos":0,"type":"in","action":"DROP","proto":"tcp",' ..
    '"dport":"23","source":"0.0.0.0/0","enable":1}]}}', says = "is not a list (an object)" },
  { body = '{"success":true,"data":"none"}', says = "is not a list (string)" },
  { body = '{"success":true,"data":[[]]}', says = "not a rule object at index 0" },
} do
  t.test("a listing without a data list is a bad response, not an empty firewall: " .. case.body, function()
    local err = t.raises(function() sg.snapshot(answering(case.body), { vm = 10000 }) end, case.says)
    t.eq({ err.provider, err.op, err.code }, { "hostup", "list_firewall_rules", "bad_response" })
    t.ok(tostring(err):find("does not take that for an empty firewall", 1, true), tostring(err))
  end)
end

t.test("an empty data list is an empty firewall", function()
  local snap = sg.snapshot(answering('{"success":true,"data":[]}'), { vm = 10000 })
  t.eq(#snap.rules, 0)
end)

t.run()
