-- The HostUp emulator over real HTTP: replays the POST firewall page (seeds/004) and the v1
-- endpoints of genesis_barrack_hostup.md section 3, with Proxmox position semantics.
local t = require "testlib"
local cjson = require "cjson"
local http = require "_sg.http"

local SIM = assert(os.getenv("SGRUN_SIM_URL"), "SGRUN_SIM_URL is not set")
local BASE = assert(os.getenv("SGRUN_HOSTUP_URL"), "SGRUN_HOSTUP_URL is not set")
local KEY = assert(os.getenv("HOSTUP_API_KEY"), "HOSTUP_API_KEY is not set")

---@return integer status, any body (decoded when JSON), table headers, string raw
local function call(method, url, body, headers)
  local raw = type(body) == "table" and cjson.encode(body) or body
  local h = headers or { ["X-API-Key"] = KEY }
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

local function is_error(body, code)
  t.eq(type(body) == "table" and type(body.error) == "string" and type(body.message) == "string"
    and type(body.requestId) == "string" and type(body.timestamp) == "string", true, code)
  if code then t.eq(body.code, code) end
end

local EXAMPLE = { -- seeds/004 request body
  type = "in", action = "ACCEPT", proto = "tcp", dport = "443", source = "2001:db8::1/32",
  comment = "HTTPS Secure Web", enable = 1,
}

local function rules()
  local status, body = api("GET", "/vm/10000/firewall")
  assert(status == 200, "list failed")
  return body.data
end

t.test("setup: fresh state", function()
  t.eq(call("POST", SIM .. "/_sim/reset", nil, {}), 200)
end)

t.test("POST replays the vendor example; the rule lands at pos 0, others shift", function()
  local before = rules()
  local status, body = api("POST", "/vm/10000/firewall", EXAMPLE)
  t.eq(status, 200)
  t.eq({ body.success, type(body.timestamp), type(body.requestId) }, { true, "string", "string" })
  t.eq(body.data, { success = true, rule = EXAMPLE, message = "Firewall rule added successfully" })
  local after = rules()
  t.eq(#after, #before + 1)
  t.eq({ after[1].pos, after[1].comment, after[1].ipversion, after[1].enable }, { 0, EXAMPLE.comment, 6, 1 })
  for i, r in ipairs(before) do t.eq({ after[i + 1].pos, after[i + 1].comment }, { i, r.comment }) end
  t.eq(type(after[1].digest), "string")
end)

t.test("PUT ?pos= replaces; DELETE ?pos= removes and later rules move up", function()
  local changed = {}
  for k, v in pairs(EXAMPLE) do changed[k] = v end
  changed.dport, changed.comment = "8443", "alt https"
  local status, body = api("PUT", "/vm/10000/firewall?pos=0", changed)
  t.eq({ status, body.data.pos, body.data.rule, body.data.message },
    { 200, "0", changed, "Firewall rule updated successfully" })
  local second = rules()[2].comment
  status, body = api("DELETE", "/vm/10000/firewall?pos=0")
  t.eq({ status, body.data }, { 200, { success = true, pos = "0" } })
  t.eq({ rules()[1].comment, rules()[1].pos }, { second, 0 })
  status, body = api("DELETE", "/vm/10000/firewall?pos=99")
  t.eq({ status, body.message }, { 500, "Failed to delete firewall rule" })
  is_error(body, "INTERNAL_ERROR")
  status, body = api("DELETE", "/vm/10000/firewall")
  t.eq(status, 400)
  is_error(body)
end)

t.test("validation: Proxmox syntax, unknown options, wrong types, malformed JSON", function()
  local function refused(patch, needle)
    local body = {}
    for k, v in pairs(EXAMPLE) do body[k] = v end
    for k, v in pairs(patch) do body[k] = v end
    local status, resp = api("POST", "/vm/10000/firewall", body)
    t.eq(status, 400, needle)
    is_error(resp)
    t.ok(resp.message:find(needle, 1, true), resp.message)
  end
  refused({ pos = 0 }, "Unknown option: pos")
  refused({ dport = "2000:1000" }, "backwards range")
  refused({ dport = "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16" }, "too many entries")
  refused({ source = "10.0.0.1,2001:db8::1" }, "mixed ipv4/ipv6")
  -- the emulator's own address parser (not the client's) judges addresses
  refused({ source = "10.0.0.300" }, "not an IP address")
  refused({ source = "10.0.0.0/33" }, "prefix length out of range")
  refused({ proto = "icmp" }, "invalid ICMP type '443'") -- icmp's dport holds an ICMP type
  refused({ proto = "icmp", dport = "80,443" }, "invalid ICMP type")
  refused({ proto = "icmp", dport = "300" }, "invalid ICMP type")
  refused({ proto = "icmp", dport = "", source = "::/0" }, "mixed ipv4/ipv6")
  refused({ enable = true }, "enable")
  refused({ action = "ALLOW" }, "action")
  local status, body = api("POST", "/vm/10000/firewall", '{"type": "in",')
  t.eq(status, 400)
  is_error(body)
end)

t.test("options: enable and inbound policy", function()
  local status, body = api("PUT", "/vm/10000/firewall/options", { enable = 1, policy_in = "DROP" })
  t.eq({ status, body.data }, { 200, { success = true, message = "Firewall options updated successfully" } })
  status, body = api("PUT", "/vm/10000/firewall/options", { policy_in = "REJECT" })
  t.eq(status, 400)
  is_error(body)
end)

t.test("auth, unknown VM, empty rule list on the wire", function()
  local status, body = api("GET", "/vm/10000/firewall", nil, {})
  t.eq({ status, body.error, body.message }, { 401, "Unauthorized", "Authentication required" })
  is_error(body, "UNAUTHORIZED")
  t.eq(api("GET", "/vm/10000/firewall", nil, { Authorization = "Bearer " .. KEY }), 200)
  status, body = api("GET", "/vm/55555/firewall")
  t.eq(status, 404)
  is_error(body)
  local empty_status, _, _, raw = api("GET", "/vm/10001/firewall")
  t.eq(empty_status, 200)
  t.ok(raw:find('"data":[]', 1, true), raw)
end)

t.test("rate limit: 429 with Retry-After and the v1 429 body", function()
  t.eq(call("PUT", SIM .. "/_sim/knobs", { rate_limit = 1 }, {}), 200)
  local got
  for _ = 1, 5 do
    local status, body, headers = api("GET", "/vm/10000/firewall")
    if status == 429 then got = { body, headers } break end
  end
  t.eq(call("PUT", SIM .. "/_sim/knobs", { rate_limit = 0 }, {}), 200)
  t.ok(got, "no 429 within 5 requests at 1 request per second")
  t.ok(tonumber(got[2]["retry-after"]), "Retry-After header")
  t.eq({ got[1].error, type(got[1].retryAfter), type(got[1].requestId) }, { "Too Many Requests", "number", "string" })
end)

t.test("firewall groups: list, create, replace (reference 3.2); bad bodies are 400, unknown ids 404", function()
  local status, body = api("GET", "/firewall-groups")
  t.eq(status, 200)
  local before = #body.data.groups
  local rule = '{"type": "in", "action": "ACCEPT", "proto": "tcp", "enable": 1, "dport": "443", "comment": "https", "source": "0.0.0.0/0"}'
  status, body = api("POST", "/firewall-groups", '{"name": "web", "description": "web servers", "rules": [' .. rule .. ']}')
  t.eq(status, 200)
  t.eq(body.data.message, "Firewall group created successfully")
  local g = body.data.group
  t.ok(g.id and g.client_id and g.created_at and g.is_system == false, cjson.encode(g))
  body = select(2, api("GET", "/firewall-groups"))
  t.eq(#body.data.groups, before + 1)
  t.eq(body.data.groups[#body.data.groups].rules_count, 1)
  local replaced = '{"name": "web2", "description": "", "rules": [{"pos": 0, "type": "in", "action": "DROP", '
    .. '"proto": "udp", "enable": true, "dport": "53", "comment": "", "iface": "net0", "macro": ""}, ' .. rule .. ']}'
  status, body = api("PUT", "/firewall-groups/" .. g.id, replaced)
  t.eq({ status, body.data.id, body.data.message }, { 200, g.id, "Firewall group updated successfully" })
  body = select(2, api("GET", "/firewall-groups"))
  t.eq({ body.data.groups[#body.data.groups].name, body.data.groups[#body.data.groups].rules_count }, { "web2", 2 })
  for _, bad in ipairs({ '{"name": "x", "description": "", "rules": {}}', '{"name": null, "description": "", "rules": []}',
    '{"name": "x", "description": "", "rules": [{"type": "in", "action": "ACCEPT", "proto": "tcp", "enable": 1, '
      .. '"dport": 443, "comment": ""}]}', '{"name": "x", "rules": []}' }) do
    status, body = api("POST", "/firewall-groups", bad)
    t.eq(status, 400, bad)
    is_error(body)
  end
  t.eq((api("PUT", "/firewall-groups/00000000-0000-4000-8000-000000000000", replaced)), 404)
end)

t.test("a VM's firewall group assignment: read (null when none) and removed", function()
  local status, body = api("GET", "/vm/10000/firewall/group")
  t.eq({ status, body.data.assignment }, { 200, cjson.null })
  status, body = api("DELETE", "/vm/10000/firewall/group")
  t.eq({ status, body.data.success }, { 200, true })
  t.eq((api("GET", "/vm/99999/firewall/group")), 404)
end)

t.run()
