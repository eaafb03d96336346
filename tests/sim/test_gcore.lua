-- The Gcore emulator over real HTTP: the endpoints, shapes and examples of reference/gcore.md
-- §2-7 and seeds/001 (create security group rule), tasks NEW -> RUNNING -> FINISHED/ERROR, auth,
-- and each validation case (name pattern, protocol enum, 250-rule limit, error bodies).
local t = require "testlib"
local http = require "_sg.http"
local cjson = require "cjson"
local json = require "sg.json"

local BASE = assert(os.getenv("SGRUN_SIM_URL"), "SGRUN_SIM_URL is not set (run through with_sim.sh)")
local URL = assert(os.getenv("SGRUN_GCORE_URL"))
local TOKEN = assert(os.getenv("GCORE_API_KEY"))
local P = assert(os.getenv("GCORE_CLOUD_PROJECT_ID"))
local R = assert(os.getenv("GCORE_CLOUD_REGION_ID"))
local V1 = "/cloud/v1/securitygroups/" .. P .. "/" .. R
local V2 = "/cloud/v2/security_groups/" .. P .. "/" .. R
local TASK = 0.4

local function sleep(s) require("_sg.task").sleep(s) end

local function call(method, path, body, headers)
  if type(body) == "table" then body = json.encode(body) end
  local h = headers or { Authorization = "APIKey " .. TOKEN }
  h["Content-Type"] = h["Content-Type"] or "application/json"
  local r = assert(http.request { method = method, url = URL .. path, headers = h, body = body, timeout = 10 })
  if r.body ~= "" then r.json = cjson.decode(r.body) end
  return r
end

local function control(method, path, body)
  local r = assert(http.request { method = method, url = BASE .. path,
    body = body and cjson.encode(body) or nil, headers = { ["Content-Type"] = "application/json" } })
  return r.status, r.body ~= "" and cjson.decode(r.body) or nil
end

local function fresh()
  t.eq((control("POST", "/_sim/reset")), 200)
  t.eq((control("PUT", "/_sim/knobs", { task_duration_ms = TASK * 1000, task_error_rate = 0,
    error_rate = 0, drop_rate = 0, rate_limit = 0, latency_ms = 0 })), 200)
end

local function expect_error(r, status, class, needle)
  t.eq(r.status, status, "status of " .. r.body)
  t.ok(r.json and r.json.exception_class and r.json.message and r.json.request_id,
    "error body {exception_class, message, request_id}: " .. r.body)
  if class then t.eq(r.json.exception_class, class) end
  if needle then t.ok(r.json.message:find(needle, 1, true), r.json.message .. " mentions " .. needle) end
end

local function group_by_name(name)
  for _, g in ipairs(call("GET", V1 .. "?limit=1000").json.results) do
    if g.name == name then return g end
  end
end

local function wait_task(id)
  for _ = 1, 100 do
    local r = call("GET", "/cloud/v1/tasks/" .. id)
    t.eq(r.status, 200)
    if r.json.state == "FINISHED" or r.json.state == "ERROR" then return r.json end
    sleep(0.05)
  end
  error("task did not finish")
end

local RULE_KEYS = { "id", "security_group_id", "created_at", "updated_at", "revision_number", "ethertype",
  "description", "remote_group_id", "port_range_min", "port_range_max", "remote_ip_prefix", "protocol", "direction" }
local GROUP_KEYS = { "project_id", "region_id", "region", "id", "name", "description", "created_at",
  "updated_at", "revision_number", "tags_v2" }

local function check_group_shape(g)
  for _, k in ipairs(GROUP_KEYS) do t.ok(g[k] ~= nil, "group field " .. k) end
  t.eq(g.project_id, tonumber(P))
  t.eq(g.region_id, tonumber(R))
  t.ok(g.created_at:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%+0000$"), g.created_at)
  for _, rule in ipairs(g.security_group_rules) do
    for _, k in ipairs(RULE_KEYS) do t.ok(rule[k] ~= nil, "rule field " .. k .. " is present (null allowed)") end
    t.eq(rule.security_group_id, g.id)
  end
end

t.test("auth: APIKey required; missing, Bearer and wrong tokens are 401", function()
  fresh()
  expect_error(call("GET", V1, nil, {}), 401, nil, "Authentication credentials were not provided.")
  expect_error(call("GET", V1, nil, { Authorization = "Bearer " .. TOKEN }), 401, nil, "Given token not valid for any token type")
  expect_error(call("GET", V1, nil, { Authorization = "APIKey 29841" }), 401, nil, "Bad permanent token")
  expect_error(call("GET", V1, nil, { Authorization = "APIKey 1_wrong" }), 401)
  t.eq(call("GET", V1, nil, { Authorization = "apikey " .. TOKEN }).status, 200, "the scheme word is case-insensitive")
end)

t.test("list (v1): {count, results}, limit/offset, name filter, default limit 10", function()
  local r = call("GET", V1 .. "?limit=1000&offset=0")
  t.eq(r.status, 200)
  t.eq(r.json.count, #r.json.results)
  t.ok(r.json.count >= 2)
  for _, g in ipairs(r.json.results) do check_group_shape(g) end
  local page = call("GET", V1 .. "?limit=1&offset=1").json
  t.eq(page.count, r.json.count)
  t.eq(#page.results, 1)
  t.eq(page.results[1].id, r.json.results[2].id)
  t.eq(#call("GET", V1 .. "?limit=1&offset=99").json.results, 0)
  t.eq(call("GET", V1 .. "?tag_key=environment").json.count, 1)
  t.eq(call("GET", V1 .. '?tag_key_value={"environment":"demo"}').json.count, 1)
  t.eq(call("GET", V1 .. '?tag_key_value={"environment":"prod"}').json.count, 0)
  expect_error(call("GET", V1 .. "?tag_key_value=nope"), 400, "ValidationError")
  local named = call("GET", V1 .. "?name=web").json
  t.eq(named.count, 1)
  t.eq(named.results[1].name, "web")
  for i = 1, 10 do
    local id = call("POST", "/cloud/v1/securitygroups/" .. P .. "/" .. R .. "/" .. named.results[1].id .. "/copy",
      { name = "copy-" .. i }).json.id
    t.ok(id)
  end
  t.eq(#call("GET", V1).json.results, 10, "default limit is 10 (SPEC)")
  expect_error(call("GET", V1 .. "?limit=0"), 400, "ValidationError")
  expect_error(call("GET", V1 .. "?limit=1001"), 400, "ValidationError")
  expect_error(call("GET", V1 .. "?offset=-1"), 400, "ValidationError")
end)

t.test("get (v1): the SecurityGroup shape; 404 NotFoundError; wrong project/region", function()
  fresh()
  local web = group_by_name("web")
  local r = call("GET", V1 .. "/" .. web.id)
  t.eq(r.status, 200)
  check_group_shape(r.json)
  t.eq(r.json.tags_v2, { { key = "environment", value = "demo", read_only = false } })
  local egress
  for _, rule in ipairs(r.json.security_group_rules) do
    if rule.direction == "egress" then egress = rule end
  end
  t.eq(egress.protocol, cjson.null, "all protocols is null")
  t.eq(egress.port_range_min, cjson.null)
  expect_error(call("GET", V1 .. "/3addc7a1-e926-46da-b5a2-eb4b2f935230"), 404, "NotFoundError")
  expect_error(call("GET", "/cloud/v1/securitygroups/2/" .. R), 404, "NotFoundError")
  expect_error(call("GET", "/cloud/v1/securitygroups/" .. P .. "/1"), 404, "NotFoundError")
  expect_error(call("GET", "/cloud/v1/securitygroups/x/" .. R), 400, "ValidationError")
end)

t.test("create (v2): the reference example; task NEW -> RUNNING -> FINISHED with created_resources", function()
  fresh()
  local r = call("POST", V2, {
    name = "web-firewall", description = "Allow HTTP/HTTPS",
    rules = {
      { direction = "ingress", ethertype = "IPv4", protocol = "tcp", port_range_min = 443, port_range_max = 443, remote_ip_prefix = "0.0.0.0/0", description = "HTTPS" },
      { direction = "ingress", ethertype = "IPv4", protocol = "icmp", remote_ip_prefix = "0.0.0.0/0" },
      { direction = "egress", ethertype = "IPv4", protocol = cjson.null },
    },
    tags = { environment = "production" },
  })
  t.eq(r.status, 200)
  t.eq(#r.json.tasks, 1)
  local tid = r.json.tasks[1]
  local task = call("GET", "/cloud/v1/tasks/" .. tid).json
  t.eq(task.state, "NEW")
  t.eq(task.task_type, "create_security_group")
  t.eq(task.created_resources, cjson.null)
  t.ok(task.created_on:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d$"), "task times carry no zone")
  for _, k in ipairs({ "id", "user_id", "task_type", "state", "created_on", "error", "data", "finished_on" }) do
    t.ok(task[k] ~= nil, "task field " .. k)
  end
  t.eq(group_by_name("web-firewall"), nil, "not created before the task finishes")
  sleep(TASK * 0.5)
  t.eq(call("GET", "/cloud/v1/tasks/" .. tid).json.state, "RUNNING")
  local done = wait_task(tid)
  t.eq(done.state, "FINISHED")
  t.eq(done.error, cjson.null)
  t.ok(done.finished_on ~= cjson.null)
  t.eq(#done.created_resources.security_groups, 1)
  t.eq(#done.created_resources.security_group_rules, 3)
  t.eq(done.created_resources.volumes, {}, "kinds not created are empty lists")
  local g = call("GET", V1 .. "/" .. done.created_resources.security_groups[1]).json
  check_group_shape(g)
  t.eq(g.name, "web-firewall")
  t.eq(#g.security_group_rules, 3)
  t.eq(g.tags_v2[1].key, "environment")
end)

t.test("create (v2): rules omitted gives the allow-all template, rules [] gives none", function()
  local a = wait_task(call("POST", V2, { name = "templated" }).json.tasks[1])
  local ga = call("GET", V1 .. "/" .. a.created_resources.security_groups[1]).json
  t.eq(#ga.security_group_rules, 4)
  local b = wait_task(call("POST", V2, { name = "empty", rules = json.array() }).json.tasks[1])
  local gb = call("GET", V1 .. "/" .. b.created_resources.security_groups[1]).json
  t.eq(#gb.security_group_rules, 0)
end)

t.test("create (v2): name pattern, required fields, unknown fields, types, 250 rules max", function()
  for _, bad in ipairs({ "ab", "-web", "web-", "has/slash", string.rep("a", 64), "ünïcode" }) do
    local r = call("POST", V2, { name = bad, rules = json.array() })
    expect_error(r, 400, "ValidationError")
    t.ok(r.json.invalid_fields.name, "invalid_fields.name for " .. bad)
  end
  for _, good in ipairs({ "web", "my group.1", "a_b-c.", string.rep("a", 63) }) do
    t.eq(call("POST", V2, { name = good, rules = json.array() }).status, 200, good)
  end
  local r = call("POST", V2, { rules = json.array() })
  expect_error(r, 400, "ValidationError", "Field required")
  r = call("POST", V2, { name = "web", colour = "red" })
  expect_error(r, 400, "ValidationError", "Extra inputs are not permitted")
  local many = {}
  for i = 1, 251 do many[i] = { direction = "ingress", protocol = "tcp", port_range_min = i, port_range_max = i } end
  r = call("POST", V2, { name = "toomany", rules = many })
  expect_error(r, 400, "ValidationError")
  t.ok(r.json.invalid_fields.rules)
  many[251] = nil
  t.eq(call("POST", V2, { name = "max", rules = many }).status, 200, "250 is allowed")
  expect_error(call("POST", V2, '{"name": "x",'), 400, "ValidationError", "malformed JSON")
  expect_error(call("POST", V2, "[]"), 400, "ValidationError")
  expect_error(call("POST", V2, { name = "tags", tags = { ["bad key"] = "v" } }), 400, "ValidationError")
end)

t.test("add rule (v2): seeds/001 request, {tasks}, created_resources.security_group_rules", function()
  fresh()
  local web = group_by_name("web")
  local body = [[{
  "direction": "egress",
  "description": "Some description",
  "ethertype": "IPv4",
  "port_range_max": 80,
  "port_range_min": 80,
  "protocol": "tcp",
  "remote_ip_prefix": "10.0.0.0/8"
}]]
  local r = call("POST", V2 .. "/" .. web.id .. "/rules", body)
  t.eq(r.status, 200)
  t.eq(type(r.json.tasks[1]), "string")
  local done = wait_task(r.json.tasks[1])
  t.eq(done.task_type, "create_security_group_rule")
  local rid = done.created_resources.security_group_rules[1]
  local g = call("GET", V1 .. "/" .. web.id).json
  local found
  for _, rule in ipairs(g.security_group_rules) do
    if rule.id == rid then found = rule end
  end
  t.ok(found, "the created rule is read back through its group")
  t.eq(found.remote_ip_prefix, "10.0.0.0/8")
  t.eq(found.description, "Some description")
  t.eq(g.revision_number, web.revision_number + 1)
end)

t.test("add rule (v2): validation and refusals", function()
  local web = group_by_name("web")
  local path = V2 .. "/" .. web.id .. "/rules"
  local cases = {
    { { protocol = "tcp" }, "direction" },
    { { direction = "inbound" }, "direction" },
    { { direction = "ingress", protocol = "any" }, "protocol" },     -- v2 enum has no "any"
    { { direction = "ingress", protocol = "TCP" }, "protocol" },     -- lower case only
    { { direction = "ingress", protocol = "http" }, "protocol" },
    { { direction = "ingress", ethertype = "IPv5" }, "ethertype" },
    { { direction = "ingress", protocol = "tcp", port_range_min = 70000, port_range_max = 70000 }, "port_range_min" },
    { { direction = "ingress", protocol = "tcp", port_range_min = 90, port_range_max = 80 }, "port_range_max" },
    { { direction = "ingress", protocol = "tcp", port_range_min = 80 }, "port_range_min" },
    { { direction = "ingress", protocol = "gre", port_range_min = 80, port_range_max = 80 }, "protocol" },
    { { direction = "ingress", remote_ip_prefix = "10.0.0.1/8" }, "remote_ip_prefix" },
    { { direction = "ingress", remote_ip_prefix = "nonsense" }, "remote_ip_prefix" },
    { { direction = "ingress", ethertype = "IPv4", remote_ip_prefix = "::/0" }, "ethertype" },
    { { direction = "ingress", remote_group_id = "not-a-uuid" }, "remote_group_id" },
    { { direction = "ingress", description = string.rep("d", 256) }, "description" },
    { { direction = "ingress", priority = 5 }, "priority" },
    { { direction = "ingress", protocol = "icmp", port_range_min = 300, port_range_max = 0 }, "port_range_min" },
    { { direction = "ingress", protocol = "icmp", port_range_min = 8, port_range_max = 999 }, "port_range_min" },
    { { direction = "ingress", protocol = "ipv6-icmp", ethertype = "IPv4" }, "ethertype" },
  }
  for i, c in ipairs(cases) do
    local r = call("POST", path, c[1])
    expect_error(r, 400, "ValidationError")
    t.ok(r.json.invalid_fields[c[2]], "case " .. i .. " flags " .. c[2] .. ": " .. r.body)
  end
  -- a duplicate of a seeded rule (the description does not count)
  expect_error(call("POST", path, { direction = "ingress", ethertype = "IPv4", protocol = "tcp",
    port_range_min = 22, port_range_max = 22, remote_ip_prefix = "0.0.0.0/0", description = "again" }), 409, "ConflictError")
  -- a bare address is a /32
  local ok = call("POST", path, { direction = "ingress", protocol = "udp", port_range_min = 53,
    port_range_max = 53, remote_ip_prefix = "192.0.2.1" })
  t.eq(ok.status, 200)
  wait_task(ok.json.tasks[1])
  local found
  for _, rule in ipairs(call("GET", V1 .. "/" .. web.id).json.security_group_rules) do
    if rule.port_range_min == 53 then found = rule end
  end
  t.eq(found.remote_ip_prefix, "192.0.2.1/32")
  expect_error(call("POST", V2 .. "/00000000-0000-4000-8000-000000000000/rules", { direction = "ingress" }), 404, "NotFoundError")
end)

t.test("the 250-rule limit on adding", function()
  fresh()
  local rules = {}
  for i = 1, 249 do rules[i] = { direction = "ingress", protocol = "tcp", port_range_min = i, port_range_max = i } end
  local gid = wait_task(call("POST", V2, { name = "full", rules = rules }).json.tasks[1]).created_resources.security_groups[1]
  local r = call("POST", V2 .. "/" .. gid .. "/rules", { direction = "ingress", protocol = "udp" })
  t.eq(r.status, 200, "the 250th rule")
  r = call("POST", V2 .. "/" .. gid .. "/rules", { direction = "egress", protocol = "udp" })
  t.eq(r.status, 403, "the 251st rule: " .. r.body)
  t.ok(r.json.exception_class and r.json.message:find("250", 1, true))
end)

t.test("delete rule (v2): a task, then the rule is gone; unknown rule 404", function()
  fresh()
  local web = group_by_name("web")
  local rid = web.security_group_rules[1].id
  local r = call("DELETE", V2 .. "/" .. web.id .. "/rules/" .. rid)
  t.eq(r.status, 200)
  local done = wait_task(r.json.tasks[1])
  t.eq(done.task_type, "delete_security_group_rule")
  t.eq(done.state, "FINISHED")
  local g = call("GET", V1 .. "/" .. web.id).json
  t.eq(#g.security_group_rules, #web.security_group_rules - 1)
  expect_error(call("DELETE", V2 .. "/" .. web.id .. "/rules/" .. rid), 404, "NotFoundError")
end)

t.test("update (v2 PATCH): full desired rule list; no change gives tasks []", function()
  fresh()
  local web = group_by_name("web")
  local r = call("PATCH", V2 .. "/" .. web.id, {
    name = "web-firewall-v2",
    rules = {
      { direction = "egress", ethertype = "IPv4", protocol = cjson.null },
      { direction = "ingress", ethertype = "IPv4", protocol = "tcp", port_range_min = 443, port_range_max = 443, remote_ip_prefix = "0.0.0.0/0", description = "https" },
      { direction = "ingress", ethertype = "IPv4", protocol = "tcp", port_range_min = 8443, port_range_max = 8443, remote_ip_prefix = "0.0.0.0/0" },
    },
    tags = { team = "backend", environment = cjson.null },
  })
  t.eq(r.status, 200)
  t.eq(#r.json.tasks, 1)
  local done = wait_task(r.json.tasks[1])
  t.eq(done.task_type, "update_security_group")
  local g = call("GET", V1 .. "/" .. web.id).json
  t.eq(g.name, "web-firewall-v2")
  t.eq(#g.security_group_rules, 3)
  t.eq(g.tags_v2, { { key = "team", value = "backend", read_only = false } })
  local kept = {}
  for _, rule in ipairs(web.security_group_rules) do kept[rule.id] = true end
  local same = 0
  for _, rule in ipairs(g.security_group_rules) do
    if kept[rule.id] then same = same + 1 end
  end
  t.eq(same, 2, "rules already present keep their ids")
  -- the same request again changes nothing: no task
  local again = call("PATCH", V2 .. "/" .. web.id, { name = "web-firewall-v2", tags = { team = "backend" } })
  t.eq(again.status, 200)
  t.eq(again.json.tasks, {})
  local wipe = call("PATCH", V2 .. "/" .. web.id, { rules = json.array() })
  wait_task(wipe.json.tasks[1])
  t.eq(#call("GET", V1 .. "/" .. web.id).json.security_group_rules, 0)
  expect_error(call("PATCH", V2 .. "/" .. web.id, { name = "!" }), 400, "ValidationError")
  expect_error(call("PATCH", V2 .. "/" .. web.id, { rules = { { direction = "sideways" } } }), 400, "ValidationError")
end)

t.test("copy and revert (v1, sync)", function()
  fresh()
  local web = group_by_name("web")
  local r = call("POST", V1 .. "/" .. web.id .. "/copy", { name = "web-firewall-copy" })
  t.eq(r.status, 200)
  check_group_shape(r.json)
  t.eq(r.json.name, "web-firewall-copy")
  t.ok(r.json.id ~= web.id)
  t.eq(#r.json.security_group_rules, #web.security_group_rules)
  expect_error(call("POST", V1 .. "/" .. web.id .. "/copy", {}), 400, "ValidationError")
  r = call("POST", V1 .. "/" .. r.json.id .. "/revert")
  t.eq(r.status, 200)
  local seen = {}
  local function str(v) return v == cjson.null and "-" or tostring(math.tointeger(v) or v) end
  for _, rule in ipairs(r.json.security_group_rules) do
    seen[table.concat({ rule.direction, rule.ethertype, str(rule.protocol), str(rule.port_range_min) }, " ")] = true
  end
  -- DOC-FW "Restore Default": inbound ICMP, ICMPv6, SSH, RDP (tcp and udp 3389); outbound all
  for _, want in ipairs({ "ingress IPv4 icmp -", "ingress IPv6 ipv6-icmp -", "ingress IPv4 tcp 22",
    "ingress IPv6 tcp 22", "ingress IPv4 tcp 3389", "ingress IPv4 udp 3389", "egress IPv4 - -", "egress IPv6 - -" }) do
    t.ok(seen[want], "default rule " .. want)
  end
  t.eq(#r.json.security_group_rules, 10)
end)

t.test("delete (v1): 204; a group on instances or the default group is refused", function()
  fresh()
  local web = group_by_name("web")
  expect_error(call("DELETE", V1 .. "/" .. web.id), 409, "ConflictError")
  expect_error(call("DELETE", V1 .. "/" .. group_by_name("default").id), 403)
  local gid = wait_task(call("POST", V2, { name = "short-lived", rules = json.array() }).json.tasks[1]).created_resources.security_groups[1]
  local r = call("DELETE", V1 .. "/" .. gid)
  t.eq(r.status, 204)
  t.eq(r.body, "")
  expect_error(call("GET", V1 .. "/" .. gid), 404, "NotFoundError")
end)

t.test("instances: list by group, assign/unassign by name (204), instance's groups", function()
  fresh()
  local web = group_by_name("web")
  local r = call("GET", V1 .. "/" .. web.id .. "/instances")
  t.eq(r.status, 200)
  t.eq(r.json.count, 2)
  local inst = r.json.results[1]
  local IP = "/cloud/v1/instances/" .. P .. "/" .. R .. "/" .. inst.id
  local gid = wait_task(call("POST", V2, { name = "extra", rules = json.array() }).json.tasks[1]).created_resources.security_groups[1]
  t.eq(call("POST", IP .. "/addsecuritygroup", { name = "extra" }).status, 204)
  local groups = call("GET", IP .. "/securitygroups").json
  t.eq(groups.count, 2)
  t.eq(groups.results[2], { id = gid, name = "extra" })
  expect_error(call("DELETE", V1 .. "/" .. gid), 409, "ConflictError")
  t.eq(call("POST", IP .. "/delsecuritygroup",
    { ports_security_group_names = { { port_id = cjson.null, security_group_names = { "extra" } } } }).status, 204)
  t.eq(call("GET", IP .. "/securitygroups").json.count, 1)
  expect_error(call("POST", IP .. "/delsecuritygroup", { name = "extra" }), 404, "NotFoundError")
  expect_error(call("POST", IP .. "/addsecuritygroup", { name = "no-such-group" }), 404, "NotFoundError")
  expect_error(call("POST", IP .. "/addsecuritygroup", {}), 400, "ValidationError")
  expect_error(call("POST", "/cloud/v1/instances/" .. P .. "/" .. R .. "/00000000-0000-4000-8000-000000000000/addsecuritygroup",
    { name = "extra" }), 404, "NotFoundError")
end)

t.test("tasks ending in ERROR apply nothing (task_error knob)", function()
  fresh()
  t.eq((control("PUT", "/_sim/knobs", { task_error_rate = 1 })), 200)
  local done = wait_task(call("POST", V2, { name = "doomed", rules = json.array() }).json.tasks[1])
  t.eq(done.state, "ERROR")
  t.eq(type(done.error), "string")
  t.eq(done.created_resources, cjson.null)
  t.eq(group_by_name("doomed"), nil)
  t.eq((control("PUT", "/_sim/knobs", { task_error_rate = 0 })), 200)
  local list = call("GET", "/cloud/v1/tasks?limit=5&state=ERROR").json
  t.eq(list.count, 1)
  t.eq(list.results[1].id, done.id)
end)

t.test("unknown tasks and paths, wrong methods", function()
  expect_error(call("GET", "/cloud/v1/tasks/d478ae29-dedc-4869-82f0-96104425f565"), 404, "NotFoundError")
  expect_error(call("GET", "/cloud/v9/whatever"), 404, "NotFoundError")
  expect_error(call("PUT", V1), 405, "HTTPError")
end)

-- Schema strictness (CreateSecurityGroupRuleSerializerV2 / UpdateSecurityGroupSerializerV2): raw
-- bodies, so no encoder can turn {} into [] or drop a null on the way.
t.test("strict: {} for rules, null for string fields and non-integer ports are 400 ValidationError", function()
  fresh()
  local web = group_by_name("web")
  local before = #web.security_group_rules
  local cases = {
    { "PATCH", V2 .. "/" .. web.id, '{"rules": {}}', "rules" },
    { "POST", V2, '{"name": "strict-1", "rules": {}}', "rules" },
    { "PATCH", V2 .. "/" .. web.id, '{"name": null}', "name" },
    { "PATCH", V2 .. "/" .. web.id, '{"description": null}', "description" },
    { "PATCH", V2 .. "/" .. web.id, '{"rules": null}', "rules" },
    { "POST", V2, '{"name": null}', "name" },
    { "POST", V2, '{"name": "strict-1", "rules": [], "tags": null}', "tags" },
  }
  local rule = '{"direction": "ingress", "protocol": "tcp", "port_range_min": %s, "port_range_max": %s%s}'
  for _, bad in ipairs({ { '"8080"', '"8080"', "" }, { "true", "true", "" }, { "8080.0", "8080", "" },
    { "80", "80", ', "remote_group_id": null' }, { "80", "80", ', "description": null' },
    { "80", "80", ', "ethertype": null' } }) do
    cases[#cases + 1] = { "POST", V2 .. "/" .. web.id .. "/rules", rule:format(bad[1], bad[2], bad[3]) }
  end
  for _, c in ipairs(cases) do
    local r = call(c[1], c[2], c[3])
    expect_error(r, 400, "ValidationError", c[4])
  end
  t.eq(#group_by_name("web").security_group_rules, before, "no rule changed")
  t.eq(group_by_name("strict-1"), nil)
  -- the same fields absent are fine: absent takes the default, null does not
  local r = call("POST", V2 .. "/" .. web.id .. "/rules", rule:format("8080", "8080", ""))
  t.eq(r.status, 200, r.body)
  -- "at most 255 characters" counts characters: 200 two-byte ones are fine, 256 are not
  r = call("POST", V2 .. "/" .. web.id .. "/rules", { direction = "ingress", protocol = "udp",
    port_range_min = 9000, port_range_max = 9000, description = string.rep("é", 200) })
  t.eq(r.status, 200, r.body)
  expect_error(call("POST", V2 .. "/" .. web.id .. "/rules", { direction = "ingress", protocol = "udp",
    port_range_min = 9001, port_range_max = 9001, description = string.rep("é", 256) }), 400, "ValidationError",
    "description")
end)

t.test("strict: the Authorization header is APIKey, one space, the token", function()
  fresh()
  for _, h in ipairs({ "APIKey  " .. TOKEN, "APIKey " .. TOKEN .. " ", "APIKey\t" .. TOKEN }) do
    expect_error(call("GET", V1, nil, { Authorization = h }), 401)
  end
  t.eq(call("GET", V1, nil, { Authorization = "apikey " .. TOKEN }).status, 200)
end)

-- The roll-out of issue 9: Exoscale's web group onto a Gcore group that already holds rules
-- (its default egress rules among them). The PATCH keeps those rules, and every rule it sends must
-- validate against Gcore's CreateSecurityGroupRuleSerializerV2 (no null where it types strings).
t.test("roll-out Exoscale -> Gcore onto a group with rules: every PATCH rule validates against the vendor schema", function()
  fresh()
  local sg = require "sg"
  local HERE = arg[0]:match("^(.*)/[^/]*$") or "."
  local web = group_by_name("web")
  local held = 0
  for _, r in ipairs(web.security_group_rules) do
    if r.direction == "egress" then held = held + 1 end
  end
  t.ok(held > 0, "the target group holds default egress rules")
  control("DELETE", "/_sim/log")
  local report = sg.rollout(sg.snapshot(sg.connect("exoscale"), "web"), { { sg.connect("gcore"), "web" } },
    { lossy = "allow" })
  t.eq(report.targets[1].status, "converged", tostring(report.targets[1].error))
  local patches = 0
  for _, e in ipairs(select(2, control("GET", "/_sim/log?provider=gcore")).requests) do
    if e.method == "PATCH" then
      patches = patches + 1
      t.eq(e.status, 200, e.response_body)
      local file = os.tmpname()
      local f = assert(io.open(file, "w"))
      f:write(e.request_body)
      f:close()
      local cmd = string.format("/usr/bin/python3 '%s/../schemas/check_body.py' '%s/../schemas' gcore PATCH '%s' '%s' "
        .. "rules CreateSecurityGroupRuleSerializerV2", HERE, HERE, e.path:gsub("^/gcore", ""), file)
      local out = assert(io.popen(cmd))
      local text = out:read("a")
      local ok = out:close()
      os.remove(file)
      io.write(text)
      t.ok(ok, text)
      local n = tonumber(text:match("and (%d+) rules items"))
      t.ok(n and n > held, "the PATCH carries the kept rules and the new ones: " .. tostring(n))
    end
  end
  t.eq(patches, 1, "one PATCH with the full rule list")
end)

t.test("tasks: active list, acknowledge one, acknowledge all (the task endpoints the bindings call)", function()
  fresh()
  local tid = call("POST", V2, { name = "acked", rules = json.array() }).json.tasks[1]
  local active = call("GET", "/cloud/v1/tasks/" .. P .. "/" .. R .. "/active")
  t.eq(active.status, 200)
  t.eq({ active.json.count, active.json.results[1].id }, { 1, tid })
  wait_task(tid)
  t.eq(call("GET", "/cloud/v1/tasks/" .. P .. "/" .. R .. "/active").json.count, 0)
  local r = call("POST", "/cloud/v1/tasks/" .. tid .. "/acknowledge")
  t.eq(r.status, 200)
  t.ok(r.json.acknowledged_at ~= cjson.null and r.json.acknowledged_by ~= cjson.null, r.body)
  expect_error(call("POST", "/cloud/v1/tasks/no-such-task/acknowledge"), 404)
  local other = call("POST", V2, { name = "acked-2", rules = json.array() }).json.tasks[1]
  wait_task(other)
  t.eq(call("POST", "/cloud/v1/tasks/acknowledge_all?project_id=" .. P .. "&region_id=" .. R).status, 204)
  t.ok(call("GET", "/cloud/v1/tasks/" .. other).json.acknowledged_at ~= cjson.null)
  expect_error(call("POST", "/cloud/v1/tasks/acknowledge_all?project_id=x&region_id=" .. R), 400)
end)

t.test("query parameters: the values the SPEC refuses are 400 ValidationError, not ignored", function()
  fresh()
  t.eq((control("PUT", "/_sim/knobs", { hold_tasks = true })), 200)
  for i = 1, 3 do call("POST", V2, { name = "paged-" .. i, rules = json.array() }) end
  local ACTIVE = "/cloud/v1/tasks/" .. P .. "/" .. R .. "/active"
  local all = call("GET", ACTIVE .. "?limit=1000&offset=0").json
  t.eq(all.count, 3)
  local page = call("GET", ACTIVE .. "?limit=1&offset=1").json
  t.eq({ page.count, #page.results, page.results[1].id }, { 3, 1, all.results[2].id }, "active tasks page")
  t.eq(#call("GET", ACTIVE).json.results, 3, "default limit 10")
  t.eq((control("PUT", "/_sim/knobs", { hold_tasks = false })), 200)
  for _, q in ipairs({ "limit=0", "limit=1001", "limit=ten", "limit=2.0", "limit=0x10", "offset=-1" }) do
    expect_error(call("GET", ACTIVE .. "?" .. q), 400, "ValidationError")
    expect_error(call("GET", V1 .. "?" .. q), 400, "ValidationError")
    expect_error(call("GET", "/cloud/v1/tasks?" .. q), 400, "ValidationError")
  end
  for _, q in ipairs({ "state=DONE", "is_acknowledged=maybe", "from_timestamp=yesterday", "to_timestamp=2026-12-02",
      "order_by=sideways", "sorting=up", "project_id=one" }) do
    expect_error(call("GET", "/cloud/v1/tasks?" .. q), 400, "ValidationError")
  end
  t.eq(call("GET", "/cloud/v1/tasks?state=FINISHED&state=ERROR&is_acknowledged=false&order_by=asc" ..
    "&from_timestamp=2026-12-02T17:00:00Z&project_id=" .. P).status, 200)
  expect_error(call("GET", V1 .. "?tag_key=a%3Db"), 400, "ValidationError")
  expect_error(call("GET", V1 .. "?tag_key=a%20b"), 400, "ValidationError")
  expect_error(call("GET", V1 .. '?tag_key_value={"a%20b":"demo"}'), 400, "ValidationError")
  expect_error(call("GET", V1 .. '?tag_key_value={"environment":7}'), 400, "ValidationError")
end)

t.run()
