-- The Gcore neutral adapter (sg.groups.gcore list_groups/get_group/create_group/apply) against
-- `sgrun sim` over real HTTP: groups by name and id, ambiguous names refused, a new group without
-- the default template, one full-list PATCH per apply that keeps unchanged rules as they are, no
-- request for an empty change set, the 250-rule limit checked before sending, remote-group rules
-- both ways, a task ending in ERROR raising, the seeded groups carried
-- provider -> canonical -> provider, and a rule with both an address and a group refused on read.
local t = require "testlib"
local w = require "sim_wire"
local rule = require "sg.rule"
local json = require "sg.json"
local gc_codec = require "sg.codec.gcore"
local adapter = require("sg.groups").get("gcore")
local keys, rules = w.keys, w.rules
local function changes_for(group, desired) return w.changes_for(gc_codec, group, desired) end
local function mutations(since) return w.mutations("gcore", since) end
local function last_seq() return w.last_seq("gcore") end
local with_failing_tasks = w.with_failing_tasks

local gc, wire = w.connect("gcore")

-- raw rule id by canonical key
local function ids_by_key(group)
  local out = {}
  for _, r in ipairs(group.rules) do out[rule.key(r)] = group.source[r].id end
  return out
end

local web, default, created

t.test("setup", function()
  w.reset()
  w.knobs({ task_duration_ms = 100, task_error_rate = 0 })
end)

t.test("list_groups: the project's groups with canonical rules and their raw sources", function()
  local by_name = {}
  for _, g in ipairs(adapter.list_groups(gc)) do by_name[g.name] = g end
  web, default = by_name.web, by_name.default
  t.ok(web and default, "web and default listed")
  t.eq(#web.rules, 6)
  t.eq(#default.rules, 10)
  t.eq(web.ref, web.id)
  for _, r in ipairs(web.rules) do
    t.eq(rule.key(gc_codec.decode(web.source[r])), rule.key(r))
  end
  -- the egress rule with no remote reads as any IPv4 address, every protocol
  local egress = rule.normalize { direction = "egress", protocol = "any", cidr = "0.0.0.0/0" }
  t.ok(ids_by_key(web)[rule.key(egress)], "implicit any-destination made explicit")
end)

t.test("get_group: by name and by id; missing is nil and a message; ambiguous names raise", function()
  t.eq(adapter.get_group(gc, "web").id, web.id)
  t.eq(adapter.get_group(gc, web.id).name, "web")
  local none, err = adapter.get_group(gc, "nope")
  t.eq(none, nil)
  t.ok(err:find("gcore has no security group with the name or id \"nope\"", 1, true), err)
  local twin = adapter.create_group(gc, "web")
  local e = t.raises(function() adapter.get_group(gc, "web") end, "2 security groups are named \"web\"")
  t.ok(tostring(e):find(twin.id, 1, true) and tostring(e):find(web.id, 1, true), "the ids are named")
  t.eq(adapter.get_group(gc, twin.id).id, twin.id, "an id still works")
  gc:delete_security_group(twin.id)
end)

t.test("create_group: empty (no default template), waited for", function()
  local seq = last_seq()
  created = adapter.create_group(gc, "adapter-gc", "made by the adapter test")
  t.eq(created.name, "adapter-gc")
  t.eq(created.description, "made by the adapter test")
  t.eq(#created.rules, 0, "no default rules")
  t.eq(mutations(seq)[1].method, "POST")
  local post
  for _, e in ipairs(wire) do if e.method == "POST" then post = e end end
  t.ok(post.body:find('"rules":[]', 1, true), "rules = [] keeps Gcore's default template out: " .. post.body)
  t.eq(adapter.get_group(gc, "adapter-gc").id, created.id)
end)

local first = rules {
  { direction = "ingress", protocol = "tcp", port = 22, cidr = "10.0.0.0/8", description = "ssh" },
  { direction = "ingress", protocol = "icmp", icmp_type = 8, icmp_code = 0, cidr = "0.0.0.0/0" },
  { direction = "ingress", protocol = "icmpv6", cidr = "::/0" },
  { direction = "egress", protocol = "any", cidr = "0.0.0.0/0" },
  { direction = "egress", protocol = "udp", port = 53, cidr = "2001:db8::/32" },
}

t.test("apply: one PATCH with the full list; the re-read holds exactly the desired rules", function()
  local seq = last_seq()
  t.eq(adapter.apply(gc, created, changes_for(created, first)), { added = 5, removed = 0 })
  local m = mutations(seq)
  t.eq(#m, 1)
  t.eq(m[1].method, "PATCH")
  local after = adapter.get_group(gc, created.id)
  t.eq(keys(after.rules), keys(first))
  created = after
end)

t.test("apply: adds and removes in the same PATCH; kept rules keep their ids", function()
  local before = ids_by_key(created)
  local second = rules {
    { direction = "ingress", protocol = "tcp", port = 22, cidr = "10.0.0.0/8", description = "ssh" },
    { direction = "egress", protocol = "any", cidr = "0.0.0.0/0" },
    { direction = "ingress", protocol = "tcp", port_min = 8000, port_max = 8080, cidr = "0.0.0.0/0" },
  }
  local seq = last_seq()
  t.eq(adapter.apply(gc, created, changes_for(created, second)), { added = 1, removed = 3 })
  t.eq(#mutations(seq), 1, "one request")
  local after = adapter.get_group(gc, created.id)
  t.eq(keys(after.rules), keys(second))
  local now = ids_by_key(after)
  t.eq(now[rule.key(second[1])], before[rule.key(second[1])], "kept rule not replaced")
  t.eq(now[rule.key(second[2])], before[rule.key(second[2])], "kept rule not replaced")
  created = after
end)

t.test("apply: rules the seeded group holds as read (null remote, null protocol) are kept as they are", function()
  local before = ids_by_key(web)
  local desired = {}
  for _, r in ipairs(web.rules) do desired[#desired + 1] = r end
  desired[#desired + 1] = rule.normalize { direction = "ingress", protocol = "udp", port = 51820, cidr = "0.0.0.0/0" }
  local sent_before = #wire
  adapter.apply(gc, web, changes_for(web, desired))
  -- CreateSecurityGroupRuleSerializerV2 types remote_group_id and description as plain strings:
  -- a rule read back with nulls there must be sent without those fields, never with null
  local patch = w.last_sent(wire, sent_before, "PATCH")
  t.ok(patch, "one PATCH")
  for i, r in ipairs(json.decode(patch.body).rules) do
    for k, v in pairs(r) do t.ok(v ~= json.null, string.format("rule %d field %s is not null", i, k)) end
  end
  local after = adapter.get_group(gc, web.id)
  t.eq(keys(after.rules), keys(desired))
  local now = ids_by_key(after)
  for _, r in ipairs(web.rules) do t.eq(now[rule.key(r)], before[rule.key(r)], rule.tostring(r)) end
  -- and back
  adapter.apply(gc, after, changes_for(after, web.rules))
  t.eq(keys(adapter.get_group(gc, web.id).rules), keys(web.rules))
end)

t.test("apply: nothing to change sends no request", function()
  local seq = last_seq()
  local c = changes_for(created, created.rules)
  t.eq({ #c.add, #c.remove }, { 0, 0 })
  t.eq(adapter.apply(gc, created, c), { added = 0, removed = 0 })
  t.eq(#mutations(seq), 0)
end)

t.test("apply: more than 250 rules, or a desired list at odds with add/remove, raise before sending", function()
  local seq = last_seq()
  local many = {}
  for p = 1, 251 do many[p] = rule.normalize { direction = "ingress", protocol = "tcp", port = 1000 + p, cidr = "0.0.0.0/0" } end
  t.raises(function() adapter.apply(gc, created, { add = many, remove = {} }) end,
    "would hold 254 rules; Gcore allows at most 250")
  local extra = rule.normalize { direction = "ingress", protocol = "tcp", port = 9, cidr = "0.0.0.0/0" }
  t.raises(function() adapter.apply(gc, created, { add = { extra }, remove = {}, desired = { extra } }) end,
    "which changes.desired leaves out")
  t.raises(function() adapter.apply(gc, created, { add = {}, remove = { extra } }) end, "is not a rule of group")
  t.eq(#mutations(seq), 0)
end)

t.test("remote groups: another group and the group itself, by name, round trip", function()
  local desired = rules {
    { direction = "ingress", protocol = "tcp", port = 5432, remote_group = "web" },
    { direction = "ingress", protocol = "any", remote_group = "adapter-gc" },
    { direction = "ingress", protocol = "tcp", port = 22, remote_group = "default", ethertype = "IPv6" },
  }
  adapter.apply(gc, created, changes_for(created, desired))
  local after = adapter.get_group(gc, "adapter-gc")
  t.eq(keys(after.rules), keys(desired))
  local refs = {}
  for _, raw in ipairs(after.raw_rules) do refs[raw.remote_group_id] = true end
  t.ok(refs[web.id] and refs[created.id] and refs[default.id], "sent as ids")
  -- a name two groups carry cannot be sent
  local twin = adapter.create_group(gc, "web")
  local seq = last_seq()
  local again = rules { { direction = "ingress", protocol = "tcp", port = 6379, remote_group = "web" } }
  t.raises(function() adapter.apply(gc, after, { add = again, remove = {} }) end,
    "2 groups carry that name")
  t.eq(#mutations(seq), 0)
  gc:delete_security_group(twin.id)
  created = after
end)

t.test("a task ending in ERROR raises the error object; the rules are unchanged", function()
  local before = keys(created.rules)
  local err
  with_failing_tasks(function()
    err = t.raises(function() adapter.apply(gc, created, changes_for(created, first)) end, "ended ERROR")
  end)
  t.eq({ err.provider, err.op, err.code }, { "gcore", "wait", "task_error" })
  t.eq(keys(adapter.get_group(gc, created.id).rules), before)
end)

t.test("round trip: each seeded group's rules applied to a new group read back equal", function()
  for _, source in ipairs({ web, default }) do
    local copy = adapter.create_group(gc, "copy-of-" .. source.name)
    adapter.apply(gc, copy, changes_for(copy, source.rules))
    local after = adapter.get_group(gc, copy.id)
    t.eq(keys(after.rules), keys(source.rules), source.name)
    -- and the bodies sent decode back to the same rules field for field, description included
    local function by_key(group)
      local out = {}
      for _, r in ipairs(group.rules) do out[rule.key(r)] = r.description or json.null end
      return out
    end
    t.eq(by_key(after), by_key(source), source.name .. " descriptions")
  end
end)

t.test("a rule with remote_ip_prefix and remote_group_id both: held by Gcore, refused on read with the fix", function()
  -- Gcore lets the two be combined; what the pair matches is undocumented
  local both = adapter.create_group(gc, "adapter-gc-both")
  gc:wait(gc:update_security_group(both.id, { rules = json.array {
    { direction = "ingress", ethertype = "IPv4", protocol = "tcp", port_range_min = 22, port_range_max = 22,
      remote_ip_prefix = "10.0.0.0/8", remote_group_id = web.id },
  } }))
  local raw = gc:get_security_group(both.id).security_group_rules[1]
  t.eq({ raw.remote_ip_prefix, raw.remote_group_id }, { "10.0.0.0/8", web.id }, "the emulator holds both")
  local err = t.raises(function() adapter.get_group(gc, both.id) end, "sets both remote_ip_prefix 10.0.0.0/8")
  t.eq({ err.provider, err.op, err.code }, { "gcore", "read", "unreadable_rule" })
  local text = tostring(err)
  for _, says in ipairs({ "adapter-gc-both", raw.id, "ingress tcp 22-22", web.id .. " (web)",
    "replace the rule with rules that set one of the two each", "read the group again" }) do
    t.ok(text:find(says, 1, true), "names " .. says .. ": " .. text)
  end
  gc:delete_security_group(both.id)
end)

t.test("delete_group: a group created and deleted no longer reads", function()
  w.check_delete(t, adapter, gc, "adapter-gcore-deleted")
end)

t.run()
