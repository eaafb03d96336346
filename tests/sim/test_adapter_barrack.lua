-- The Barrack neutral adapter (sg.groups.barrack: list_groups, get_group, create_group, apply)
-- against `sgrun sim` over real HTTP: firewalls and a legacy instance's own rules as groups,
-- delayed activation (CREATING -> ACTIVE, or ERROR), and no write when there is nothing to do.
local t = require "testlib"
local w = require "sim_wire"
local rule = require "sg.rule"
local barrack = require("sg.groups").get("barrack")
local keys = w.keys
local function last_seq() return w.last_seq("barrack") end

local brk = w.connect("barrack")
local LEGACY, STOPPED, STANDARD = "BRK-100001A", "BRK-100002B", "BRK-100003C"

local function n(r) return rule.normalize(r) end

local function writes(since)
  local out = {}
  for _, e in ipairs(w.sim_log("barrack", since)) do
    if e.method ~= "GET" then out[#out + 1] = e.method .. " " .. e.path end
  end
  return out
end

local SSH = n { direction = "ingress", protocol = "tcp", port = 22 }
local MYSQL = n { direction = "ingress", protocol = "tcp", port = 3306, cidr = "203.0.113.0/24" }
local DNS6 = n { direction = "ingress", protocol = "udp", port = 53, cidr = "::/0" }
local PING = n { direction = "ingress", protocol = "icmp" }

t.test("setup", function()
  w.reset()
  w.knobs({ task_duration_ms = 100 })
end)

t.test("list_groups: every firewall, with canonical rules and their raw source", function()
  local groups = barrack.list_groups(brk)
  t.eq(#groups, 1)
  local g = groups[1]
  t.eq({ g.id, g.name, g.description, g.ref }, { 1, "demo-firewall", "seeded demo firewall", 1 })
  t.eq(keys(g.rules), keys { SSH })
  t.eq(g.source[g.rules[1]], g.raw_rules[1])
  t.eq(g.raw.name, "demo-firewall")
end)

t.test("get_group: by name, by id (number or digits), a legacy instance", function()
  t.eq(barrack.get_group(brk, "demo-firewall").id, 1)
  t.eq(barrack.get_group(brk, 1).name, "demo-firewall")
  t.eq(barrack.get_group(brk, "1").name, "demo-firewall")
  local inst = barrack.get_group(brk, { instance = LEGACY })
  t.eq({ inst.id, inst.name, inst.ref }, { LEGACY, "demo-legacy", { instance = LEGACY } })
  t.eq(keys(inst.rules), keys { SSH })
  t.eq(inst.source[inst.rules[1]].id, "sg-rule-1")
  t.eq(#barrack.get_group(brk, { instance = STOPPED }).rules, 0)
end)

t.test("get_group: missing is nil and a message; a bad reference raises", function()
  local function missing(ref, needle)
    local g, err = barrack.get_group(brk, ref)
    t.eq(g, nil, needle)
    t.ok(err and err:find(needle, 1, true), tostring(err))
  end
  missing("nope", 'no Barrack firewall is named "nope" (firewalls: demo-firewall)')
  missing(999, "no Barrack firewall has id 999")
  missing("999", 'no Barrack firewall is named "999"')
  missing({ instance = "BRK-999999Z" }, "no Barrack instance BRK-999999Z")
  missing({ instance = STANDARD }, "standard tier instance")
  t.raises(function() barrack.get_group(brk, { vm = 1 }) end, "is not a firewall name or id")
  t.raises(function() barrack.get_group(brk, 1.5) end, "is not a firewall name or id")
end)

local web
t.test("create_group: a firewall in the account's region, usable at once", function()
  web = barrack.create_group(brk, "web", "sgrun test")
  t.eq({ web.name, web.description, #web.rules }, { "web", "sgrun test", 0 })
  t.eq(web.raw.region, "NORWAY-1")
  t.eq(barrack.get_group(brk, "web").id, web.id)
  t.eq(barrack.get_group(brk, web.ref).name, "web")
end)

t.test("apply: adds wait until ACTIVE, then removes; the re-read is the desired set", function()
  local r = barrack.apply(brk, web, { add = { SSH, MYSQL, DNS6 }, remove = {} })
  t.eq(r, { added = 3, removed = 0 })
  local g = barrack.get_group(brk, web.id)
  t.eq(keys(g.rules), keys { SSH, MYSQL, DNS6 })
  for _, raw in ipairs(g.raw_rules) do t.eq(raw.status, "ACTIVE", "added rules are active") end

  local mysql
  for _, c in ipairs(g.rules) do
    if rule.equal(c, MYSQL) then mysql = c end
  end
  local since = last_seq()
  r = barrack.apply(brk, g, { add = { PING }, remove = { mysql }, desired = { SSH, DNS6, PING } })
  t.eq(r, { added = 1, removed = 1 })
  local sent = writes(since)
  t.eq(#sent, 2)
  t.ok(sent[1]:find("^POST .*/firewall%-rules/$"), "the add goes first: " .. sent[1])
  t.eq(sent[2], "DELETE /barrack/api/firewalls/" .. web.id .. "/firewall-rules/" ..
    math.tointeger(g.source[mysql].id) .. "/")
  t.eq(keys(barrack.get_group(brk, web.id).rules), keys { SSH, DNS6, PING })
end)

t.test("apply with nothing to change sends nothing", function()
  local g = barrack.get_group(brk, web.id)
  local since = last_seq()
  t.eq(barrack.apply(brk, g, { add = {}, remove = {}, desired = g.rules }), { added = 0, removed = 0 })
  t.eq(#w.sim_log("barrack", since), 0, "no request at all")
end)

t.test("apply on a legacy instance's own rules", function()
  local g = barrack.get_group(brk, { instance = LEGACY })
  local r = barrack.apply(brk, g, { add = { MYSQL }, remove = { g.rules[1] } })
  t.eq(r, { added = 1, removed = 1 })
  t.eq(keys(barrack.get_group(brk, { instance = LEGACY }).rules), keys { MYSQL })
end)

t.test("a rule that ends in ERROR raises and is removed again", function()
  w.knobs({ task_error_rate = 1 })
  local g = barrack.get_group(brk, web.id)
  local udp = n { direction = "ingress", protocol = "udp", port = 123 }
  local err = t.raises(function() barrack.apply(brk, g, { add = { udp }, remove = {} }) end,
    "ended in state ERROR and were removed again: ingress udp 123 from 0.0.0.0/0")
  t.eq({ err.provider, err.code }, { "barrack", "ERROR" })
  w.knobs({ task_error_rate = 0 })
  local after = barrack.get_group(brk, web.id)
  t.eq(keys(after.rules), keys(g.rules))
  t.eq(#after.raw_rules, #g.raw_rules, "no dead rule left behind")
end)

t.test("a rule that never becomes active raises a timeout", function()
  w.knobs({ task_duration_ms = 3600000 })
  local saved = barrack.activation_timeout
  barrack.activation_timeout = 0.5
  local g = barrack.get_group(brk, web.id)
  local ntp = n { direction = "ingress", protocol = "udp", port = 123 }
  local err = t.raises(function() barrack.apply(brk, g, { add = { ntp }, remove = {} }) end,
    "was not done after 0.5 s (last state: CREATING)")
  barrack.activation_timeout = saved
  w.knobs({ task_duration_ms = 100 })
  t.eq({ err.provider, err.code, err.retryable }, { "barrack", "timeout", true })
  -- a pending rule is part of the group (it will be effective); a second apply adds nothing
  local after = barrack.get_group(brk, web.id)
  t.ok(#after.rules == #g.rules + 1, "the pending rule is read as present")
end)

t.test("a dead (ERROR) copy of a rule being added is replaced", function()
  w.knobs({ task_error_rate = 1 })
  local ntp6 = n { direction = "ingress", protocol = "udp", port = 123, cidr = "::/0" }
  local resp = brk:add_firewall_rule(web.id, require("sg.codec.barrack").encode(ntp6)) -- behind sgrun's back
  t.raises(function() brk:wait(resp) end, "ERROR")
  w.knobs({ task_error_rate = 0 })
  local g = barrack.get_group(brk, web.id)
  t.eq(#g.raw_rules, #g.rules + 1, "the dead rule is raw, not part of the rule set")
  barrack.apply(brk, g, { add = { ntp6 }, remove = {} })
  local after = barrack.get_group(brk, web.id)
  t.eq(#after.raw_rules, #after.rules, "the dead rule is gone")
  local want = { ntp6 }
  for _, r in ipairs(g.rules) do want[#want + 1] = r end
  t.eq(keys(after.rules), keys(want))
end)

t.test("restoring through sg.apply removes rules a failed add left in ERROR", function()
  local apply = require "sg.apply"
  local before = barrack.get_group(brk, web.id)
  -- a failed add whose removal failed too (or was killed) leaves its rule in ERROR
  w.knobs({ task_error_rate = 1 })
  local ntp = n { direction = "ingress", protocol = "udp", port = 123, cidr = "192.0.2.0/24" }
  local resp = brk:add_firewall_rule(web.id, require("sg.codec.barrack").encode(ntp))
  t.raises(function() brk:wait(resp) end, "ERROR")
  w.knobs({ task_error_rate = 0 })
  t.eq(#barrack.get_group(brk, web.id).raw_rules, #before.raw_rules + 1)
  -- the roll-out's restore: plan from the rules read before, apply (nothing else to write)
  local p = apply.plan(brk, web.id, before.rules, { lossy = "allow" })
  t.eq({ #p.add, #p.remove, p.repair, p:empty() }, { 0, 0, 1, false }, "the leftover makes the plan non-empty")
  t.ok(tostring(p):find("clear 1 leftover(s) of failed writes", 1, true), tostring(p))
  local back = apply.apply(p)
  t.ok(back.ok, tostring(back.error))
  t.eq(back.repaired, 1)
  local after = barrack.get_group(brk, web.id)
  t.eq(keys(after.rules), keys(before.rules))
  for _, raw in ipairs(after.raw_rules) do t.ok(raw.status ~= "ERROR", "rule " .. tostring(raw.id)) end
  t.eq(#after.raw_rules, #before.raw_rules)
end)

t.test("round trip: seeded firewall -> canonical -> a new firewall", function()
  w.reset()
  w.knobs({ task_duration_ms = 100 })
  local src = barrack.get_group(brk, "demo-firewall")
  local copy = barrack.create_group(brk, "copy", src.description)
  barrack.apply(brk, copy, { add = src.rules, remove = {}, desired = src.rules })
  local after = barrack.get_group(brk, "copy")
  t.eq(keys(after.rules), keys(src.rules))
  local fields = { "direction", "protocol", "ethertype", "remote_ip_prefix", "port_range_min", "port_range_max" }
  for _, f in ipairs(fields) do t.eq(after.raw_rules[1][f], src.raw_rules[1][f], f) end
  -- and the instance's rules into a firewall
  local inst = barrack.get_group(brk, { instance = LEGACY })
  barrack.apply(brk, after, { add = { MYSQL }, remove = {} })
  t.eq(keys(barrack.get_group(brk, "copy").rules), keys { SSH, MYSQL })
  t.eq(keys(inst.rules), keys { SSH })
end)

-- Barrack's body has no icmpv6 protocol: ICMP over IPv6 is protocol icmp with ethertype IPv6,
-- which reads back as the canonical icmpv6. A plan that adds one (a roll-out from a provider that
-- has it) is exact, goes on the wire in that shape, and the re-read holds the same rule.
t.test("ICMPv6: planned exact, sent as icmp + IPv6, read back as icmpv6", function()
  w.reset()
  w.knobs({ task_duration_ms = 100 })
  local apply = require "sg.apply"
  local PING6 = n { direction = "ingress", protocol = "icmpv6", cidr = "2001:db8::/32" }
  local desired = { SSH, PING6 }
  local conn, log = w.connect("barrack")
  local p = apply.plan(conn, "demo-firewall", desired)
  t.eq({ #p.add, #p.remove, #p.findings }, { 1, 0, 0 })
  t.eq(apply.apply(p).ok, true)
  w.body_has(t, w.last_sent(log, 0, "POST"),
    { protocol = "icmp", ethertype = "IPv6", remote_ip_prefix = "2001:db8::/32" }, "the add-rule body")
  local g = barrack.get_group(brk, "demo-firewall")
  t.eq(keys(g.rules), keys(desired))
  -- the firewall's own rules plan to nothing
  t.ok(apply.plan(brk, "demo-firewall", g.rules):empty(), "a plan against its own rules is empty")
end)

-- A connection to the emulator whose GET replies carry every firewall's `rules` and the
-- instance's `security_rules` replaced by `value`.
local function rewriting(value)
  local http = require "_sg.http"
  local json = require "sg.json"
  return require("sg").connect("barrack", { retry = { base = 0.05, cap = 1 }, transport = function(req)
    local resp, err, code = http.request(req)
    if resp and resp.status == 200 and req.method == "GET" then
      local body = json.decode(resp.body)
      for _, fw in ipairs(body.firewalls or { body.firewall }) do fw.rules = value end
      if body.instance then body.instance.security_rules = value end
      resp.body = json.encode(body)
    end
    return resp, err, code
  end })
end

for _, case in ipairs {
  { value = require("sg.json").null, says = "'rules': null", inst = "'security_rules': null" },
  { value = { x = 1 }, says = "a 'rules' that is not a list (an object)",
    inst = "a 'security_rules' that is not a list (an object)" },
  { value = require("sg.json").array { 5 }, says = "something that is not a rule object at rules[0]",
    inst = "something that is not a rule object at security_rules[0]" },
} do
  t.test("a group read with " .. case.says .. " is a bad response, not an empty group", function()
    w.reset()
    local sg = require "sg"
    local apply = require "sg.apply"
    local conn = rewriting(case.value)
    local since = last_seq()
    local err = t.raises(function() sg.snapshot(conn, "demo-firewall") end,
      "firewall demo-firewall (id 1) was read with " .. case.says)
    t.eq({ err.provider, err.op, err.code }, { "barrack", "read", "bad_response" })
    for _, needle in ipairs { "does not take it for an empty group", "Read it again", "SGRUN_BARRACK_URL" } do
      t.ok(tostring(err):find(needle, 1, true), "the message says " .. needle .. ": " .. tostring(err))
    end
    t.raises(function() sg.snapshot(conn, 1) end, case.says)
    t.raises(function() apply.plan(conn, "demo-firewall", { MYSQL }, { mode = "additive" }) end, case.says)
    t.raises(function() sg.snapshot(conn, { instance = LEGACY }) end, "instance " .. LEGACY .. " was read with " .. case.inst)
    t.eq(writes(since), {}, "nothing written")
  end)
end

t.test("delete_group: a group created and deleted no longer reads", function()
  w.check_delete(t, barrack, brk, "adapter-barrack-deleted")
end)

t.run()
