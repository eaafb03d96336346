-- The HostUp neutral adapter (sg.groups.hostup: get_group, apply, ...) against `sgrun sim` over
-- real HTTP: a VM's firewall as a group, Proxmox positions (adds land at 0, deletes shift the
-- rest up), split "80,443" rules, deny-first order, and no write when there is nothing to do.
local t = require "testlib"
local w = require "sim_wire"
local rule = require "sg.rule"
local hostup = require("sg.groups").get("hostup")
local keys = w.keys
local function last_seq() return w.last_seq("hostup") end

local hu = w.connect("hostup")

local function n(r) return rule.normalize(r) end

-- The mutating requests the emulator saw after `since`: "POST", "PUT pos=1", "DELETE pos=2".
local function writes(since)
  local out = {}
  for _, e in ipairs(w.sim_log("hostup", since)) do
    if e.method ~= "GET" then
      out[#out + 1] = e.method .. ((e.query or "") ~= "" and (" " .. e.query) or "")
    end
  end
  return out
end

-- The VM's list as {action, dport, source} per position.
local function listed(vmid)
  local out = {}
  for i, raw in ipairs(hu:list_firewall_rules(vmid).data) do
    out[i] = { raw.action, raw.dport or "", raw.source }
  end
  return out
end

-- The canonical rules of a group whose raw rule has this dport.
local function parts(group, dport)
  local out = {}
  for _, r in ipairs(group.rules) do
    if group.source[r].dport == dport then out[#out + 1] = r end
  end
  return out
end

local SEEDED = { { "ACCEPT", "22", "198.51.100.10" }, { "ACCEPT", "80,443", "0.0.0.0/0" },
  { "ACCEPT", "", "0.0.0.0/0" } }

t.test("setup", function() w.reset() end)

t.test("get_group: {vm = N} and N; one raw rule can be several canonical rules", function()
  local g = hostup.get_group(hu, { vm = 10000 })
  t.eq({ g.id, g.name, g.ref }, { 10000, "vm 10000", { vm = 10000 } })
  t.eq(#g.raw_rules, 3)
  t.eq(keys(g.rules), keys {
    n { direction = "ingress", protocol = "tcp", port = 22, cidr = "198.51.100.10/32" },
    n { direction = "ingress", protocol = "tcp", port = 80 },
    n { direction = "ingress", protocol = "tcp", port = 443 },
    n { direction = "ingress", protocol = "icmp" },
  })
  local web = parts(g, "80,443")
  t.eq(#web, 2)
  t.ok(g.source[web[1]] == g.source[web[2]], "80 and 443 come from the same raw rule")
  t.eq(web[1].description, "Web")
  t.eq(keys(hostup.get_group(hu, 10000).rules), keys(g.rules))
  t.eq(#hostup.get_group(hu, { vm = 10001 }).rules, 0)
end)

t.test("get_group: a missing VM is nil and a message; a bad reference raises", function()
  local g, err = hostup.get_group(hu, { vm = 99999 })
  t.eq(g, nil)
  t.ok(err:find("no VM 99999", 1, true), err)
  t.raises(function() hostup.get_group(hu, "web") end, "is not {vm = N}")
  t.raises(function() hostup.get_group(hu, { vm = 0 }) end, "is not {vm = N}")
  t.raises(function() hostup.get_group(hu, { vm = 10000, name = "x" }) end, "is not {vm = N}")
end)

t.test("list_groups and create_group say to use {vm = N}", function()
  t.raises(function() hostup.list_groups(hu) end, "{vm = N}")
  t.raises(function() hostup.create_group(hu, "web", "") end, "exists with its VM")
end)

t.test("apply with nothing to change sends nothing", function()
  local g = hostup.get_group(hu, { vm = 10000 })
  local since = last_seq()
  t.eq(hostup.apply(hu, g, { add = {}, remove = {}, desired = g.rules }), { added = 0, removed = 0 })
  t.eq(#w.sim_log("hostup", since), 0, "no request at all")
end)

t.test("removing the middle rule of three: one delete at its position", function()
  w.reset()
  local g = hostup.get_group(hu, { vm = 10000 })
  local since = last_seq()
  t.eq(hostup.apply(hu, g, { add = {}, remove = parts(g, "80,443") }), { added = 0, removed = 2 })
  t.eq(writes(since), { "DELETE pos=1" })
  t.eq(listed(10000), { SEEDED[1], SEEDED[3] })
end)

t.test("removing part of an \"80,443\" rule rewrites it in place", function()
  w.reset()
  local g = hostup.get_group(hu, { vm = 10000 })
  local web = parts(g, "80,443")
  local https = web[1].port_min == 443 and web[1] or web[2]
  local since = last_seq()
  hostup.apply(hu, g, { add = {}, remove = { https } })
  t.eq(writes(since), { "PUT pos=1" })
  t.eq(listed(10000), { SEEDED[1], { "ACCEPT", "80", "0.0.0.0/0" }, SEEDED[3] })
  local after = hostup.get_group(hu, { vm = 10000 })
  t.eq(parts(after, "80")[1].description, "Web", "the comment stays")
  local want = {}
  for _, r in ipairs(g.rules) do
    if r ~= https then want[#want + 1] = r end
  end
  t.eq(keys(after.rules), keys(want))
end)

t.test("a split that cannot stay one rule: the other network's rule goes right below", function()
  w.reset()
  hu:add_firewall_rule(10001, { type = "in", action = "ACCEPT", proto = "tcp", dport = "22",
    source = "203.0.113.9", comment = "", enable = 1 })
  hu:add_firewall_rule(10001, { type = "in", action = "ACCEPT", proto = "tcp", dport = "80,443",
    source = "10.0.0.0/8,192.168.1.0/24", comment = "web", enable = 1 })
  local g = hostup.get_group(hu, { vm = 10001 })
  t.eq(#g.rules, 5)
  local gone
  for _, r in ipairs(g.rules) do
    if r.port_min == 80 and r.cidr == "10.0.0.0/8" then gone = r end
  end
  hostup.apply(hu, g, { add = {}, remove = { gone } })
  t.eq(listed(10001), { { "ACCEPT", "443", "10.0.0.0/8" }, { "ACCEPT", "80,443", "192.168.1.0/24" },
    { "ACCEPT", "22", "203.0.113.9" } })
  local want = {}
  for _, r in ipairs(g.rules) do
    if r ~= gone then want[#want + 1] = r end
  end
  t.eq(keys(hostup.get_group(hu, { vm = 10001 }).rules), keys(want))
end)

t.test("adds and removes: denials go on top, accepts below the last denial", function()
  w.reset()
  local g = hostup.get_group(hu, { vm = 10000 })
  local drop = n { direction = "ingress", action = "drop", protocol = "tcp", cidr = "203.0.113.0/24" }
  local alt = n { direction = "ingress", protocol = "tcp", port = 8080, description = "alt" }
  local ssh = parts(g, "22")[1]
  local since = last_seq()
  t.eq(hostup.apply(hu, g, { add = { alt, drop }, remove = { ssh } }), { added = 2, removed = 1 })
  -- drop: POST (pos 0); alt below it: POST a copy of the top rule, PUT alt over the copy at 1;
  -- ssh, now at 3, deleted
  t.eq(writes(since), { "POST", "POST", "PUT pos=1", "DELETE pos=2" })
  t.eq(listed(10000), { { "DROP", "1:65535", "203.0.113.0/24" }, { "ACCEPT", "8080", "0.0.0.0/0" },
    SEEDED[2], SEEDED[3] })
  local want = { drop, alt }
  for _, r in ipairs(g.rules) do
    if r ~= ssh then want[#want + 1] = r end
  end
  t.eq(keys(hostup.get_group(hu, { vm = 10000 }).rules), keys(want))
end)

t.test("a rule list without comments (HostUp's documented list item) does not fail the apply", function()
  w.reset()
  -- the documented list item is {type, dport, digest, source, action, ipversion, enable, proto, pos}
  local http = require "_sg.http"
  local json = require("sg").json
  local bare = w.connect("hostup", { transport = function(req)
    local resp, err, code = http.request(req)
    if resp and req.method == "GET" and resp.status == 200 then
      local doc = json.decode(resp.body)
      for _, raw in ipairs(type(doc) == "table" and doc.data or {}) do raw.comment = nil end
      resp.body = json.encode(doc)
    end
    return resp, err, code
  end })
  local g = hostup.get_group(bare, { vm = 10000 })
  local alt = n { direction = "ingress", protocol = "tcp", port = 8080, description = "alt" }
  t.eq(hostup.apply(bare, g, { add = { alt }, remove = {} }), { added = 1, removed = 0 })
  t.eq(hu:list_firewall_rules(10000).data[1].comment, "alt", "the comment was written")
end)

t.test("a list changed since it was read is not written to", function()
  w.reset()
  local g = hostup.get_group(hu, { vm = 10000 })
  hu:delete_firewall_rule(10000, 0) -- behind the group's back: every position moved
  local since = last_seq()
  local err = t.raises(function() hostup.apply(hu, g, { add = {}, remove = parts(g, "80,443") }) end,
    "changed since the group was read")
  t.eq({ err.provider, err.code }, { "hostup", "changed" })
  t.eq(writes(since), {})
  t.eq(#listed(10000), 2)
end)

t.test("round trip: VM 10000 -> canonical -> VM 10001, in codec order", function()
  w.reset()
  local src = hostup.get_group(hu, { vm = 10000 })
  local dst = hostup.get_group(hu, { vm = 10001 })
  local drop = n { direction = "ingress", action = "reject", protocol = "tcp", port = 25 }
  local desired = { drop }
  for _, r in ipairs(src.rules) do desired[#desired + 1] = r end
  t.eq(hostup.apply(hu, dst, { add = desired, remove = {}, desired = desired }),
    { added = 5, removed = 0 })
  local after = hostup.get_group(hu, { vm = 10001 })
  t.eq(keys(after.rules), keys(desired))
  -- one raw rule per canonical rule, exactly in order(): the rejection first
  local ordered = require("sg.codec.hostup").order(desired)
  for i, r in ipairs(after.rules) do t.eq(rule.key(r), rule.key(ordered[i]), "position " .. (i - 1)) end
  t.eq(after.raw_rules[1].action, "REJECT")
  for _, r in ipairs(after.rules) do
    local from
    for _, s in ipairs(src.rules) do
      if rule.equal(s, r) then from = s end
    end
    if from then t.eq(r.description, from.description, rule.tostring(r)) end
  end
  -- and back: applying the same set again changes nothing
  local since = last_seq()
  hostup.apply(hu, after, { add = {}, remove = {}, desired = desired })
  t.eq(writes(since), {})
end)

-- Restoring goes through the roll-out's path: plan from the rules read before (or a snapshot
-- file of the VM), apply; the VM then holds the raw rules it held, field for field and in order.
-- `setup` may rearrange the seeded list first.
local function restore_case(name, restore_from, setup)
  t.test(name, function()
    w.reset()
    if setup then setup() end
    local apply = require "sg.apply"
    local snapshot = require "sg.snapshot"
    local before = hostup.get_group(hu, { vm = 10000 })
    local snap = snapshot.snapshot(hu, { vm = 10000 })
    local change = apply.apply(apply.plan(hu, { vm = 10000 },
      { n { direction = "ingress", protocol = "tcp", port = 8080 } }))
    t.ok(change.ok, tostring(change.error))
    t.eq(#listed(10000), 1)
    local back = apply.apply(apply.plan(hu, { vm = 10000 }, restore_from(before, snap), { lossy = "allow" }))
    t.ok(back.ok, tostring(back.error))
    t.eq(hu:list_firewall_rules(10000).data, snap.raw, "the raw rules the snapshot held")
  end)
end
local function from_rules(before) return before.rules end
-- First match decides on a Proxmox firewall: an accept for one address above a drop for everyone
-- lets that address in. Restored with the drop on top (the order new rules get), it would not be.
local function accept_above_drop()
  hu:add_firewall_rule(10000, { type = "in", action = "DROP", proto = "tcp", dport = "22",
    source = "0.0.0.0/0", comment = "ssh closed", enable = 1 })
  hu:delete_firewall_rule(10000, 1) -- the seeded "22 from 198.51.100.10", now below the drop
  hu:add_firewall_rule(10000, { type = "in", action = "ACCEPT", proto = "tcp", dport = "22",
    source = "198.51.100.10", comment = "", enable = 1 })
  t.eq(listed(10000), { SEEDED[1], { "DROP", "22", "0.0.0.0/0" }, SEEDED[2], SEEDED[3] })
end
restore_case("restore: an accept that stood above a drop goes back above it", from_rules, accept_above_drop)

-- The other way round, with the drop narrowed by the change: the drop covers 22 and 23 above an
-- accept for one address on 22, which it shadows. The change removes the accept and narrows the
-- drop to 23; the restore widens the drop again, and the accept must go back below it, not on
-- top, where it would let that address in on 22.
t.test("restore: an accept the drop above it shadowed goes back below the drop, widened again", function()
  w.reset()
  local apply = require "sg.apply"
  hu:add_firewall_rule(10000, { type = "in", action = "DROP", proto = "tcp", dport = "22,23",
    source = "0.0.0.0/0", comment = "telnet and ssh closed", enable = 1 })
  local before = hostup.get_group(hu, { vm = 10000 })
  local snap = require("sg.snapshot").snapshot(hu, { vm = 10000 })
  t.eq(listed(10000)[1], { "DROP", "22,23", "0.0.0.0/0" })
  local changed = {}
  for _, r in ipairs(before.rules) do
    local drop22 = r.action == "drop" and r.port_min == 22
    local office = r.action == "accept" and r.port_min == 22
    if not drop22 and not office then changed[#changed + 1] = r end
  end
  t.ok(apply.apply(apply.plan(hu, { vm = 10000 }, changed)).ok)
  t.eq(listed(10000)[1], { "DROP", "23", "0.0.0.0/0" })
  local back = apply.apply(apply.plan(hu, { vm = 10000 }, before.rules, { lossy = "allow" }))
  t.ok(back.ok, tostring(back.error))
  t.eq(hu:list_firewall_rules(10000).data, snap.raw, "the raw rules the snapshot held, in order")
end)
restore_case("restore from the rules read before: the raw rules come back as they were", from_rules)
local function from_file(_, snap)
  local path = os.tmpname()
  require("sg.snapshot").save(snap, path)
  local loaded = require("sg.snapshot").load(path)
  os.remove(path)
  return loaded
end
restore_case("restore from a snapshot file: the raw rules come back as they were", from_file)
restore_case("restore from a snapshot file: the accept goes back above the drop", from_file, accept_above_drop)

t.test("restore after a rule was narrowed: \"80\" becomes \"80,443\" again in place", function()
  w.reset()
  local apply = require "sg.apply"
  local before = hostup.get_group(hu, { vm = 10000 })
  local snap = require("sg.snapshot").snapshot(hu, { vm = 10000 })
  local narrower = {}
  for _, r in ipairs(before.rules) do
    if r.port_min ~= 443 then narrower[#narrower + 1] = r end
  end
  local change = apply.apply(apply.plan(hu, { vm = 10000 }, narrower))
  t.ok(change.ok, tostring(change.error))
  t.eq(listed(10000)[2], { "ACCEPT", "80", "0.0.0.0/0" })
  local p = apply.plan(hu, { vm = 10000 }, before.rules, { lossy = "allow" })
  t.eq(#p.raw_add, 1)
  local since = last_seq()
  local back = apply.apply(p)
  t.ok(back.ok, tostring(back.error))
  t.eq(writes(since), { "PUT pos=1" })
  t.eq(hu:list_firewall_rules(10000).data, snap.raw, "the raw rules the snapshot held")
end)

t.test("a snapshot of another VM is not restored in its raw form", function()
  w.reset()
  local apply = require "sg.apply"
  local src = require("sg.snapshot").snapshot(hu, { vm = 10000 })
  local p = apply.plan(hu, { vm = 10001 }, src, { lossy = "allow" })
  t.eq(p.raw_add, {})
end)

-- Loads VM 10000's rules as Proxmox's panel may have made them: fields the v1 body cannot
-- write (no source, a dest) included.
local function load_panel_rules(rules)
  local st = w.control("GET", "/_sim/state")
  st.providers.hostup.vms[1].rules = rules
  w.control("POST", "/_sim/load", st)
end

local function panel_rule(action, dport, source)
  return { type = "in", action = action, proto = "tcp", dport = dport, source = source,
    comment = "", enable = 1 }
end

t.test("a panel-made rule the v1 body cannot write is found before the first request", function()
  w.reset()
  local apply = require "sg.apply"
  -- a DROP for any address on top: an accept goes below it, which means writing the DROP again
  -- one place down, and the v1 API refuses a rule without a source
  load_panel_rules { panel_rule("DROP", "23", nil), panel_rule("ACCEPT", "22", "198.51.100.10") }
  local before = hu:list_firewall_rules(10000).data
  t.eq(before[1].source, nil)
  local g = hostup.get_group(hu, { vm = 10000 })
  local desired = { n { direction = "ingress", protocol = "tcp", port = 443 } }
  for _, r in ipairs(g.rules) do desired[#desired + 1] = r end
  local since = last_seq()
  local change = apply.apply(apply.plan(hu, { vm = 10000 }, desired))
  t.ok(not change.ok, "refused")
  t.eq(change.error.code, "unwritable")
  for _, needle in ipairs { "no source address", "Nothing was sent", "DROP tcp port 23 from any address" } do
    t.ok(tostring(change.error):find(needle, 1, true), "the message says " .. needle)
  end
  t.eq(writes(since), {}, "no write request")
  t.eq(hu:list_firewall_rules(10000).data, before)

  -- the same rule for one address copies, as before
  load_panel_rules { panel_rule("DROP", "23", "0.0.0.0/0"), panel_rule("ACCEPT", "22", "198.51.100.10") }
  desired = { desired[1] }
  for _, r in ipairs(hostup.get_group(hu, { vm = 10000 }).rules) do desired[#desired + 1] = r end
  change = apply.apply(apply.plan(hu, { vm = 10000 }, desired))
  t.ok(change.ok, tostring(change.error))
  t.eq(listed(10000), { { "DROP", "23", "0.0.0.0/0" }, { "ACCEPT", "443", "0.0.0.0/0" },
    { "ACCEPT", "22", "198.51.100.10" } })
end)

t.test("a panel-made rule restricted to one interface is not read as one for every interface", function()
  w.reset()
  local apply = require "sg.apply"
  local sg = require "sg"
  local on_net1 = panel_rule("ACCEPT", "22", "198.51.100.10")
  on_net1.iface = "net1"
  load_panel_rules { on_net1, panel_rule("DROP", "23", "0.0.0.0/0") }
  local before = hu:list_firewall_rules(10000).data
  t.eq(before[1].iface, "net1")
  local since = last_seq()
  local says = "hostup vm 10000, rule at pos 0 (ACCEPT tcp port 22 from 198.51.100.10): hostup rule: iface net1"
  t.raises(function() sg.snapshot(hu, { vm = 10000 }) end, says)
  t.raises(function() apply.plan(hu, { vm = 10000 }, { n { direction = "ingress", protocol = "tcp", port = 443 } },
    { mode = "additive" }) end, says)
  t.eq(writes(since), {}, "no write request")
  t.eq(hu:list_firewall_rules(10000).data, before)
end)

t.test("a panel-made rule without a protocol is read, and not written again half-way", function()
  w.reset()
  local apply = require "sg.apply"
  -- a DROP of every protocol from one network, below a DROP and above an accept: the accept for
  -- 443 goes below it, which means writing it again one place down, and the v1 body's proto is
  -- one of icmp, tcp, udp
  local every = panel_rule("DROP", nil, "203.0.113.0/24")
  every.proto, every.comment = nil, "block net"
  load_panel_rules { panel_rule("DROP", "23", "0.0.0.0/0"), every, panel_rule("ACCEPT", "22", "198.51.100.10") }
  local before = hu:list_firewall_rules(10000).data
  t.eq({ before[2].proto, before[2].source }, { nil, "203.0.113.0/24" })
  local g = hostup.get_group(hu, { vm = 10000 })
  t.eq(g.rules[2].protocol, "any")
  local since = last_seq()
  local change = apply.apply(apply.plan(hu, { vm = 10000 },
    { n { direction = "ingress", protocol = "tcp", port = 443 } }, { mode = "additive" }))
  t.ok(not change.ok, "refused")
  t.eq(change.error.code, "unwritable")
  for _, needle in ipairs { "DROP any protocol from 203.0.113.0/24", "no protocol", "Nothing was sent" } do
    t.ok(tostring(change.error):find(needle, 1, true), "the message says " .. needle)
  end
  t.eq(writes(since), {}, "no write request")
  t.eq(hu:list_firewall_rules(10000).data, before)
end)

-- VM 10001 with `count` accepts for ports 1001, 1002, ...
local function load_many(count)
  local st = w.control("GET", "/_sim/state")
  local rules = {}
  for i = 1, count do
    rules[i] = { type = "in", action = "ACCEPT", proto = "tcp", dport = tostring(1000 + i), source = "0.0.0.0/0",
      comment = "", enable = 1 }
  end
  st.providers.hostup.vms[2].rules = rules
  w.control("POST", "/_sim/load", st)
end

-- Replaces the accepts for 1001 and 1002 with accepts for 80 and 443 on VM 10001.
local function replace_two()
  local apply = require "sg.apply"
  local desired = { n { direction = "ingress", protocol = "tcp", port = 80 },
    n { direction = "ingress", protocol = "tcp", port = 443 } }
  for _, r in ipairs(hostup.get_group(hu, { vm = 10001 }).rules) do
    if r.port_min ~= 1001 and r.port_min ~= 1002 then desired[#desired + 1] = r end
  end
  return apply.apply(apply.plan(hu, { vm = 10001 }, desired))
end

t.test("the rule limit: a change whose adds would cross it is refused before any request", function()
  w.reset()
  load_many(99) -- adds go before removes: 99 + 2 = 101 at the peak, 99 at the end
  local before = hu:list_firewall_rules(10001).data
  local since = last_seq()
  local change = replace_two()
  t.ok(not change.ok, "refused")
  t.eq({ change.error.provider, change.error.code }, { "hostup", "rule_limit" })
  for _, needle in ipairs { "101 rules at its peak", "the 99 there now plus 2 added before the 2 deletes",
    "HostUp allows 100 per VPS", "Nothing was sent", "remove 1 rule(s) in HostUp's panel" } do
    t.ok(tostring(change.error):find(needle, 1, true), "the message says " .. needle .. ": " .. tostring(change.error))
  end
  t.eq(writes(since), {}, "no write request")
  t.eq(hu:list_firewall_rules(10001).data, before)
end)

t.test("the rule limit: a change that reaches it exactly goes through (the server takes rule 100)", function()
  w.reset()
  load_many(98)
  local change = replace_two()
  t.ok(change.ok, tostring(change.error))
  local now = hu:list_firewall_rules(10001).data
  t.eq(#now, 98)
  t.eq({ now[1].dport, now[2].dport }, { "80", "443" })
end)

t.test("the rule limit: a change that would end above it is refused, and the server agrees", function()
  w.reset()
  load_many(100)
  local apply = require "sg.apply"
  local since = last_seq()
  local change = apply.apply(apply.plan(hu, { vm = 10001 }, { n { direction = "ingress", protocol = "tcp", port = 443 } },
    { mode = "additive" }))
  t.ok(not change.ok, "refused")
  t.eq(change.error.code, "rule_limit")
  t.ok(tostring(change.error):find("leaves the VM with 101 rules", 1, true), tostring(change.error))
  t.eq(writes(since), {})
  -- what sgrun refuses, the emulator refuses too, in the v1 error body
  local ok, err = pcall(hu.add_firewall_rule, hu, 10001, { type = "in", action = "ACCEPT", proto = "tcp",
    dport = "443", source = "0.0.0.0/0", comment = "", enable = 1 })
  t.ok(not ok, "the 101st rule is refused")
  t.eq({ err.status, err.code }, { 400, "RULE_LIMIT_REACHED" })
  t.eq(#hu:list_firewall_rules(10001).data, 100)
end)

t.test("a panel-made rule that is never written again does not stand in the way", function()
  w.reset()
  local apply = require "sg.apply"
  -- an ACCEPT for any address at the bottom: a new DROP goes on top and nothing is copied
  load_panel_rules { panel_rule("ACCEPT", "22", nil) }
  local g = hostup.get_group(hu, { vm = 10000 })
  local desired = { n { direction = "ingress", protocol = "tcp", port = 23, action = "drop" } }
  for _, r in ipairs(g.rules) do desired[#desired + 1] = r end
  local since = last_seq()
  local change = apply.apply(apply.plan(hu, { vm = 10000 }, desired))
  t.ok(change.ok, tostring(change.error))
  t.eq(writes(since), { "POST" })
  local now = hu:list_firewall_rules(10000).data
  t.eq({ now[1].action, now[1].dport, now[1].source }, { "DROP", "23", "0.0.0.0/0" })
  t.eq({ now[2].action, now[2].dport, now[2].source, now[2].ipversion }, { "ACCEPT", "22", nil, nil })
end)

t.run()
