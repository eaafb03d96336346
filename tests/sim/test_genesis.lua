-- The Genesis Cloud emulator over real HTTP: replays the reference's request/response examples
-- (genesis_barrack_hostup.md section 1, seeds/002) and checks auth, validation and async status.
local t = require "testlib"
local cjson = require "cjson"
local http = require "_sg.http"
local sleep = require("_sg.task").sleep

local SIM = assert(os.getenv("SGRUN_SIM_URL"), "SGRUN_SIM_URL is not set")
local BASE = assert(os.getenv("SGRUN_GENESIS_URL"), "SGRUN_GENESIS_URL is not set")
local TOKEN = assert(os.getenv("GENESISCLOUD_TOKEN"), "GENESISCLOUD_TOKEN is not set")
local NULL = cjson.null
local TASK_S = 0.3

---@return integer status, any body (decoded when JSON), table headers, string raw
local function call(method, url, body, headers)
  local raw = type(body) == "table" and cjson.encode(body) or body
  local h = headers or { Authorization = "Bearer " .. TOKEN }
  if raw then h["Content-Type"] = "application/json" end
  local resp, err = http.request { method = method, url = url, headers = h, body = raw, timeout = 10 }
  assert(resp, err)
  local decoded = resp.body
  if (resp.headers["content-type"] or ""):find("json", 1, true) and resp.body ~= "" then
    decoded = cjson.decode(resp.body)
  end
  return resp.status, decoded, resp.headers, resp.body
end

local function api(method, path, body, headers) return call(method, BASE .. path, body, headers) end

local function knobs(k) assert(call("PUT", SIM .. "/_sim/knobs", k, {}) == 200) end

local function is_error(body, what)
  t.eq(type(body) == "table" and type(body.code) == "string" and type(body.message) == "string", true,
    what)
end

---Polls GET until the group's status is `want` (or the group is gone when want is 404).
local function wait_for(id, want)
  for _ = 1, 50 do
    local status, body = api("GET", "/security-groups/" .. id)
    if want == 404 and status == 404 then return end
    if status == 200 and body.security_group.status == want then return body.security_group end
    sleep(0.1)
  end
  error("security group " .. id .. " never reached " .. tostring(want))
end

local EXAMPLE = { -- reference 1.3
  name = "allow-ssh-https", description = "managed by tool", region = "NORD-NO-KRS-1",
  rules = {
    { protocol = "tcp", direction = "ingress", port_range_min = 22, port_range_max = 22 },
    { protocol = "tcp", direction = "ingress", port_range_min = 443, port_range_max = 443 },
    { protocol = "icmp", direction = "ingress", port_range_min = NULL, port_range_max = NULL },
    { protocol = "all", direction = "egress", port_range_min = NULL, port_range_max = NULL },
  },
}

t.test("setup: fresh state, short tasks", function()
  t.eq(call("POST", SIM .. "/_sim/reset", nil, {}), 200)
  knobs({ task_duration_ms = TASK_S * 1000 })
end)

t.test("auth: Bearer and the deprecated X-Auth-Token work; none or a wrong one is a 401", function()
  t.eq(api("GET", "/security-groups"), 200)
  t.eq(api("GET", "/security-groups", nil, { ["X-Auth-Token"] = TOKEN }), 200)
  local status, body = api("GET", "/security-groups", nil, {})
  t.eq(status, 401)
  is_error(body, "no token")
  status, body = api("GET", "/security-groups", nil, { Authorization = "Bearer wrong" })
  t.eq(status, 401)
  is_error(body, "wrong token")
end)

t.test("list: documented pagination envelope", function()
  local status, body = api("GET", "/security-groups")
  t.eq(status, 200)
  t.eq({ body.page, body.per_page, body.total_count, #body.security_groups }, { 1, 50, 1, 1 })
  status, body = api("GET", "/security-groups?page=1&per_page=10")
  t.eq({ status, body.per_page }, { 200, 10 })
  status, body = api("GET", "/security-groups?per_page=101")
  t.eq(status, 400)
  is_error(body, "per_page > 100")
end)

t.test("create, PATCH, delete: the reference example through its async life", function()
  local status, body, _, raw = api("POST", "/security-groups", EXAMPLE)
  t.eq(status, 201)
  t.ok(raw:find('"port_range_min":null', 1, true), raw)
  local g = body.security_group
  t.eq({ g.name, g.description, g.region, g.status, g.is_internal },
    { EXAMPLE.name, EXAMPLE.description, EXAMPLE.region, "creating", false })
  t.eq(g.rules, EXAMPLE.rules)
  local created = wait_for(g.id, "created")
  t.eq(created.rules, EXAMPLE.rules)

  local rules = { { protocol = "tcp", direction = "ingress", port_range_min = 22, port_range_max = 22 } }
  status, body = api("PATCH", "/security-groups/" .. g.id, { name = EXAMPLE.name,
    description = EXAMPLE.description, rules = rules })
  t.eq({ status, body.security_group.status }, { 200, "updating" })
  t.eq(body.security_group.rules, rules)
  t.ok(body.security_group.updated_at > created.updated_at, "updated_at moved")
  t.eq(wait_for(g.id, "created").rules, rules)

  local headers
  status, body, headers = api("DELETE", "/security-groups/" .. g.id)
  t.eq({ status, body }, { 204, "" })
  t.eq(headers["content-length"] or "0", "0")
  wait_for(g.id, 404)
  t.eq(select(2, api("GET", "/security-groups")).total_count, 1)
end)

t.test("validation: reserved names, no CIDR, types, unknown fields, malformed JSON", function()
  local function refused(body, needle)
    local status, resp = api("POST", "/security-groups", body)
    t.eq(status, 400, needle)
    is_error(resp, needle)
    if needle then t.ok(resp.message:find(needle, 1, true), resp.message) end
  end
  local rule = { protocol = "tcp", direction = "ingress", port_range_min = 22, port_range_max = 22 }
  refused({ name = "default", region = "NORD-NO-KRS-1", rules = { rule } }, "reserved")
  refused({ name = "standard", region = "NORD-NO-KRS-1", rules = { rule } }, "reserved")
  -- whether the vendor ignores case is unknown: the emulator takes the side sgrun takes
  refused({ name = "Standard", region = "NORD-NO-KRS-1", rules = { rule } }, "reserved")
  refused({ name = "DEFAULT", region = "NORD-NO-KRS-1", rules = { rule } }, "reserved")
  refused({ name = "x", region = "NORD-NO-KRS-1", rules = { { protocol = "tcp", direction = "ingress",
    port_range_min = 22, port_range_max = 22, remote_ip_prefix = "10.0.0.0/8" } } }, "no source CIDR")
  refused({ name = "x", rules = { rule } }, "region")
  refused({ name = "x", region = "NORD-NO-KRS-1", rules = { { protocol = "tcp", direction = "ingress",
    port_range_min = "22", port_range_max = 22 } } }, "port_range_min")
  refused({ name = "x", region = "NORD-NO-KRS-1", rules = { rule }, tags = { "a" } }, "unknown field")
  refused('{"name": "x", ', nil)
  refused("[]", nil)
end)

t.test("routes: unknown path is the documented 2001 Invalid route; wrong method 405", function()
  local status, body = api("GET", "/nothing-here")
  t.eq({ status, body }, { 404, { code = "2001", message = "Invalid route" } })
  local headers
  status, body, headers = api("PUT", "/security-groups/abc", { name = "x" })
  t.eq({ status, headers.allow }, { 405, "DELETE, GET, PATCH" })
  is_error(body, "405")
end)

t.test("instances: attach and detach one group, replace the list", function()
  local status, body = api("GET", "/instances")
  t.eq(status, 200)
  local inst = body.instances[1]
  local seeded = inst.security_groups[1]
  local _, created = api("POST", "/security-groups", EXAMPLE)
  local id = created.security_group.id
  local path = "/instances/" .. inst.id
  status, body = api("PATCH", path, { security_groups = { attach = id } })
  t.eq({ status, #body.instance.security_groups }, { 200, 2 })
  status, body = api("PATCH", path, { security_groups = { detach = seeded.id } })
  t.eq({ status, body.instance.security_groups }, { 200, { { id = id, name = EXAMPLE.name } } })
  status, body = api("PATCH", path, { security_groups = { seeded.id } })
  t.eq({ status, body.instance.security_groups }, { 200, { seeded } })
  status, body = api("PATCH", path, { security_groups = { attach = "no-such-group" } })
  t.eq(status, 400)
  is_error(body, "unknown group")
end)

t.test("injected faults and oversized bodies keep the {code, message} shape", function()
  knobs({ faults = "5xx=1" })
  local status, body = api("GET", "/security-groups")
  knobs({ faults = "5xx=0" })
  t.ok(status >= 500, "status " .. status)
  is_error(body, "5xx")
  status, body = api("POST", "/security-groups", string.rep("x", 1024 * 1024 + 10))
  t.eq(status, 413)
  is_error(body, "413")
end)

t.test("strict: {} for rules, null names and non-integer ports are 400 invalid_argument", function()
  local g = select(2, api("GET", "/security-groups")).security_groups[1]
  local path = "/security-groups/" .. g.id
  local port = '{"rules": [{"protocol": "tcp", "direction": "ingress", "port_range_min": %s, "port_range_max": 22}]}'
  for _, c in ipairs({
    { "PATCH", path, '{"rules": {}}' },
    { "POST", "/security-groups", '{"name": "x1", "region": "NORD-NO-KRS-1", "rules": {}}' },
    { "PATCH", path, '{"name": null}' },
    { "PATCH", path, '{"description": null}' },
    { "PATCH", path, port:format('"22"') },
    { "PATCH", path, port:format("true") },
    { "PATCH", path, port:format("22.0") },
  }) do
    local status, body = api(c[1], c[2], c[3])
    t.eq(status, 400, c[3])
    is_error(body)
  end
  t.eq(select(2, api("GET", path)).security_group.rules, g.rules, "rules unchanged")
end)

t.run()
