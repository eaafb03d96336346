-- The Genesis Cloud neutral adapter (sg.groups.genesis list_groups/get_group/create_group/apply)
-- against `sgrun sim` over real HTTP: groups by name and id, an empty group created in the right
-- region (creating -> created), one full-list PATCH per apply, no request for an empty change
-- set, a group ending in status error raising, a PATCH that a first re-read does not show yet,
-- and the seeded group carried provider -> canonical -> provider.
local t = require "testlib"
local w = require "sim_wire"
local rule = require "sg.rule"
local json = require "sg.json"
local gen_codec = require "sg.codec.genesis"
local adapter = require("sg.groups").get("genesis")
local keys, rules = w.keys, w.rules
local function changes_for(group, desired) return w.changes_for(gen_codec, group, desired) end
local function mutations(since) return w.mutations("genesis", since) end
local function last_seq() return w.last_seq("genesis") end
local with_failing_tasks = w.with_failing_tasks

local gen, wire = w.connect("genesis")

local demo, created

t.test("setup", function()
  w.reset()
  w.knobs({ task_duration_ms = 100, task_error_rate = 0 })
end)

t.test("list_groups and get_group: by name and id; missing is nil and a message", function()
  local groups = adapter.list_groups(gen)
  t.eq(#groups, 1)
  demo = groups[1]
  t.eq(demo.name, "demo-ssh-web")
  t.eq(demo.description, "seeded demo group")
  t.eq(#demo.rules, 4)
  for _, r in ipairs(demo.rules) do
    t.eq(r.cidr, "0.0.0.0/0", "Genesis rules carry no CIDR: open to all")
    t.eq(rule.key(gen_codec.decode(demo.source[r])), rule.key(r))
  end
  t.eq(adapter.get_group(gen, "demo-ssh-web").id, demo.id)
  t.eq(adapter.get_group(gen, demo.id).name, "demo-ssh-web")
  local none, err = adapter.get_group(gen, "nope")
  t.eq(none, nil)
  t.ok(err:find("genesis has no security group with the name or id \"nope\"", 1, true), err)
end)

t.test("create_group: empty, in the region the account's groups are in, waited until created", function()
  local seq = last_seq()
  created = adapter.create_group(gen, "adapter-gen", "made by the adapter test")
  t.eq(created.name, "adapter-gen")
  t.eq(created.raw.status, "created")
  t.eq(created.raw.region, "NORD-NO-KRS-1")
  t.eq(#created.rules, 0)
  t.eq(#mutations(seq), 1, "one POST")
  local post
  for _, e in ipairs(wire) do if e.method == "POST" then post = e end end
  local sent = json.decode(post.body)
  t.eq({ sent.name, sent.region }, { "adapter-gen", "NORD-NO-KRS-1" })
  t.ok(post.body:find('"rules":[]', 1, true), "rules sent as an empty list: " .. post.body)
  t.eq(adapter.get_group(gen, "adapter-gen").id, created.id)
end)

t.test("create_group: conn.region wins; with groups in two regions and none set, it raises", function()
  local other = w.connect("genesis")
  other.region = "EUC-DE-MUC-1"
  local g = adapter.create_group(other, "adapter-gen-muc")
  t.eq(g.raw.region, "EUC-DE-MUC-1")
  local seq = last_seq()
  t.raises(function() adapter.create_group(gen, "adapter-gen-3") end,
    "(groups exist in EUC-DE-MUC-1, NORD-NO-KRS-1); set conn.region")
  t.eq(#mutations(seq), 0)
  gen:wait(gen:delete_security_group(g.id))
end)

local first = rules {
  { direction = "ingress", protocol = "tcp", port = 22 },
  { direction = "ingress", protocol = "udp", port_min = 60000, port_max = 61000 },
  { direction = "ingress", protocol = "icmp" },
  { direction = "egress", protocol = "any" },
}

t.test("apply: one PATCH with the full list; the re-read holds exactly the desired rules", function()
  local seq = last_seq()
  t.eq(adapter.apply(gen, created, changes_for(created, first)), { added = 4, removed = 0 })
  local m = mutations(seq)
  t.eq(#m, 1)
  t.eq(m[1].method, "PATCH")
  local after = adapter.get_group(gen, created.id)
  t.eq(keys(after.rules), keys(first))
  created = after
end)

t.test("apply: adds and removes in one PATCH", function()
  local second = rules {
    { direction = "ingress", protocol = "tcp", port = 22 },
    { direction = "egress", protocol = "any" },
    { direction = "ingress", protocol = "tcp", port = 443 },
  }
  local seq = last_seq()
  t.eq(adapter.apply(gen, created, changes_for(created, second)), { added = 1, removed = 2 })
  t.eq(#mutations(seq), 1)
  local after = adapter.get_group(gen, created.id)
  t.eq(keys(after.rules), keys(second))
  created = after
end)

t.test("apply: nothing to change sends no request; misuse raises before any", function()
  local seq = last_seq()
  local c = changes_for(created, created.rules)
  t.eq({ #c.add, #c.remove }, { 0, 0 })
  t.eq(adapter.apply(gen, created, c), { added = 0, removed = 0 })
  local stranger = rule.normalize { direction = "ingress", protocol = "udp", port = 9 }
  t.raises(function() adapter.apply(gen, created, { add = {}, remove = { stranger } }) end, "is not a rule of group")
  t.raises(function() adapter.apply(gen, created, { add = { stranger }, remove = {}, desired = {} }) end,
    "which changes.desired leaves out")
  t.eq(#mutations(seq), 0)
end)

t.test("apply: removing every rule sends an empty list", function()
  adapter.apply(gen, created, changes_for(created, {}))
  created = adapter.get_group(gen, created.id)
  t.eq(#created.rules, 0)
end)

t.test("a group ending in status error raises the error object", function()
  local err
  with_failing_tasks(function()
    err = t.raises(function() adapter.apply(gen, created, changes_for(created, first)) end,
      "ended in state error")
  end)
  t.eq({ err.provider, err.op, err.code }, { "genesis", "wait", "error" })
end)

t.test("restoring through sg.apply brings a group out of status error", function()
  local apply = require "sg.apply"
  local before = adapter.get_group(gen, created.id)
  local web = rules { { direction = "ingress", protocol = "tcp", port = 8443 } }
  with_failing_tasks(function()
    t.raises(function() adapter.apply(gen, before, changes_for(before, web)) end, "ended in state error")
  end)
  -- the failed update's rules are what the group reads now; restore to the rules it reads
  -- (nothing to write but the repair), then to the rules read before
  local failed = adapter.get_group(gen, created.id)
  t.eq(failed.raw.status, "error")
  local p = apply.plan(gen, created.id, failed.rules)
  t.eq({ #p.add, #p.remove, p.repair, p:empty() }, { 0, 0, 1, false }, "the error status makes the plan non-empty")
  local same = apply.apply(p)
  t.ok(same.ok, tostring(same.error))
  t.eq(same.repaired, 1)
  t.eq(adapter.get_group(gen, created.id).raw.status, "created")
  with_failing_tasks(function()
    t.raises(function() adapter.apply(gen, failed, changes_for(failed, before.rules)) end, "ended in state error")
  end)
  local back = apply.apply(apply.plan(gen, created.id, before.rules, { lossy = "allow" }))
  t.ok(back.ok, tostring(back.error))
  local after = adapter.get_group(gen, created.id)
  t.eq(after.raw.status, "created")
  t.eq(keys(after.rules), keys(before.rules))
end)

t.test("create_group: a group whose creation ends in status error is deleted again", function()
  -- every task fails until the adapter deletes the group it created: then the delete works
  local conn = setmetatable({}, { __index = function(_, k)
    return function(_, ...)
      if k == "delete_security_group" then w.knobs({ task_error_rate = 0 }) end
      return gen[k](gen, ...)
    end
  end })
  local err
  with_failing_tasks(function()
    err = t.raises(function() adapter.create_group(conn, "doomed") end, "was deleted again: try again")
  end)
  t.eq({ err.provider, err.code }, { "genesis", "error" })
  local none = adapter.get_group(gen, "doomed")
  t.eq(none, nil, "no group named doomed is left")
end)

t.test("apply: a re-read that still shows the old rules is waited out", function()
  -- a stand-in connection: the first wait reads "created" with the rules from before the PATCH
  local old = json.array { { protocol = "tcp", direction = "ingress", port_range_min = 22, port_range_max = 22 } }
  local sent
  local waits = 0
  local fake = {
    update_security_group = function(_, id, body)
      sent = body.rules
      return { security_group = { id = id, status = "updating", rules = body.rules } }
    end,
    wait = function()
      waits = waits + 1
      return { security_group = { status = "created", rules = waits == 1 and old or sent } }
    end,
  }
  local group = adapter.get_group(gen, demo.id)
  local want = rules { { direction = "ingress", protocol = "tcp", port = 2222 } }
  local done = adapter.apply(fake, group, changes_for(group, want))
  t.eq(done, { added = 1, removed = 4 })
  t.eq(waits, 2, "waited again after the stale read")
end)

t.test("round trip: the seeded group's rules applied to a new group read back field for field", function()
  local copy = adapter.create_group(gen, "copy-of-demo")
  adapter.apply(gen, copy, changes_for(copy, demo.rules))
  local after = adapter.get_group(gen, copy.id)
  t.eq(keys(after.rules), keys(demo.rules))
  local function sorted(raws)
    local out = {}
    for _, r in ipairs(raws) do out[#out + 1] = r end
    table.sort(out, function(a, b) return rule.key(gen_codec.decode(a)) < rule.key(gen_codec.decode(b)) end)
    return out
  end
  t.eq(sorted(after.raw_rules), sorted(demo.raw_rules))
end)

-- "default and standard are not allowed names" (reference §1.2): refused before any write, with
-- what to do, instead of a 400 in the middle of an apply or a roll-out.
t.test("reserved names: a new group named default or standard is refused before any write", function()
  local apply = require "sg.apply"
  local sg = require "sg"
  local desired = rules { { direction = "ingress", protocol = "tcp", port = 22 } }
  local seq = last_seq()
  -- in any letter case: whether Genesis Cloud ignores case is not documented
  for _, name in ipairs({ "standard", "default", "Standard", "DEFAULT" }) do
    local ok, err = pcall(apply.plan, gen, name, desired, { create = true })
    t.ok(not ok, "plan refused")
    t.eq(err.exit_code, 2, "a user error")
    t.ok(tostring(err.message):find('genesis reserves the group name "' .. name .. '"', 1, true)
      and err.message:find("choose another name", 1, true), tostring(err.message))
    t.raises(function() adapter.create_group(gen, name) end, "choose another name")
  end
  local report = sg.rollout(desired, { { gen, "Standard" } })
  t.eq({ report.ok, report.targets[1].status }, { false, "failed" })
  t.ok(tostring(report.targets[1].error):find("reserves the group name", 1, true),
    tostring(report.targets[1].error))
  t.eq(#mutations(seq), 0, "nothing written")
  -- an existing group of that name (the standard group instances get) is still planned
  local st = w.control("GET", "/_sim/state")
  st.providers.genesis.groups[1].name = "standard"
  w.control("POST", "/_sim/load", st)
  t.eq(apply.plan(gen, "standard", demo.rules):empty(), true)
end)

-- A connection to the emulator whose GET replies carry `rules` replaced by `value` (in every
-- group of a list, in the group of a single read), once `armed()` says so; and the writes it sent.
local function rewriting(value, armed)
  local sent = {}
  local http = require "_sg.http"
  local conn = require("sg").connect("genesis", { retry = { base = 0.05, cap = 1 }, transport = function(req)
    if req.method ~= "GET" then sent[#sent + 1] = req.method end
    local resp, err, code = http.request(req)
    if resp and resp.status == 200 and req.method == "GET" and (not armed or armed(sent)) then
      local body = json.decode(resp.body)
      for _, g in ipairs(body.security_groups or { body.security_group }) do g.rules = value end
      resp.body = json.encode(body)
    end
    return resp, err, code
  end })
  return conn, sent
end

for _, case in ipairs {
  { value = json.null, says = "has 'rules': null" },
  { value = { x = 1 }, says = "has a 'rules' that is not a list (an object)" },
  { value = nil, says = "has no 'rules'" },
  { value = json.array { json.null }, says = "not a rule object at rules[0]" },
} do
  t.test("a group read with " .. case.says .. " is a bad response: an additive apply writes nothing", function()
    w.reset()
    local apply = require "sg.apply"
    local sg = require "sg"
    local before = adapter.get_group(gen, "demo-ssh-web")
    local conn, sent = rewriting(case.value)
    local err = t.raises(function() sg.snapshot(conn, "demo-ssh-web") end, case.says)
    t.eq({ err.provider, err.op, err.code }, { "genesis", "read", "bad_response" })
    for _, needle in ipairs { "group demo-ssh-web (id " .. before.id .. ")", "not take that for an empty group",
      "Nothing was sent", "SGRUN_GENESIS_URL" } do
      t.ok(tostring(err):find(needle, 1, true), "the message says " .. needle .. ": " .. tostring(err))
    end
    -- reproduced: an additive roll-out PATCHed the full list without the group's egress rule
    local seq = last_seq()
    t.raises(function()
      apply.plan(conn, "demo-ssh-web", rules { { direction = "ingress", protocol = "tcp", port = 3306 } },
        { mode = "additive" })
    end, case.says)
    t.eq(sent, {})
    t.eq(#mutations(seq), 0, "nothing written")
    t.eq(keys(adapter.get_group(gen, "demo-ssh-web").rules), keys(before.rules))
  end)
end

t.test("a PATCH read back with 'rules': null is a bad response after the update, not a settled group", function()
  w.reset()
  local group = adapter.get_group(gen, "demo-ssh-web")
  local conn = rewriting(json.null, function(sent) return #sent > 0 end)
  local desired = rules { { direction = "ingress", protocol = "tcp", port = 3306 } }
  for _, r in ipairs(group.rules) do desired[#desired + 1] = r end
  local err = t.raises(function() adapter.apply(conn, group, changes_for(group, desired)) end, "has 'rules': null")
  t.eq({ err.provider, err.op, err.code }, { "genesis", "apply", "bad_response" })
  t.ok(tostring(err):find("after the update sgrun sent, so sgrun cannot tell what the group holds now",
    1, true), tostring(err))
end)

t.test("delete_group: a group created and deleted no longer reads", function()
  w.check_delete(t, adapter, gen, "adapter-genesis-deleted")
end)

t.run()
