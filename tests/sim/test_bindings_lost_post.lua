-- A POST whose response is lost must not be applied twice. The emulator's drop knob closes
-- connections without answering, half of the time after the request took effect. The binding
-- layer never re-sends a create after such a failure without re-reading and matching first; this
-- test also checks that nothing BELOW it (the HTTP layer, libcurl) re-sends on its own.
local t = require "testlib"
local w = require "sim_wire"
local sg = require "sg"

-- POSTs the emulator received, and how many were answered or lost after taking effect.
local function sim_posts(provider)
  local n, lost = 0, 0
  for _, e in ipairs(w.sim_log(provider)) do
    if e.method == "POST" then
      n = n + 1
      if e.dropped and e.processed then lost = lost + 1 end
    end
  end
  return n, lost
end

local function client_posts(log)
  local n = 0
  for _, e in ipairs(log) do if e.method == "POST" then n = n + 1 end end
  return n
end

t.test("HostUp (duplicates allowed): every rule exists at most once, added ones exactly once", function()
  w.reset()
  w.knobs({ drop_rate = 0.3, seed = 11 })
  local hu, log = w.connect("hostup", { retry = { base = 0.02, cap = 0.2, attempts = 8 } })
  local added = {}
  for i = 1, 12 do
    local rule = { type = "in", action = "ACCEPT", proto = "tcp", dport = tostring(20000 + i),
      source = "0.0.0.0/0", comment = "lost-" .. i, enable = 1 }
    local ok, err = pcall(hu.add_firewall_rule, hu, 10001, rule)
    if ok then
      added[#added + 1] = i
    else
      t.ok(err.maybe_applied, "only an unknown outcome may fail: " .. tostring(err))
    end
  end
  w.knobs({ drop_rate = 0 })
  local sent, lost = sim_posts("hostup")
  t.ok(lost >= 1, "some POST responses were lost after the rule was added")
  t.eq(sent, client_posts(log), "the emulator received exactly the POSTs the binding sent " ..
    "(more means the HTTP layer re-sent a POST on its own: libcurl retries a request once when a " ..
    "reused connection dies before any response byte; bindings/http.c must not reuse connections " ..
    "for non-idempotent requests, e.g. CURLOPT_FRESH_CONNECT for POST/PATCH)")
  local count = {}
  for _, r in ipairs(hu:list_firewall_rules(10001).data) do count[r.comment] = (count[r.comment] or 0) + 1 end
  for i = 1, 12 do t.ok((count["lost-" .. i] or 0) <= 1, "rule lost-" .. i .. " exists at most once") end
  for _, i in ipairs(added) do t.eq(count["lost-" .. i], 1, "rule lost-" .. i .. " added once") end
end)

t.test("Gcore: a rule create whose response was lost is found by re-reading, not duplicated", function()
  w.knobs({ drop_rate = 0.3, seed = 5, task_duration_ms = 100 })
  local gc = w.connect("gcore", { retry = { base = 0.05, cap = 0.5, attempts = 8 } })
  local web
  for _ = 1, 5 do
    local ok, list = pcall(gc.list_security_groups, gc, { name = "web" })
    if ok then web = list.results[1] break end
  end
  local done = 0
  for i = 1, 6 do
    local ok = pcall(function()
      gc:wait(gc:create_security_group_rule(web.id, { direction = "ingress", protocol = "tcp",
        port_range_min = 30000 + i, port_range_max = 30000 + i, remote_ip_prefix = "192.0.2.0/24" }))
    end)
    if ok then done = done + 1 end
  end
  w.knobs({ drop_rate = 0 })
  sg.sleep(0.3)
  local count = {}
  for _, r in ipairs(gc:get_security_group(web.id).security_group_rules) do
    local p = r.port_range_min
    if type(p) == "number" and p > 30000 then count[p] = (count[p] or 0) + 1 end
  end
  for port, c in pairs(count) do t.eq(c, 1, "port " .. port .. " once") end
  t.ok(done >= 3, "most creates completed (" .. done .. ")")
end)

-- A transport that sends every request for real but loses the response of the first request
-- with `method` (POST unless given): the server applied it, the client saw a closed connection.
-- Returns the connection options and a counter of the requests with that method.
local function losing(method)
  method = method or "POST"
  local http = require "_sg.http"
  local sent, lost = 0, false
  return { transport = function(req)
    local resp, err, code = http.request(req)
    if req.method == method then
      sent = sent + 1
      if not lost and resp then
        lost = true
        return nil, "connection closed before the response (simulated)", "closed"
      end
    end
    return resp, err, code
  end, retry = { base = 0.05, cap = 0.5 } }, function() return sent end
end

t.test("a lost create response is recovered by re-reading, on every provider that creates", function()
  w.reset()
  w.knobs({ task_duration_ms = 100 })
  -- HostUp: synchronous, the rule is there at once: recovered without a second POST
  local o, posts = losing()
  local hu = sg.connect("hostup", o)
  local rule = { type = "in", action = "ACCEPT", proto = "udp", dport = "5000", source = "10.0.0.0/8",
    comment = "recover-me", enable = 1 }
  local r = hu:add_firewall_rule(10001, rule)
  t.eq({ r.recovered, r.item.comment, posts() }, { true, "recover-me", 1 })
  local n = 0
  for _, x in ipairs(hu:list_firewall_rules(10001).data) do if x.comment == "recover-me" then n = n + 1 end end
  t.eq(n, 1)

  -- Barrack: the rule is listed at once (CREATING); the recovered value can still be waited on
  o, posts = losing()
  local brk = sg.connect("barrack", o)
  r = brk:add_instance_security_rule("BRK-100001A", { direction = "ingress", protocol = "udp", ethertype = "IPv4",
    remote_ip_prefix = "10.1.0.0/16", port_range_min = 7000, port_range_max = 7000 })
  t.eq({ r.recovered, posts() }, { true, 1 })
  local _, item = brk:wait(r)
  t.eq(item.status, "ACTIVE")

  -- Genesis: the group is listed at once (creating): found by name
  o, posts = losing()
  local gen = sg.connect("genesis", o)
  r = gen:create_security_group({ name = "recover-gen", region = "NORD-NO-KRS-1", rules = sg.json.array() })
  t.eq({ r.recovered, posts() }, { true, 1 })
  t.eq(gen:wait(r).security_group.status, "created")

  -- Gcore and Exoscale: the rule appears only when the async work finishes, so the first re-read
  -- misses it, the re-send is refused as a duplicate (409), and a second look finds it
  o, posts = losing()
  local gc = sg.connect("gcore", o)
  local web = gc:list_security_groups({ name = "web" }).results[1]
  r = gc:create_security_group_rule(web.id, { direction = "ingress", protocol = "udp", ethertype = "IPv4",
    port_range_min = 6000, port_range_max = 6000, remote_ip_prefix = "10.2.0.0/16" })
  t.eq(r.recovered, true)
  t.ok(posts() <= 2, "at most one re-send after a confirmed absence")
  local _, found = gc:wait(r)
  t.eq(found.port_range_min, 6000)
  n = 0
  for _, x in ipairs(gc:get_security_group(web.id).security_group_rules) do
    if x.port_range_min == 6000 then n = n + 1 end
  end
  t.eq(n, 1)

  o, posts = losing()
  local exo = sg.connect("exoscale", o)
  local eweb
  for _, g in ipairs(exo:list_security_groups()["security-groups"]) do if g.name == "web" then eweb = g end end
  r = exo:add_rule_to_security_group(eweb.id, { ["flow-direction"] = "ingress", protocol = "udp",
    ["start-port"] = 6001, ["end-port"] = 6001, network = "10.3.0.0/16" })
  t.eq(r.recovered, true)
  t.ok(posts() <= 2)
  local final, erule = exo:wait(r)
  t.eq({ final.state, erule["start-port"] }, { "success", 6001 })
end)

-- A body that leaves a field out asks for the provider's default (Barrack: no ports means all
-- ports), so a lost create of "tcp from X" must be matched to the new all-ports rule, never to an
-- existing narrower "tcp 22 from X" that matches every field the body does send.
t.test("a lost create that leaves its ports out is not matched to an existing rule with ports", function()
  w.reset()
  w.knobs({ task_duration_ms = 100 })
  local null = sg.json.null
  local function unset(v) return v == nil or v == null end

  -- Barrack: demo-firewall (id 1) holds tcp 22 from 0.0.0.0/0
  local o, posts = losing()
  local brk = sg.connect("barrack", o)
  local r = brk:add_firewall_rule(1, { direction = "ingress", protocol = "tcp", ethertype = "IPv4",
    remote_ip_prefix = "0.0.0.0/0" })
  t.eq({ r.recovered, posts() }, { true, 1 })
  t.ok(unset(r.item.port_range_min) and unset(r.item.port_range_max),
    "recovered the all-ports rule, not " .. tostring(r.item.port_range_min))
  local _, item = brk:wait(r)
  t.eq({ item.id, item.status }, { r.item.id, "ACTIVE" })

  -- Gcore: the same shape (ports, and also protocol and remote prefix, left out mean any)
  o, posts = losing()
  local gc = sg.connect("gcore", o)
  local web = gc:list_security_groups({ name = "web" }).results[1]
  gc:wait(w.connect("gcore"):create_security_group_rule(web.id, { direction = "ingress", protocol = "tcp",
    ethertype = "IPv4", port_range_min = 22, port_range_max = 22, remote_ip_prefix = "198.51.100.0/24" }))
  r = gc:create_security_group_rule(web.id, { direction = "ingress", protocol = "tcp", ethertype = "IPv4",
    remote_ip_prefix = "198.51.100.0/24" })
  t.eq(r.recovered, true)
  t.ok(posts() <= 2, "at most one re-send after a confirmed absence")
  local _, found = gc:wait(r)
  t.ok(found and unset(found.port_range_min), "waited for the all-ports rule, not the port 22 one")
  local n = 0
  for _, x in ipairs(gc:get_security_group(web.id).security_group_rules) do
    if x.remote_ip_prefix == "198.51.100.0/24" and unset(x.port_range_min) then n = n + 1 end
  end
  t.eq(n, 1, "one all-ports rule")
end)

-- The user-visible harm: apply waited on the old rule's id, so it reported success while the rule
-- it had created ended in ERROR.
t.test("Barrack: apply of an all-ports rule whose create response was lost fails when that rule fails", function()
  w.reset()
  local rule = require "sg.rule"
  local apply = require "sg.apply"
  local o = losing()
  local brk = sg.connect("barrack", o)
  local desired = {}
  for _, x in ipairs(brk:group("demo-firewall").rules) do desired[#desired + 1] = x end
  desired[#desired + 1] = rule.normalize { direction = "ingress", protocol = "tcp", cidr = "0.0.0.0/0" }
  local p = apply.plan(brk, "demo-firewall", desired)
  w.knobs({ task_duration_ms = 200, task_error_rate = 1 })
  local res = apply.apply(p)
  w.knobs({ task_error_rate = 0 })
  t.eq(res.ok, false, "the new rule ended in ERROR")
end)

t.test("Gcore: a group create whose response was lost while its task runs is waited for, not re-sent", function()
  w.reset()
  -- the task outlasts the retry pause, so the first re-read does not list the group yet; Gcore
  -- accepts a second group of the same name, so a re-send would make two
  w.knobs({ task_duration_ms = 1500 })
  local o, posts = losing()
  local gc = sg.connect("gcore", o)
  local g = require("sg.groups").get("gcore").create_group(gc, "made-once", "lost create")
  local n = 0
  for _, x in ipairs(gc:list_security_groups().results) do if x.name == "made-once" then n = n + 1 end end
  t.eq(n, 1, "exactly one group named made-once")
  t.eq({ g.name, posts() }, { "made-once", 1 })
end)

t.test("Exoscale, Genesis, Barrack: a group create whose response was lost makes one group", function()
  w.reset()
  -- Exoscale refuses a second group of the same name (409) and lists the first once its
  -- operation ends: found by looking again; Genesis and Barrack list a new group at once
  w.knobs({ task_duration_ms = 300 })
  local lists = {
    exoscale = function(c) return c:list_security_groups()["security-groups"] end,
    genesis = function(c) return c:list_security_groups().security_groups end,
    barrack = function(c) return c:list_firewalls().firewalls end,
  }
  for _, provider in ipairs({ "exoscale", "genesis", "barrack" }) do
    local o = losing()
    local conn = sg.connect(provider, o)
    local g = require("sg.groups").get(provider).create_group(conn, "made-once", "lost create")
    local n = 0
    for _, x in ipairs(lists[provider](conn)) do if x.name == "made-once" then n = n + 1 end end
    t.eq({ provider, g.name, n }, { provider, "made-once", 1 })
  end
end)

t.test("a delete whose response was lost is done when the re-sent one finds nothing", function()
  w.reset()
  w.knobs({ task_duration_ms = 0 })
  -- Gcore: a synchronous delete (204), then 404
  local o, deletes = losing("DELETE")
  local gc = sg.connect("gcore", o)
  gc:wait(gc:create_security_group({ name = "lost-delete", rules = sg.json.array() }))
  local group = gc:list_security_groups({ name = "lost-delete" }).results[1]
  t.ok(group, "created")
  local r = gc:delete_security_group(group.id)
  t.eq({ r.already_deleted, deletes() }, { true, 2 })
  t.eq(#gc:list_security_groups({ name = "lost-delete" }).results, 0)

  -- Exoscale: the delete is an operation; the re-sent delete is answered 404 and conn:wait on
  -- the result returns at once
  o, deletes = losing("DELETE")
  local exo = sg.connect("exoscale", o)
  local sgid
  for _, g in ipairs(exo:list_security_groups()["security-groups"]) do
    if #(g.rules or {}) > 0 then sgid = g.id break end
  end
  local full = exo:get_security_group(sgid)
  local before = #full.rules
  r = exo:delete_rule_from_security_group(sgid, full.rules[1].id)
  t.eq({ r.already_deleted, deletes() }, { true, 2 })
  t.eq(exo:wait(r).state, "success")
  t.eq(#exo:get_security_group(sgid).rules, before - 1)

  -- the first delete's operation is still running when the re-sent one arrives: the rule is
  -- still listed, so Exoscale accepts the second delete, and its operation ends "not-found" once
  -- the first has removed the rule. That is the first attempt's success, not a failure.
  w.knobs({ task_duration_ms = 1500 })
  o, deletes = losing("DELETE")
  exo = sg.connect("exoscale", o)
  full = exo:get_security_group(sgid)
  before = #full.rules
  r = exo:delete_rule_from_security_group(sgid, full.rules[1].id)
  t.eq({ r.already_deleted, deletes() }, { true, 2 })
  t.eq(exo:wait(r).state, "success")
  t.eq(#exo:get_security_group(sgid).rules, before - 1)
  w.knobs({ task_duration_ms = 0 })

  -- a delete answered 404 at the first attempt is still an error: nothing says it was done
  exo = w.connect("exoscale")
  local ok, err = pcall(function() return exo:delete_rule_from_security_group(sgid, "00000000-0000-4000-8000-000000000000") end)
  t.ok(not ok, "refused")
  t.eq(err.status, 404)
  w.knobs({ task_duration_ms = 200 })
end)

t.run()
