-- The Exoscale binding against `sgrun sim` over real HTTP: every method, the request on the wire
-- (method, path, body fields) against reference/exoscale.md §3, and every Authorization header
-- equal to sg.crypto.exoscale_sign over exactly what was sent (path with prefix, body bytes,
-- query), with expires = now + 600 s.
local t = require "testlib"
local w = require "sim_wire"
local sg = require "sg"

local KEY, SECRET = os.getenv("EXOSCALE_API_KEY"), os.getenv("EXOSCALE_API_SECRET")
local exo, log = w.connect("exoscale")
local base_path = w.split(exo.base_url) -- "/exoscale/v2" stands in for "/v2"

local function last() return log[#log] end

-- The latest request with this method (a wait adds GETs after the call itself).
local function last_of(method)
  for i = #log, 1, -1 do
    if log[i].method == method then return log[i] end
  end
end

local function wire(method, path, what)
  local e = last()
  local p = w.split(e.url)
  t.eq({ e.method, p }, { method, base_path .. path }, what)
  local h = e.headers.Authorization
  local expires = tonumber(h:match("expires=(%d+)$") or h:match("expires=(%d+),"))
  t.ok(expires and math.abs(expires - os.time() - 600) <= 5, what .. ": expires = now + 600")
  t.eq(h, sg.crypto.exoscale_sign { method = method, path = p, query = e.url:match("%?(.*)$"), body = e.body,
    key = KEY, secret = SECRET, expires = expires }, what .. ": signature over the bytes sent")
  if e.body then t.eq(e.headers["Content-Type"], "application/json", what) end
  return e
end

local web, spare, created

t.test("setup", function()
  w.reset()
  w.knobs({ task_duration_ms = 200 })
  for _, i in ipairs(exo:list_instances().instances) do
    if i.name == "spare-1" then spare = i end
  end
  wire("GET", "/instance", "list instances")
  t.eq(exo:get_instance(spare.id).id, spare.id)
  wire("GET", "/instance/" .. spare.id, "get instance")
end)

t.test("list_zones", function()
  local z = exo:list_zones()
  wire("GET", "/zone", "zones")
  t.eq(type(z.zones), "table")
end)

t.test("list_security_groups, with visibility=public signed as a query arg", function()
  local r = exo:list_security_groups()
  wire("GET", "/security-group", "list")
  for _, g in ipairs(r["security-groups"]) do if g.name == "web" then web = g end end
  t.ok(web)
  local pub = exo:list_security_groups({ visibility = "public" })
  local e = wire("GET", "/security-group", "list public")
  t.ok(e.url:find("?visibility=public", 1, true))
  t.ok(e.headers.Authorization:find("signed-query-args=visibility,", 1, true))
  t.ok(#pub["security-groups"] >= 3)
end)

t.test("get_security_group", function()
  local g = exo:get_security_group(web.id)
  wire("GET", "/security-group/" .. web.id, "get")
  t.eq(g.name, "web")
end)

t.test("create_security_group: an operation, waited, reference.id is the group", function()
  local op = exo:create_security_group({ name = "my-security-group", description = "test" })
  w.body_has(t, wire("POST", "/security-group", "create"), { name = "my-security-group" })
  t.eq(op.state, "pending")
  local final, group = exo:wait(op)
  t.eq(final.state, "success")
  created = final.reference.id
  t.eq(group and group.id, created, "wait finds the group")
end)

t.test("add_rule_to_security_group: the new rule's id comes from re-reading the group", function()
  local body = { ["flow-direction"] = "ingress", protocol = "tcp", network = "0.0.0.0/0", ["start-port"] = 22,
    ["end-port"] = 22, description = "ssh" } -- §2.3 row
  local op = exo:add_rule_to_security_group(created, body)
  w.body_has(t, wire("POST", "/security-group/" .. created .. "/rules", "add rule"), body)
  local final, rule = exo:wait(op)
  t.eq(final.reference.id, created, "reference.id is the group, not the rule")
  t.ok(rule and rule.id, "rule found")
  t.eq(rule.description, "ssh")
  -- icmp type/code 0 must be sent as 0 (§3.3)
  local icmp = { ["flow-direction"] = "ingress", icmp = { code = 0, type = 8 }, network = "0.0.0.0/0", protocol = "icmp" }
  local _, r2 = exo:wait(exo:add_rule_to_security_group(created, icmp))
  w.body_has(t, last_of("POST"), icmp, "icmp rule")
  t.eq(r2.icmp, { code = 0, type = 8 })
  -- a public group as the source
  local pubsrc = { ["flow-direction"] = "ingress", protocol = "tcp", ["start-port"] = 80, ["end-port"] = 80,
    ["security-group"] = { name = "public-nlb-healthcheck-sources", visibility = "public" } }
  local _, r3 = exo:wait(exo:add_rule_to_security_group(created, pubsrc))
  t.eq(r3["security-group"].name, "public-nlb-healthcheck-sources")

  local del = exo:delete_rule_from_security_group(created, rule.id)
  wire("DELETE", "/security-group/" .. created .. "/rules/" .. rule.id, "delete rule")
  t.eq(last().body, nil)
  t.eq(exo:wait(del).state, "success")
end)

t.test("external sources: add and remove", function()
  exo:wait(exo:add_external_source_to_security_group(created, "192.0.2.0/24"))
  t.eq(last_of("PUT").body, '{"cidr":"192.0.2.0/24"}')
  t.eq(exo:get_security_group(created)["external-sources"], { "192.0.2.0/24" })
  local op = exo:remove_external_source_from_security_group(created, { cidr = "192.0.2.0/24" })
  local e = wire("PUT", "/security-group/" .. created .. ":remove-source", "remove source")
  t.eq(e.body, '{"cidr":"192.0.2.0/24"}')
  exo:wait(op)
end)

t.test("attach and detach an instance", function()
  local op = exo:attach_instance_to_security_group(created, spare.id)
  local e = wire("PUT", "/security-group/" .. created .. ":attach", "attach")
  t.eq(e.body, '{"instance":{"id":"' .. spare.id .. '"}}')
  exo:wait(op)
  t.eq(exo:get_instance(spare.id)["security-groups"][1].id or exo:get_instance(spare.id)["security-groups"][1],
    created)
  op = exo:detach_instance_from_security_group(created, { instance = { id = spare.id } })
  e = wire("PUT", "/security-group/" .. created .. ":detach", "detach")
  t.eq(e.body, '{"instance":{"id":"' .. spare.id .. '"}}')
  exo:wait(op)
end)

t.test("get_operation, and wait on a bare operation id", function()
  local op = exo:delete_security_group(created)
  wire("DELETE", "/security-group/" .. created, "delete")
  local got = exo:get_operation(op.id)
  wire("GET", "/operation/" .. op.id, "get operation")
  t.eq(got.id, op.id)
  t.eq(exo:wait(op.id).state, "success")
  local err = t.raises(function() exo:get_security_group(created) end, "not found")
  t.eq({ err.status, err.provider, err.op }, { 404, "exoscale", "get_security_group" })
end)

t.test("a bad secret is a 403 error object that does not show the secret", function()
  local bad = sg.connect("exoscale", { key = KEY, secret = "wrong-secret-0123456789" })
  local err = t.raises(function() bad:list_security_groups() end, "Invalid request signature")
  t.eq(err.status, 403)
  t.ok(not tostring(err):find("wrong-secret", 1, true))
end)

t.run()
