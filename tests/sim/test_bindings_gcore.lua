-- The Gcore binding against `sgrun sim` over real HTTP: every method, and the request each puts
-- on the wire (method, path, query, headers, body fields) against reference/gcore.md §4.
local t = require "testlib"
local w = require "sim_wire"
local sg = require "sg"

local KEY = os.getenv("GCORE_API_KEY")
local P, R = os.getenv("GCORE_CLOUD_PROJECT_ID"), os.getenv("GCORE_CLOUD_REGION_ID")
local gc, log = w.connect("gcore")
local prefix = w.split(gc.base_url) -- "/gcore": the emulator's stand-in for https://api.gcore.com

local function last() return log[#log] end

-- Checks the last request: method, path after the base URL, and the documented headers.
local function wire(method, path, what)
  local e = last()
  local p, q = w.split(e.url)
  t.eq({ e.method, p:sub(#prefix + 1) }, { method, path }, what)
  t.eq(e.headers.Authorization, "APIKey " .. KEY, what .. ": auth header")
  if e.body then t.eq(e.headers["Content-Type"], "application/json", what .. ": content type") end
  return e, q
end

local web, spare

t.test("setup", function()
  w.reset()
  w.knobs({ task_duration_ms = 200 })
end)

t.test("list_security_groups: GET v1 with explicit limit, every page", function()
  local r = gc:list_security_groups()
  local _, q = wire("GET", "/cloud/v1/securitygroups/" .. P .. "/" .. R, "list")
  t.eq({ q.limit, q.offset }, { "1000", "0" })
  t.eq(#r.results, 2)
  t.eq(r.count, 2)
  for _, g in ipairs(r.results) do if g.name == "web" then web = g end end
  t.ok(web, "seeded group web")
  local one = gc:list_security_groups({ limit = 1, offset = 1 })
  t.eq(#one.results, 1, "explicit paging gives one page")
  local named = gc:list_security_groups({ name = "web" })
  t.eq(#named.results, 1)
  local _, q2 = w.split(last().url)
  t.eq(q2.name, "web")
end)

t.test("get_security_group", function()
  local g = gc:get_security_group(web.id)
  wire("GET", "/cloud/v1/securitygroups/" .. P .. "/" .. R .. "/" .. web.id, "get")
  t.eq(g.id, web.id)
  t.ok(#g.security_group_rules >= 6)
end)

local created
t.test("create_security_group: POST v2, async tasks, the created group found", function()
  -- §4.3 request example
  local body = { name = "web-firewall", description = "Allow HTTP/HTTPS",
    rules = {
      { direction = "ingress", ethertype = "IPv4", protocol = "tcp", port_range_min = 443, port_range_max = 443,
        remote_ip_prefix = "0.0.0.0/0", description = "HTTPS" },
      { direction = "ingress", ethertype = "IPv4", protocol = "icmp", remote_ip_prefix = "0.0.0.0/0" },
      { direction = "egress", ethertype = "IPv4", protocol = sg.json.null },
    },
    tags = { environment = "production" } }
  local r = gc:create_security_group(body)
  local e = wire("POST", "/cloud/v2/security_groups/" .. P .. "/" .. R, "create")
  local sent = w.body_has(t, e, { name = "web-firewall", description = "Allow HTTP/HTTPS",
    tags = { environment = "production" } }, "create")
  t.eq(#sent.rules, 3)
  t.eq(sent.rules[3].protocol, sg.json.null, "protocol null is sent as null")
  t.eq(type(r.tasks), "table")
  local tasks, group = gc:wait(r)
  t.eq(tasks[1].state, "FINISHED")
  t.eq(tasks[1].task_type, "create_security_group")
  created = tasks[1].created_resources.security_groups[1]
  t.ok(created)
  t.eq(group and group.id, created, "wait returns the created group")
end)

t.test("update_security_group: PATCH v2 with the full rule list", function()
  local r = gc:update_security_group(created, { name = "web-firewall-v2",
    rules = { { direction = "egress", ethertype = "IPv4", protocol = sg.json.null } } })
  wire("PATCH", "/cloud/v2/security_groups/" .. P .. "/" .. R .. "/" .. created, "update")
  gc:wait(r)
  local g = gc:get_security_group(created)
  t.eq(g.name, "web-firewall-v2")
  t.eq(#g.security_group_rules, 1)
  -- a no-op update answers tasks = []: waiting on it returns at once
  local noop = gc:update_security_group(created, { name = "web-firewall-v2" })
  t.eq(#noop.tasks, 0)
  t.eq(#gc:wait(noop), 0)
end)

local rule_id
t.test("create_security_group_rule: POST v2 rules, polled, the rule found in the group", function()
  local body = { direction = "ingress", ethertype = "IPv4", protocol = "tcp", port_range_min = 8080,
    port_range_max = 8080, remote_ip_prefix = "0.0.0.0/0", description = "app" } -- §4.10 example
  local r = gc:create_security_group_rule(created, body)
  local e = wire("POST", "/cloud/v2/security_groups/" .. P .. "/" .. R .. "/" .. created .. "/rules", "add rule")
  w.body_has(t, e, body, "add rule")
  local tasks, rule = gc:wait(r)
  t.eq(tasks[1].task_type, "create_security_group_rule")
  rule_id = tasks[1].created_resources.security_group_rules[1]
  t.eq(rule and rule.id, rule_id)
end)

t.test("delete_security_group_rule: DELETE v2, async", function()
  local r = gc:delete_security_group_rule(created, rule_id)
  wire("DELETE", "/cloud/v2/security_groups/" .. P .. "/" .. R .. "/" .. created .. "/rules/" .. rule_id, "del rule")
  t.eq(last().body, nil)
  gc:wait(r)
  for _, x in ipairs(gc:get_security_group(created).security_group_rules) do
    t.ok(x.id ~= rule_id, "rule deleted")
  end
end)

t.test("copy_security_group and revert_security_group_to_default", function()
  local copy = gc:copy_security_group(created, "web-firewall-copy")
  local e = wire("POST", "/cloud/v1/securitygroups/" .. P .. "/" .. R .. "/" .. created .. "/copy", "copy")
  t.eq(e.body, '{"name":"web-firewall-copy"}')
  t.eq(copy.name, "web-firewall-copy")
  local reverted = gc:revert_security_group_to_default(copy.id)
  wire("POST", "/cloud/v1/securitygroups/" .. P .. "/" .. R .. "/" .. copy.id .. "/revert", "revert")
  t.eq(last().body, nil, "revert has no body")
  t.eq(reverted.id, copy.id)
  t.ok(#reverted.security_group_rules > 0)
  gc:delete_security_group(copy.id)
end)

t.test("instances: list/get, assign/unassign by name, list both ways", function()
  local list = gc:list_instances()
  wire("GET", "/cloud/v1/instances/" .. P .. "/" .. R, "list instances")
  for _, i in ipairs(list.results) do
    if i.name == "spare-1" then spare = i end
  end
  t.eq(gc:get_instance(spare.id).id, spare.id)
  wire("GET", "/cloud/v1/instances/" .. P .. "/" .. R .. "/" .. spare.id, "get instance")
  local r = gc:assign_security_group(spare.id, "web-firewall-v2")
  local e = wire("POST", "/cloud/v1/instances/" .. P .. "/" .. R .. "/" .. spare.id .. "/addsecuritygroup", "assign")
  t.eq(e.body, '{"name":"web-firewall-v2"}')
  t.eq(next(r), nil, "204: an empty table")
  local members = gc:list_security_group_instances(created)
  wire("GET", "/cloud/v1/securitygroups/" .. P .. "/" .. R .. "/" .. created .. "/instances", "sg instances")
  t.eq(members.results[1].id, spare.id)
  local sgs = gc:list_instance_security_groups(spare.id)
  wire("GET", "/cloud/v1/instances/" .. P .. "/" .. R .. "/" .. spare.id .. "/securitygroups", "instance sgs")
  local names = {}
  for _, x in ipairs(sgs.results) do names[x.name] = true end
  t.ok(names["web-firewall-v2"])
  gc:unassign_security_group(spare.id, { name = "web-firewall-v2" })
  e = wire("POST", "/cloud/v1/instances/" .. P .. "/" .. R .. "/" .. spare.id .. "/delsecuritygroup", "unassign")
  t.eq(e.body, '{"name":"web-firewall-v2"}')
end)

t.test("delete_security_group: DELETE v1, 204", function()
  local r = gc:delete_security_group(created)
  wire("DELETE", "/cloud/v1/securitygroups/" .. P .. "/" .. R .. "/" .. created, "delete")
  t.eq(next(r), nil)
  t.eq(gc:wait(r), r, "nothing to wait for")
  local err = t.raises(function() gc:get_security_group(created) end, "not found")
  t.eq({ err.status, err.code, err.provider, err.op }, { 404, "NotFoundError", "gcore", "get_security_group" })
  t.ok(err.request_id, "request id read from the error body")
end)

t.test("tasks: get_task, list_tasks", function()
  local list = gc:list_tasks({ limit = 5 })
  wire("GET", "/cloud/v1/tasks", "list tasks")
  t.ok(#list.results > 0)
  local one = gc:get_task(list.results[1].id)
  wire("GET", "/cloud/v1/tasks/" .. list.results[1].id, "get task")
  t.eq(one.id, list.results[1].id)
  t.ok(gc:wait(one.id)[1].state == "FINISHED", "wait takes a bare task id")
end)

t.test("task endpoints: active list, acknowledge one and all, right on the wire", function()
  t.ok(gc:list_active_tasks().count ~= nil)
  wire("GET", "/cloud/v1/tasks/" .. P .. "/" .. R .. "/active", "active tasks")
  local err = t.raises(function() gc:acknowledge_task("00000000-0000-4000-8000-000000000000") end)
  t.eq(err.status, 404)
  wire("POST", "/cloud/v1/tasks/00000000-0000-4000-8000-000000000000/acknowledge", "ack")
  gc:acknowledge_all_tasks()
  local _, q = wire("POST", "/cloud/v1/tasks/acknowledge_all", "ack all")
  t.eq({ q.project_id, q.region_id }, { P, R })
end)

t.run()
