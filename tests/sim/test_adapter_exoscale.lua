-- The Exoscale neutral adapter (sg.groups.exoscale list_groups/get_group/create_group/apply)
-- against `sgrun sim` over real HTTP: groups by name and id, an empty group created, adds before
-- deletes, the group re-read holding exactly the desired rules, no mutating request for an empty
-- change set, remote-group rules both ways, a failed operation raising, and the seeded groups
-- carried provider -> canonical -> provider.
local t = require "testlib"
local w = require "sim_wire"
local rule = require "sg.rule"
local exo_codec = require "sg.codec.exoscale"
local adapter = require("sg.groups").get("exoscale")
local keys, rules = w.keys, w.rules
local function changes_for(group, desired) return w.changes_for(exo_codec, group, desired) end
local function mutations(since) return w.mutations("exoscale", since) end
local function last_seq() return w.last_seq("exoscale") end
local with_failing_tasks = w.with_failing_tasks

local exo = w.connect("exoscale")

local web, db, created

t.test("setup", function()
  w.reset()
  w.knobs({ task_duration_ms = 100, task_error_rate = 0 })
end)

t.test("list_groups: the seeded groups, canonical rules with their raw sources", function()
  local groups = adapter.list_groups(exo)
  local by_name = {}
  for _, g in ipairs(groups) do by_name[g.name] = g end
  web, db = by_name.web, by_name.db
  t.ok(web and db, "web and db listed")
  -- web has no egress rule: Exoscale lets all egress out, which reads as two implicit rules
  t.eq(#web.raw_rules, 5)
  t.eq(#web.rules, 7)
  t.eq(web.ref, web.id)
  t.eq(web.description, "Demo web servers")
  local implicit = {}
  for _, r in ipairs(web.rules) do
    t.ok(rule.is_normalized(r), "canonical")
    if web.implicit[r] then
      implicit[#implicit + 1] = rule.tostring(r):match("^[^#]*"):gsub("%s+$", "")
    else
      local raw = web.source[r]
      t.ok(raw and raw.id, "each rule points at its raw rule")
      t.eq(rule.key(exo_codec.decode(raw)), rule.key(r))
    end
  end
  table.sort(implicit)
  t.eq(implicit, { "egress any to 0.0.0.0/0", "egress any to ::/0" })
  -- db's rule references web by name
  t.eq(db.rules[1].remote_group, "web")
  t.eq(db.rules[1].port_min, 5432)
end)

t.test("get_group: by name and by id; a missing group is nil and a message", function()
  local a = adapter.get_group(exo, "web")
  local b = adapter.get_group(exo, web.id)
  t.eq(a.id, web.id)
  t.eq(b.name, "web")
  t.eq(keys(a.rules), keys(web.rules))
  local none, err = adapter.get_group(exo, "no-such-group")
  t.eq(none, nil)
  t.ok(err:find("no security group with the name or id \"no-such-group\"", 1, true), err)
  local seq = last_seq()
  t.raises(function() adapter.get_group(exo, "") end, "a group reference is a name or an id")
  t.raises(function() adapter.get_group(exo, { vm = 1 }) end, "not {vm = 1} (that form names a HostUp VM")
  t.eq(#w.sim_log("exoscale", seq), 0, "misuse sends nothing")
end)

t.test("create_group: an empty group, waited for, found again by name", function()
  created = adapter.create_group(exo, "adapter-exo", "made by the adapter test")
  t.ok(created.id, "an id")
  t.eq(created.name, "adapter-exo")
  t.eq(created.description, "made by the adapter test")
  t.eq(#created.raw_rules, 0)
  t.eq(#created.rules, 2, "only the implicit egress rules")
  t.eq(adapter.get_group(exo, "adapter-exo").id, created.id)
  t.raises(function() adapter.create_group(exo, "adapter-exo") end, "name is already in use")
end)

local first = rules {
  { direction = "ingress", protocol = "tcp", port = 22, cidr = "10.0.0.0/8", description = "ssh" },
  { direction = "ingress", protocol = "icmp", icmp_type = 8, icmp_code = 0, cidr = "0.0.0.0/0" },
  { direction = "egress", protocol = "udp", port = 53, cidr = "::/0" },
  { direction = "ingress", protocol = "any", cidr = "192.0.2.0/24" },
}

t.test("apply: adds, then a re-read holds exactly the desired rules", function()
  local seq = last_seq()
  local done = adapter.apply(exo, created, changes_for(created, first))
  t.eq(done, { added = 4, removed = 2 }, "the implicit egress rules give way to the explicit one")
  local after = adapter.get_group(exo, created.id)
  t.eq(keys(after.rules), keys(first))
  t.eq(#mutations(seq), 4, "one POST per rule")
  created = after
end)

local second = rules {
  { direction = "ingress", protocol = "tcp", port = 22, cidr = "10.0.0.0/8", description = "ssh" },
  { direction = "ingress", protocol = "tcp", port_min = 8000, port_max = 8080, cidr = "0.0.0.0/0" },
  { direction = "egress", protocol = "udp", port = 53, cidr = "::/0" },
}

t.test("apply: adds before deletes, one operation each, the result exactly the desired set", function()
  local seq = last_seq()
  local done = adapter.apply(exo, created, changes_for(created, second))
  t.eq(done, { added = 1, removed = 2 })
  local after = adapter.get_group(exo, created.id)
  t.eq(keys(after.rules), keys(second))
  local m = mutations(seq)
  t.eq(#m, 3)
  t.eq(m[1].method, "POST", "the add comes first")
  t.eq({ m[2].method, m[3].method }, { "DELETE", "DELETE" })
  created = after
end)

t.test("apply: nothing to change sends no mutating request", function()
  local seq = last_seq()
  local c = changes_for(created, second)
  t.eq({ #c.add, #c.remove }, { 0, 0 })
  t.eq(adapter.apply(exo, created, c), { added = 0, removed = 0 })
  t.eq(#mutations(seq), 0)
end)

t.test("apply: misuse raises before any request", function()
  local seq = last_seq()
  local stranger = rule.normalize { direction = "ingress", protocol = "tcp", port = 9, cidr = "0.0.0.0/0" }
  t.raises(function() adapter.apply(exo, created, { add = {}, remove = { stranger } }) end,
    "is not a rule of group adapter-exo")
  t.raises(function() adapter.apply(exo, created, { add = {} }) end, "apply needs changes")
  local unknown = rule.normalize { direction = "ingress", protocol = "tcp", port = 9, remote_group = "nobody" }
  t.raises(function() adapter.apply(exo, created, { add = { unknown }, remove = {} }) end,
    "remote group \"nobody\" has no id")
  t.eq(#mutations(seq), 0)
end)

t.test("remote groups: rules referencing another group and the group itself round trip", function()
  local desired = rules {
    { direction = "ingress", protocol = "tcp", port = 5432, remote_group = "web" },
    { direction = "ingress", protocol = "any", remote_group = "adapter-exo" },
    { direction = "ingress", protocol = "tcp", port = 80, remote_group = "public-nlb-healthcheck-sources" },
    { direction = "egress", protocol = "udp", port = 53, cidr = "::/0" },
  }
  adapter.apply(exo, created, changes_for(created, desired))
  local after = adapter.get_group(exo, "adapter-exo")
  t.eq(keys(after.rules), keys(desired))
  local ids = {}
  for _, raw in ipairs(after.raw_rules) do
    if raw["security-group"] then ids[raw["security-group"].name] = raw["security-group"].id end
  end
  t.eq(ids.web, web.id, "sent by id")
  t.eq(ids["adapter-exo"], created.id)
  t.ok(ids["public-nlb-healthcheck-sources"], "a public group by name")
  -- no egress rule left would let everything out: refused before anything is sent
  local seq = last_seq()
  t.raises(function() adapter.apply(exo, after, changes_for(after, {})) end, "would end with no egress rule")
  t.eq(#mutations(seq), 0)
  -- all egress, said explicitly, is fine
  local open = rules { { direction = "egress", cidr = "0.0.0.0/0" }, { direction = "egress", cidr = "::/0" } }
  adapter.apply(exo, after, changes_for(after, open))
  created = adapter.get_group(exo, created.id)
  t.eq(keys(created.rules), keys(open))
end)

t.test("an operation ending in failure raises the error object", function()
  local err
  with_failing_tasks(function()
    err = t.raises(function() adapter.apply(exo, created, changes_for(created, first)) end, "ended failure")
  end)
  t.eq({ err.provider, err.op }, { "exoscale", "wait" })
  -- failed adds changed nothing, and the deletes after them were never sent
  t.eq(keys(adapter.get_group(exo, created.id).rules), keys(created.rules))
end)

t.test("round trip: each seeded group copied rule by rule onto a new group reads back equal", function()
  for _, source in ipairs({ web, db }) do
    local copy = adapter.create_group(exo, "copy-of-" .. source.name)
    adapter.apply(exo, copy, changes_for(copy, source.rules))
    local after = adapter.get_group(exo, copy.id)
    t.eq(keys(after.rules), keys(source.rules), source.name)
    -- field for field too, ids and the referenced group's name aside
    local function body(raw)
      local b = {}
      for k, v in pairs(raw) do if k ~= "id" then b[k] = v end end
      if b["security-group"] then b["security-group"] = b["security-group"].id end
      return b
    end
    local function by_key(raws)
      local out = {}
      for _, raw in ipairs(raws) do out[rule.key(exo_codec.decode(raw))] = body(raw) end
      return out
    end
    t.eq(by_key(after.raw_rules), by_key(source.raw_rules), source.name .. " raw rules")
  end
end)

t.test("apply: an egress rule the plan kept because an implicit one matched it is sent", function()
  -- the implicit rules go once the group holds an explicit egress rule: one kept only by matching
  -- them (Gcore's or Genesis's default egress, IPv4 only) would go with them
  local ingress = { direction = "ingress", protocol = "tcp", port = 22, cidr = "10.0.0.0/8" }
  local any_v4 = { direction = "egress", protocol = "any", cidr = "0.0.0.0/0" }
  local dns_v6 = { direction = "egress", protocol = "udp", port = 53, cidr = "::/0" }
  for i, desired in ipairs({ rules { ingress, any_v4 }, rules { ingress, any_v4, dns_v6 } }) do
    local g = adapter.create_group(exo, "implicit-kept-" .. i)
    local c = changes_for(g, desired)
    local kept_implicit = 0
    for _, r in ipairs(c.desired) do
      if g.implicit and rule.key(r) == rule.key(rule.normalize(any_v4)) then kept_implicit = kept_implicit + 1 end
    end
    t.eq(kept_implicit, 1, "the plan keeps egress any to 0.0.0.0/0: it matches an implicit rule")
    adapter.apply(exo, g, c)
    t.eq(keys(adapter.get_group(exo, g.id).rules), keys(desired), "case " .. i)
  end
end)

t.test("delete_group: a group created and deleted no longer reads", function()
  w.check_delete(t, adapter, exo, "adapter-exoscale-deleted")
end)

t.run()
