-- The Barrack emulator over real HTTP: replays the add-instance-security-rule page (seeds/000)
-- and exercises the inferred firewall API (genesis_barrack_hostup.md section 2).
local t = require "testlib"
local cjson = require "cjson"
local json = require "sg.json"
local http = require "_sg.http"
local sleep = require("_sg.task").sleep

local SIM = assert(os.getenv("SGRUN_SIM_URL"), "SGRUN_SIM_URL is not set")
local BASE = assert(os.getenv("SGRUN_BARRACK_URL"), "SGRUN_BARRACK_URL is not set")
local KEY = assert(os.getenv("BARRACK_API_KEY"), "BARRACK_API_KEY is not set")
local LEGACY, STOPPED, STANDARD = "BRK-100001A", "BRK-100002B", "BRK-100003C"

---@return integer status, any body (decoded when JSON), table headers
local function call(method, url, body, headers)
  local raw = type(body) == "table" and json.encode(body) or body
  local h = headers or { Authorization = "Bearer " .. KEY }
  if raw then h["Content-Type"] = "application/json" end
  local resp, err = http.request { method = method, url = url, headers = h, body = raw, timeout = 10 }
  assert(resp, err)
  local decoded = resp.body
  if (resp.headers["content-type"] or ""):find("json", 1, true) and resp.body ~= "" then
    decoded = cjson.decode(resp.body)
  end
  return resp.status, decoded, resp.headers
end

local function api(method, path, body, headers) return call(method, BASE .. path, body, headers) end

local function is_error(body, what)
  t.eq(type(body) == "table" and body.success == false and type(body.message) == "string"
    and type(body.request_id) == "string", true, what)
end

local EXAMPLE = { -- seeds/000 request; the 200 example's values
  direction = "ingress", protocol = "tcp", ethertype = "IPv4", remote_ip_prefix = "203.0.113.0/24",
  port_range_min = 3306, port_range_max = 3306,
}

t.test("setup: fresh state, short tasks", function()
  t.eq(call("POST", SIM .. "/_sim/reset", nil, {}), 200)
  t.eq(call("PUT", SIM .. "/_sim/knobs", { task_duration_ms = 300 }, {}), 200)
end)

t.test("add instance security rule: the documented 200, then CREATING -> ACTIVE", function()
  local status, body = api("POST", "/instances/" .. LEGACY .. "/security-rules/", EXAMPLE)
  t.eq(status, 200)
  t.eq({ body.success, body.message, body.instance_id, body.tier },
    { true, "Security rule added successfully", LEGACY, "legacy" })
  t.ok(type(body.request_id) == "string" and #body.request_id == 8, body.request_id)
  local rule = body.security_rule
  local id = rule.id
  rule.id = nil
  t.eq(rule, EXAMPLE)
  local function rule_status()
    local _, inst = api("GET", "/instances/" .. LEGACY .. "/")
    for _, r in ipairs(inst.instance.security_rules) do
      if r.id == id then return r.status end
    end
  end
  t.eq(rule_status(), "CREATING")
  local deadline = 50
  while rule_status() ~= "ACTIVE" do
    deadline = deadline - 1
    t.ok(deadline > 0, "rule never became ACTIVE")
    sleep(0.1)
  end
  status, body = api("DELETE", "/instances/" .. LEGACY .. "/security-rules/" .. id .. "/")
  t.eq({ status, body.success }, { 200, true })
  t.eq(rule_status(), nil)
end)

t.test("instance rules: RUNNING legacy instances only; validation in the error envelope", function()
  local function refused(status, inst, body, needle)
    local s, resp = api("POST", "/instances/" .. inst .. "/security-rules/", body)
    t.eq(s, status, needle)
    is_error(resp, needle)
    t.ok(resp.message:find(needle, 1, true), resp.message)
  end
  refused(400, STOPPED, EXAMPLE, "RUNNING")
  refused(400, STANDARD, EXAMPLE, "legacy tier")
  refused(404, "BRK-000000X", EXAMPLE, "not found")
  local bad = {}
  for k, v in pairs(EXAMPLE) do bad[k] = v end
  bad.remote_ip_prefix = "string" -- the page's curl placeholder
  refused(400, LEGACY, bad, "remote_ip_prefix")
  bad.remote_ip_prefix, bad.ethertype = "2001:db8::/32", "IPv4"
  refused(400, LEGACY, bad, "not an IPv4 network")
  bad.remote_ip_prefix, bad.protocol = "0.0.0.0/0", "gre"
  refused(400, LEGACY, bad, "protocol")
  refused(400, LEGACY, '{"direction": ', "malformed JSON")
end)

t.test("auth and the trailing slash", function()
  local status, body = api("GET", "/firewalls/", nil, {})
  t.eq(status, 401)
  is_error(body, "no key")
  t.eq(api("GET", "/firewalls/", nil, { Authorization = "Bearer wrong" }), 401)
  t.eq(api("GET", "/firewalls/", nil, { ["X-API-Key"] = KEY }), 200)
  status, body = api("GET", "/firewalls")
  t.eq(status, 404)
  t.ok(body.message:find("slash", 1, true), body.message)
end)

t.test("firewalls: create, add rule, attach, list per instance, delete", function()
  local status, body = api("GET", "/firewalls/protocols/")
  t.eq({ status, body.protocols }, { 200, { "tcp", "udp", "icmp" } })
  status, body = api("POST", "/firewalls/", { name = "web", description = "tool", region = "NORWAY-1" })
  t.eq(status, 200)
  local path = string.format("/firewalls/%d/", body.firewall.id)
  status, body = api("POST", path .. "firewall-rules/", EXAMPLE)
  t.eq({ status, body.firewall_rule.status }, { 200, "CREATING" })
  local rule_path = string.format("%sfirewall-rules/%d/", path, body.firewall_rule.id)
  t.eq(api("POST", path .. "firewall-rules/", EXAMPLE), 409)
  status, body = api("POST", path .. "update-attachments/", { instance_ids = { STANDARD } })
  t.eq({ status, #body.firewall.attachments }, { 200, 1 })
  t.eq(api("POST", path .. "update-attachments/", { instance_ids = { LEGACY } }), 400)
  status, body = api("GET", "/instances/" .. STANDARD .. "/firewalls/")
  t.eq({ status, #body.firewalls }, { 200, 2 })
  status, body = api("DELETE", path)
  t.eq(status, 409)
  is_error(body, "attached")
  t.eq(api("POST", path .. "update-attachments/", { instance_ids = json.array() }), 200)
  t.eq(api("DELETE", rule_path), 200)
  t.eq(api("DELETE", path), 200)
  t.eq(api("GET", path), 404)
  status, body = api("GET", "/firewalls/")
  t.eq({ status, #body.firewalls, body.pagination.count }, { 200, 1, 1 })
end)

t.run()
