-- Pure-logic tests of the Genesis Cloud, Barrack and HostUp emulator modules: handle() is called
-- directly with a controlled ctx (clock, seeded random), and every response body goes through
-- the emulator core's own JSON encoder, so the assertions see what the wire would carry.
local t = require "testlib"
local cjson = require "cjson"
local sgsim = require "sgsim"

local genesis = require "sgsim.genesis"
local barrack = require "sgsim.barrack"
local hostup = require "sgsim.hostup"

local NULL = cjson.null
local T0 = 1767225600 -- 2026-01-01T00:00:00Z

---A ctx like the core's, with a clock the test moves by hand.
local function new_ctx(opts)
  opts = opts or {}
  local clock, seed, ids = T0, 7, 0
  local ctx = {
    task_duration = opts.task_duration or 5, task_error_rate = opts.task_error_rate or 0,
    json = sgsim.json, crypto = require "_sg.crypto", null = NULL,
    json_array_mt = sgsim.json.array_mt, json_object_mt = sgsim.json.object_mt,
  }
  function ctx.now() return clock end
  function ctx.random()
    seed = (seed * 1103515245 + 12345) % 2147483648
    return seed / 2147483648
  end
  function ctx.new_id()
    ids = ids + 1
    return string.format("%08x-0000-4000-8000-%012x", ids, ids)
  end
  function ctx.tick(dt) clock = clock + dt end
  return ctx
end

local AUTH = {
  genesis = { authorization = "Bearer " .. genesis.env("").GENESISCLOUD_TOKEN },
  barrack = { authorization = "Bearer " .. barrack.env("").BARRACK_API_KEY },
  hostup = { ["x-api-key"] = hostup.env("").HOSTUP_API_KEY },
}

---One emulated account of a provider: state, ctx, and call(method, path, body, headers).
local function account(mod, opts)
  local ctx = new_ctx(opts)
  local acct = { ctx = ctx, state = mod.new_state(ctx) }
  ---@return integer status, any body decoded from the wire, table|nil headers, string wire
  function acct.call(method, path, body, headers)
    local raw = type(body) == "table" and sgsim.json.encode(body) or body or ""
    local p, query = path:match("^([^?]*)%??(.*)$")
    local args = sgsim.parse_query(query)
    local req = { method = method, path = p, wire_path = mod.prefix .. p, query = query, args = args,
      headers = headers or AUTH[mod.name], body = raw, now = ctx.now() }
    if raw ~= "" then req.json = sgsim.json.decode(raw) end
    if mod.advance then mod.advance(acct.state, ctx) end
    local status, resp, hdrs = mod.handle(acct.state, req, ctx)
    local wire = type(resp) == "table" and sgsim.json.encode(resp) or resp or ""
    -- The state must survive a JSON dump at every step (GET /_sim/state).
    sgsim.json.encode(acct.state)
    return status, wire ~= "" and cjson.decode(wire) or wire, hdrs, wire
  end
  return acct
end

local function keys(tbl)
  local out = {}
  for k in pairs(tbl) do out[#out + 1] = k end
  table.sort(out)
  return table.concat(out, ",")
end

---Runs the same request body through many broken variants, all refused with 400.
local function refuses_all(call, method, path, base, variants, check)
  for name, patch in pairs(variants) do
    local body = {}
    for k, v in pairs(base) do body[k] = v end
    for k, v in pairs(patch) do
      if v == "DROP" then body[k] = nil else body[k] = v end
    end
    local status, resp = call(method, path, body)
    t.eq(status, 400, name)
    check(resp, name)
  end
end

------------------------------------------------------------------------------------------------
-- Genesis Cloud

local function genesis_error(resp, what)
  t.eq(keys(resp), "code,message", what)
  t.eq(type(resp.code), "string", what)
end

local GENESIS_EXAMPLE = { -- reference 1.3 create example
  name = "allow-ssh-https", description = "managed by tool", region = "NORD-NO-KRS-1",
  rules = {
    { protocol = "tcp", direction = "ingress", port_range_min = 22, port_range_max = 22 },
    { protocol = "tcp", direction = "ingress", port_range_min = 443, port_range_max = 443 },
    { protocol = "icmp", direction = "ingress", port_range_min = NULL, port_range_max = NULL },
    { protocol = "all", direction = "egress", port_range_min = NULL, port_range_max = NULL },
  },
}

t.test("genesis: auth with either header, refused without", function()
  local a = account(genesis)
  local token = genesis.env("").GENESISCLOUD_TOKEN
  t.eq(a.call("GET", "/security-groups", nil, { authorization = "Bearer " .. token }), 200)
  t.eq(a.call("GET", "/security-groups", nil, { ["x-auth-token"] = token }), 200)
  local status, body = a.call("GET", "/security-groups", nil, {})
  t.eq(status, 401)
  genesis_error(body, "missing")
  status, body = a.call("GET", "/security-groups", nil, { authorization = "Bearer nope" })
  t.eq(status, 401)
  genesis_error(body, "wrong")
end)

t.test("genesis: seeded list, pagination and its limits", function()
  local a = account(genesis)
  local status, body = a.call("GET", "/security-groups")
  t.eq(status, 200)
  t.eq(keys(body), "page,per_page,security_groups,total_count")
  t.eq({ body.total_count, body.page, body.per_page }, { 1, 1, 50 })
  local g = body.security_groups[1]
  t.eq(keys(g), "created_at,description,id,is_internal,name,region,rules,status,updated_at")
  t.eq(g.status, "created")
  t.ok(g.created_at:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"), g.created_at)
  for _ = 1, 2 do t.eq(a.call("POST", "/security-groups", GENESIS_EXAMPLE), 201) end
  status, body = a.call("GET", "/security-groups?page=2&per_page=2")
  t.eq({ status, #body.security_groups, body.total_count, body.page, body.per_page }, { 200, 1, 3, 2, 2 })
  local _, _, _, wire = a.call("GET", "/security-groups?page=9")
  t.ok(wire:find('"security_groups":[]', 1, true), wire)
  t.eq(a.call("GET", "/security-groups?page=99999999999999999"), 200)
  for _, q in ipairs({ "per_page=101", "per_page=0", "page=0", "page=x", "per_page=2.5" }) do
    status, body = a.call("GET", "/security-groups?" .. q)
    t.eq(status, 400, q)
    genesis_error(body, q)
  end
end)

t.test("genesis: create replays the reference example, creating then created", function()
  local a = account(genesis)
  local status, body, _, wire = a.call("POST", "/security-groups", GENESIS_EXAMPLE)
  t.eq(status, 201)
  local g = body.security_group
  t.eq({ g.name, g.description, g.region, g.status, g.is_internal },
    { "allow-ssh-https", "managed by tool", "NORD-NO-KRS-1", "creating", false })
  t.eq(g.rules, GENESIS_EXAMPLE.rules)
  t.ok(wire:find('"port_range_max":null', 1, true), "null ports are on the wire")
  t.ok(g.id:match("^%x+%-%x+%-%x+%-%x+%-%x+$"), g.id)
  a.ctx.tick(4)
  t.eq(select(2, a.call("GET", "/security-groups/" .. g.id)).security_group.status, "creating")
  a.ctx.tick(1)
  t.eq(select(2, a.call("GET", "/security-groups/" .. g.id)).security_group.status, "created")
end)

t.test("genesis: a task that fails ends in error", function()
  local a = account(genesis, { task_error_rate = 1 })
  local _, body = a.call("POST", "/security-groups", GENESIS_EXAMPLE)
  a.ctx.tick(5)
  t.eq(select(2, a.call("GET", "/security-groups/" .. body.security_group.id)).security_group.status, "error")
end)

t.test("genesis: create validation", function()
  local a = account(genesis)
  local rule = { protocol = "tcp", direction = "ingress", port_range_min = 22, port_range_max = 22 }
  local function with_rule(patch)
    local r = {}
    for k, v in pairs(rule) do r[k] = v end
    for k, v in pairs(patch) do r[k] = v end
    return { rules = { r } }
  end
  local base = { name = "x", region = "NORD-NO-KRS-1", rules = { rule } }
  refuses_all(a.call, "POST", "/security-groups", base, {
    ["reserved default"] = { name = "default" }, ["reserved standard"] = { name = "standard" },
    ["no name"] = { name = "DROP" }, ["empty name"] = { name = "" }, ["name number"] = { name = 5 },
    ["long name"] = { name = ("n"):rep(256) }, ["no region"] = { region = "DROP" },
    ["bad region"] = { region = "ARC-IS-HAF-1" }, ["no rules"] = { rules = "DROP" },
    ["rules object"] = { rules = { a = 1 } }, ["unknown field"] = { color = "red" },
    ["cidr"] = with_rule({ remote_ip_prefix = "10.0.0.0/8" }),
    ["bad protocol"] = with_rule({ protocol = "gre" }), ["no direction"] = with_rule({ direction = "DROP" }),
    ["port string"] = with_rule({ port_range_min = "22" }), ["port 0"] = with_rule({ port_range_min = 0 }),
    ["port 65536"] = with_rule({ port_range_max = 65536 }), ["port float"] = with_rule({ port_range_min = 2.5 }),
    ["min > max"] = with_rule({ port_range_min = 80, port_range_max = 22 }),
    ["one port"] = with_rule({ port_range_max = NULL }),
    ["icmp ports"] = with_rule({ protocol = "icmp" }), ["all ports"] = with_rule({ protocol = "all" }),
    ["rule not object"] = { rules = { "tcp/22" } },
  }, genesis_error)
  local status, body = a.call("POST", "/security-groups",
    { name = "x", region = "NORD-NO-KRS-1", rules = with_rule({ cidr = "1.2.3.4/32" }).rules })
  t.eq(status, 400)
  t.ok(body.message:find("no source CIDR", 1, true), body.message)
  for _, raw in ipairs({ "[1,2]", '"text"', "null", "42", "not json" }) do
    status, body = a.call("POST", "/security-groups", raw)
    t.eq(status, 400, raw)
    genesis_error(body, raw)
  end
end)

t.test("genesis: PATCH replaces the rule list, updating then created", function()
  local a = account(genesis)
  local _, body = a.call("POST", "/security-groups", GENESIS_EXAMPLE)
  local id = body.security_group.id
  a.ctx.tick(10)
  local new_rules = { { protocol = "tcp", direction = "ingress", port_range_min = 22, port_range_max = 22 } }
  local status
  status, body = a.call("PATCH", "/security-groups/" .. id,
    { name = "allow-ssh-https", description = "managed by tool", rules = new_rules })
  t.eq(status, 200)
  t.eq(body.security_group.rules, new_rules)
  t.eq(body.security_group.status, "updating")
  t.ok(body.security_group.updated_at > body.security_group.created_at, "updated_at moved")
  a.ctx.tick(5)
  t.eq(select(2, a.call("GET", "/security-groups/" .. id)).security_group.status, "created")
  -- name only: rules stay
  _, body = a.call("PATCH", "/security-groups/" .. id, { name = "renamed" })
  t.eq({ body.security_group.name, #body.security_group.rules }, { "renamed", 1 })
  for what, patch in pairs({ region = { region = "EUC-DE-MUC-1" }, reserved = { name = "standard" },
    rules = { rules = { { protocol = "tcp" } } } }) do
    status, body = a.call("PATCH", "/security-groups/" .. id, patch)
    t.eq(status, 400, what)
    genesis_error(body, what)
  end
  t.eq(a.call("PATCH", "/security-groups/nope", { name = "x" }), 404)
  t.eq(a.call("PUT", "/security-groups/" .. id, { name = "x" }), 405)
end)

t.test("genesis: DELETE is 204, the group reads deleting, then 404", function()
  local a = account(genesis)
  local _, body = a.call("POST", "/security-groups", GENESIS_EXAMPLE)
  local id = body.security_group.id
  local status, resp, _, wire = a.call("DELETE", "/security-groups/" .. id)
  t.eq({ status, resp, wire }, { 204, "", "" })
  t.eq(select(2, a.call("GET", "/security-groups/" .. id)).security_group.status, "deleting")
  a.ctx.tick(5)
  status, resp = a.call("GET", "/security-groups/" .. id)
  t.eq(status, 404)
  genesis_error(resp, "gone")
  t.eq(select(2, a.call("GET", "/security-groups")).total_count, 1)
  t.eq(a.call("DELETE", "/security-groups/" .. id), 404)
end)

t.test("genesis: unknown routes and methods", function()
  local a = account(genesis)
  local status, body = a.call("GET", "/volumes")
  t.eq({ status, body.code, body.message }, { 404, "2001", "Invalid route" })
  local hdrs
  status, body, hdrs = a.call("DELETE", "/security-groups")
  t.eq({ status, hdrs.Allow }, { 405, "GET, POST" })
  genesis_error(body, "405")
  genesis_error(genesis.error_body(503, "injected"), "error_body")
end)

t.test("genesis: instance security groups: list, attach, detach, replace", function()
  local a = account(genesis)
  local status, body = a.call("GET", "/instances")
  t.eq({ status, body.total_count }, { 200, 1 })
  local inst = body.instances[1]
  local seeded = select(2, a.call("GET", "/security-groups")).security_groups[1]
  t.eq(inst.security_groups, { { id = seeded.id, name = seeded.name } })
  local _, created = a.call("POST", "/security-groups", GENESIS_EXAMPLE)
  local id = created.security_group.id
  local path = "/instances/" .. inst.id
  status, body = a.call("PATCH", path, { security_groups = { attach = id } })
  t.eq(status, 200)
  t.eq(#body.instance.security_groups, 2)
  status, body = a.call("PATCH", path, { security_groups = { detach = seeded.id } })
  t.eq({ status, body.instance.security_groups }, { 200, { { id = id, name = "allow-ssh-https" } } })
  status, body = a.call("PATCH", path, { security_groups = { seeded.id, id } })
  t.eq({ status, #body.instance.security_groups }, { 200, 2 })
  t.eq(select(2, a.call("GET", path)).instance.security_groups[1].id, seeded.id)
  local _, other = a.call("POST", "/security-groups",
    { name = "far", region = "EUC-DE-MUC-1", rules = {} })
  for what, patch in pairs({
    ["other region"] = { security_groups = { attach = other.security_group.id } },
    ["unknown group"] = { security_groups = { "nope" } },
    ["both"] = { security_groups = { attach = id, detach = id } },
    ["not attached"] = { security_groups = { detach = "nope" } },
    ["bad shape"] = { security_groups = "x" }, ["unknown field"] = { flavor = "big" },
  }) do
    status, body = a.call("PATCH", path, patch)
    t.eq(status, 400, what)
    genesis_error(body, what)
  end
  -- a deleted group disappears from the instance once the delete completes
  a.call("DELETE", "/security-groups/" .. id)
  a.ctx.tick(5)
  t.eq(#select(2, a.call("GET", path)).instance.security_groups, 1)
  t.eq(a.call("GET", "/instances/nope"), 404)
end)

------------------------------------------------------------------------------------------------
-- Barrack

local function barrack_error(resp, what)
  t.eq(keys(resp), "message,request_id,success", what)
  t.eq(resp.success, false, what)
end

local BARRACK_RULE = { -- BRK-SEED request example
  direction = "ingress", protocol = "tcp", ethertype = "IPv4", remote_ip_prefix = "203.0.113.0/24",
  port_range_min = 3306, port_range_max = 3306,
}

t.test("barrack: add instance security rule replays the vendor example", function()
  local a = account(barrack)
  local status, body = a.call("POST", "/instances/BRK-100001A/security-rules/", BARRACK_RULE)
  t.eq(status, 200)
  t.eq(keys(body), "instance_id,message,request_id,security_rule,success,tier")
  t.eq({ body.success, body.message, body.instance_id, body.tier },
    { true, "Security rule added successfully", "BRK-100001A", "legacy" })
  t.ok(body.request_id:match("^[a-z0-9]+$") and #body.request_id == 8, body.request_id)
  local r = body.security_rule
  t.ok(type(r.id) == "string" and r.id:match("^sg%-rule%-%d+$"), r.id)
  r.id = nil
  t.eq(r, BARRACK_RULE)
end)

t.test("barrack: rules take time to become active", function()
  local a = account(barrack, { task_duration = 60 })
  local _, body = a.call("POST", "/instances/BRK-100001A/security-rules/", BARRACK_RULE)
  local id = body.security_rule.id
  local function status_of()
    for _, r in ipairs(select(2, a.call("GET", "/instances/BRK-100001A/")).instance.security_rules) do
      if r.id == id then return r.status end
    end
  end
  t.eq(status_of(), "CREATING")
  a.ctx.tick(60)
  t.eq(status_of(), "ACTIVE")
  local status
  status, body = a.call("DELETE", "/instances/BRK-100001A/security-rules/" .. id .. "/")
  t.eq({ status, body.success, body.message }, { 200, true, "Security rule removed successfully" })
  t.eq(status_of(), nil)
  status, body = a.call("DELETE", "/instances/BRK-100001A/security-rules/" .. id .. "/")
  t.eq(status, 404)
  barrack_error(body, "again")
end)

t.test("barrack: instance rule refusals", function()
  local a = account(barrack)
  local function refused(status, path, body, needle)
    local s, resp = a.call("POST", path, body)
    t.eq(s, status, needle)
    barrack_error(resp, needle)
    t.ok(resp.message:find(needle, 1, true), resp.message)
  end
  refused(400, "/instances/BRK-100002B/security-rules/", BARRACK_RULE, "RUNNING")
  refused(400, "/instances/BRK-100003C/security-rules/", BARRACK_RULE, "legacy")
  refused(404, "/instances/BRK-999999Z/security-rules/", BARRACK_RULE, "not found")
  t.eq(a.call("POST", "/instances/BRK-100001A/security-rules/", BARRACK_RULE), 200)
  refused(400, "/instances/BRK-100001A/security-rules/", BARRACK_RULE, "already exists")
  refuses_all(a.call, "POST", "/instances/BRK-100001A/security-rules/", BARRACK_RULE, {
    ["bad direction"] = { direction = "in" }, ["bad protocol"] = { protocol = "gre" },
    ["no ethertype"] = { ethertype = "DROP" }, ["no prefix"] = { remote_ip_prefix = "DROP" },
    ["placeholder prefix"] = { remote_ip_prefix = "string" },
    ["v6 prefix on v4"] = { remote_ip_prefix = "2001:db8::/32" },
    ["one port"] = { port_range_max = "DROP" }, ["port string"] = { port_range_min = "1" },
    ["port 0"] = { port_range_min = 0 }, ["min > max"] = { port_range_min = 4000 },
    ["icmp ports"] = { protocol = "icmp" }, ["unknown"] = { description = "x" },
  }, barrack_error)
  refused(400, "/instances/BRK-100001A/security-rules/", "[1]", "JSON object")
end)

t.test("barrack: auth, trailing slash, unknown routes", function()
  local a = account(barrack)
  local status, body = a.call("GET", "/firewalls/", nil, {})
  t.eq(status, 401)
  barrack_error(body, "missing")
  status = a.call("GET", "/firewalls/", nil, { ["x-api-key"] = barrack.env("").BARRACK_API_KEY })
  t.eq(status, 200)
  t.eq(a.call("GET", "/firewalls/", nil, { authorization = "Bearer wrong" }), 401)
  status, body = a.call("POST", "/instances/BRK-100001A/security-rules", BARRACK_RULE)
  t.eq(status, 404)
  t.ok(body.message:find("end with a slash", 1, true), body.message)
  t.eq(a.call("GET", "/balance/"), 404)
  t.eq(a.call("PUT", "/firewalls/1/"), 405)
  barrack_error(barrack.error_body(429, "slow down"), "error_body")
end)

t.test("barrack: firewalls lifecycle", function()
  local a = account(barrack)
  local status, body = a.call("GET", "/firewalls/")
  t.eq({ status, #body.firewalls, body.pagination.count }, { 200, 1, 1 })
  t.eq(body.firewalls[1].attachments[1].instance.instance_id, "BRK-100003C")
  status, body = a.call("GET", "/firewalls/protocols/")
  t.eq({ status, body.protocols }, { 200, { "tcp", "udp", "icmp" } })
  status, body = a.call("POST", "/firewalls/", { name = "web", description = "d", region = "NORWAY-1" })
  t.eq(status, 200)
  local fw = body.firewall
  t.eq({ fw.name, fw.region, #fw.rules, #fw.attachments }, { "web", "NORWAY-1", 0, 0 })
  local path = string.format("/firewalls/%d/", fw.id)
  local _, _, _, wire = a.call("GET", path)
  t.ok(wire:find('"rules":[]', 1, true), wire)
  status, body = a.call("POST", path .. "firewall-rules/", BARRACK_RULE)
  t.eq({ status, body.firewall_rule.status, body.firewall_id }, { 200, "CREATING", fw.id })
  local rule_path = string.format("%sfirewall-rules/%d/", path, body.firewall_rule.id)
  status, body = a.call("POST", path .. "firewall-rules/", BARRACK_RULE)
  t.eq(status, 409)
  barrack_error(body, "duplicate")
  status, body = a.call("POST", path .. "update-attachments/", { instance_ids = { "BRK-100003C" } })
  t.eq({ status, body.firewall.attachments[1].status }, { 200, "CREATING" })
  t.eq(select(2, a.call("GET", "/instances/BRK-100003C/firewalls/")).firewalls[2].id, fw.id)
  status = a.call("POST", path .. "update-attachments/", { instance_ids = { "BRK-100001A" } })
  t.eq(status, 400) -- legacy instances use instance security rules
  t.eq(a.call("POST", path .. "update-attachments/", { instance_ids = { "BRK-0" } }), 404)
  t.eq(a.call("POST", path .. "update-attachments/", { instance_ids = "BRK-100003C" }), 400)
  status, body = a.call("DELETE", path)
  t.eq(status, 409)
  barrack_error(body, "attached")
  t.eq(a.call("POST", path .. "update-attachments/", { instance_ids = {} }), 200)
  t.eq(#select(2, a.call("GET", "/instances/BRK-100003C/firewalls/")).firewalls, 1)
  t.eq(a.call("DELETE", rule_path), 200)
  t.eq(a.call("DELETE", rule_path), 404)
  t.eq(a.call("DELETE", path), 200)
  t.eq(a.call("GET", path), 404)
  t.eq(a.call("POST", "/firewalls/", { name = "x", region = "MARS-1" }), 400)
  t.eq(a.call("POST", "/firewalls/", { name = "x", region = "US-1", rules = {} }), 400)
  t.eq(a.call("GET", "/firewalls/?page_size=101"), 400)
  t.eq(#select(2, a.call("GET", "/firewalls/available-instances/")).instances, 1)
end)

------------------------------------------------------------------------------------------------
-- HostUp

local function hostup_error(resp, what)
  t.eq(keys(resp), "code,error,message,requestId,timestamp", what)
end

local HOSTUP_RULE = { -- HU-SEED request example
  type = "in", action = "ACCEPT", proto = "tcp", dport = "443", source = "2001:db8::1/32",
  comment = "HTTPS Secure Web", enable = 1,
}

local function rules_of(a, vmid)
  return select(2, a.call("GET", "/vm/" .. (vmid or 10000) .. "/firewall")).data
end

t.test("hostup: POST replays the vendor example; the new rule is position 0", function()
  local a = account(hostup)
  local before = rules_of(a)
  local status, body = a.call("POST", "/vm/10000/firewall", HOSTUP_RULE)
  t.eq(status, 200)
  t.eq(keys(body), "data,requestId,success,timestamp")
  t.eq(body.success, true)
  t.ok(body.requestId:match("^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$"), body.requestId)
  t.ok(body.timestamp:match("^%d+%-%d+%-%d+T%d+:%d+:%d+%.%d%d%dZ$"), body.timestamp)
  t.eq(body.data, { success = true, rule = HOSTUP_RULE, message = "Firewall rule added successfully" })
  local after = rules_of(a)
  t.eq(#after, #before + 1)
  t.eq({ after[1].pos, after[1].dport, after[1].ipversion, after[1].comment }, { 0, "443", 6, "HTTPS Secure Web" })
  for i, r in ipairs(before) do
    t.eq({ after[i + 1].pos, after[i + 1].comment }, { r.pos + 1, r.comment }, "shifted")
  end
  t.ok(after[1].digest ~= before[1].digest and #after[1].digest == 40, "digest changes")
end)

t.test("hostup: list shape and an empty list", function()
  local a = account(hostup)
  local rules = rules_of(a)
  t.eq(keys(rules[1]), "action,comment,digest,dport,enable,ipversion,pos,proto,source,type")
  t.eq(rules[3].dport, nil) -- icmp: no dport, as Proxmox leaves unset options out
  local _, _, _, wire = a.call("GET", "/vm/10001/firewall")
  t.ok(wire:find('"data":[]', 1, true), wire)
end)

t.test("hostup: PUT and DELETE by ?pos=", function()
  local a = account(hostup)
  local changed = {}
  for k, v in pairs(HOSTUP_RULE) do changed[k] = v end
  changed.comment = "replaced"
  local status, body = a.call("PUT", "/vm/10000/firewall?pos=1", changed)
  t.eq({ status, body.data.pos, body.data.message, body.data.rule.comment },
    { 200, "1", "Firewall rule updated successfully", "replaced" })
  t.eq(rules_of(a)[2].comment, "replaced")
  status, body = a.call("DELETE", "/vm/10000/firewall?pos=0")
  t.eq({ status, body.data }, { 200, { success = true, pos = "0" } })
  local rules = rules_of(a)
  t.eq({ #rules, rules[1].comment, rules[1].pos }, { 2, "replaced", 0 })
  -- pos missing or malformed: 400; past the end: the documented 500
  for _, q in ipairs({ "", "?pos=", "?pos=-1", "?pos=x" }) do
    status, body = a.call("DELETE", "/vm/10000/firewall" .. q)
    t.eq(status, 400, q)
    hostup_error(body, q)
  end
  status, body = a.call("DELETE", "/vm/10000/firewall?pos=2")
  t.eq({ status, body.code, body.error, body.message },
    { 500, "INTERNAL_ERROR", "Internal Server Error", "Failed to delete firewall rule" })
  t.eq(a.call("PUT", "/vm/10000/firewall?pos=7", HOSTUP_RULE), 500)
end)

t.test("hostup: rule validation", function()
  local a = account(hostup)
  refuses_all(a.call, "POST", "/vm/10000/firewall", HOSTUP_RULE, {
    ["pos in body"] = { pos = 0 }, ["missing comment"] = { comment = "DROP" },
    ["bad type"] = { type = "forward" }, ["bad action"] = { action = "ALLOW" },
    ["bad proto"] = { proto = "gre" }, ["dport number"] = { dport = 443 },
    ["backwards"] = { dport = "2000:1000" }, ["port 65536"] = { dport = "65536" },
    ["too many ports"] = { dport = "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15:16" },
    ["name port"] = { dport = "https" }, ["icmp port"] = { proto = "icmp" },
    ["mixed"] = { source = "10.0.0.1,2001:db8::1" }, ["bad source"] = { source = "10.0.0.300" },
    ["empty source"] = { source = "" }, ["long source"] = { source = ("1.1.1.1,"):rep(70) .. "1.1.1.1" },
    ["enable 2"] = { enable = 2 }, ["enable bool"] = { enable = true },
    ["long comment"] = { comment = ("c"):rep(513) },
  }, hostup_error)
  local status, body = a.call("POST", "/vm/10000/firewall", (function()
    local b = {}
    for k, v in pairs(HOSTUP_RULE) do b[k] = v end
    b.pos = 0
    return b
  end)())
  t.eq({ status, body.message }, { 400, "Unknown option: pos" })
  for _, ok_body in ipairs({
    { dport = "1000:2000", source = "10.0.0.0/8" }, { dport = "80,443", source = "10.0.0.1-10.0.0.9" },
    { proto = "icmp", dport = "", source = "0.0.0.0/0" },
    { type = "out", action = "REJECT", proto = "udp", dport = "53", source = "198.51.100.0/24" },
  }) do
    local b = {}
    for k, v in pairs(HOSTUP_RULE) do b[k] = v end
    for k, v in pairs(ok_body) do b[k] = v end
    t.eq(a.call("POST", "/vm/10000/firewall", b), 200, cjson.encode(ok_body))
  end
end)

t.test("hostup: a panel-made rule keeps and lists the options the v1 body lacks; writes with one are refused", function()
  local a = account(hostup)
  a.state.vms[1].rules[1] = { type = "in", action = "ACCEPT", proto = "tcp", dport = "22",
    source = "198.51.100.10", comment = "", enable = 1, iface = "net1", log = "info", sport = "1024:65535" }
  a.state.vms[1].rules[3] = { type = "in", action = "ACCEPT", proto = "icmp", dport = "", source = "0.0.0.0/0",
    comment = "Ping", enable = 1, ["icmp-type"] = "echo-request" }
  local listed = rules_of(a)
  t.eq({ listed[1].iface, listed[1].log, listed[1].sport, listed[1].pos }, { "net1", "info", "1024:65535", 0 })
  t.eq({ listed[3]["icmp-type"], listed[3].dport }, { "echo-request", nil })
  t.eq(listed[2].iface, nil)
  for _, extra in ipairs({ { iface = "net1" }, { log = "info" }, { ["icmp-type"] = "echo-request" }, { dest = "10.0.0.1" } }) do
    local b = {}
    for k, v in pairs(HOSTUP_RULE) do b[k] = v end
    for k, v in pairs(extra) do b[k] = v end
    local status, body = a.call("POST", "/vm/10000/firewall", b)
    t.eq({ status, body.message }, { 400, "Unknown option: " .. next(extra) })
  end
end)

t.test("hostup: a panel-made rule without a protocol is held and listed; writes without one are refused", function()
  local a = account(hostup)
  a.state.vms[1].rules[2] = { type = "in", action = "DROP", source = "203.0.113.0/24", enable = 1 }
  a.state.vms[1].rules[3] = { type = "in", action = "DROP", proto = "", dport = "", source = "192.0.2.0/24",
    comment = "", enable = 1 }
  local status, body = a.call("GET", "/vm/10000/firewall")
  t.eq(status, 200)
  local listed = body.data
  t.eq(#listed, 3)
  for i = 2, 3 do
    t.eq({ listed[i].proto, listed[i].dport, listed[i].pos, #listed[i].digest }, { nil, nil, i - 1, 40 })
  end
  t.eq(listed[2].source, "203.0.113.0/24")
  local b = {}
  for k, v in pairs(HOSTUP_RULE) do b[k] = v end
  b.proto = nil
  status, body = a.call("PUT", "/vm/10000/firewall?pos=1", b)
  t.eq({ status, body.message }, { 400, "proto is required" })
  b.proto = ""
  status, body = a.call("POST", "/vm/10000/firewall", b)
  t.eq({ status, body.message }, { 400, "proto must be one of: icmp, tcp, udp" })
  t.eq(#rules_of(a), 3)
end)

t.test("hostup: the rule limit", function()
  local a = account(hostup)
  local status, body
  local n = #rules_of(a)
  for i = n + 1, 101 do
    local b = {}
    for k, v in pairs(HOSTUP_RULE) do b[k] = v end
    b.dport = tostring(i)
    status, body = a.call("POST", "/vm/10000/firewall", b)
  end
  t.eq({ status, body.code }, { 400, "RULE_LIMIT_REACHED" })
  t.eq(#rules_of(a), 100)
end)

t.test("hostup: options", function()
  local a = account(hostup)
  local status, body = a.call("PUT", "/vm/10001/firewall/options", { enable = 1, policy_in = "DROP" })
  t.eq({ status, body.data }, { 200, { success = true, message = "Firewall options updated successfully" } })
  for what, b in pairs({ empty = {}, policy = { policy_in = "REJECT" }, enable = { enable = "1" },
    unknown = { policy_out = "DROP" } }) do
    status, body = a.call("PUT", "/vm/10001/firewall/options", b)
    t.eq(status, 400, what)
    hostup_error(body, what)
  end
  t.eq(a.call("GET", "/vm/10001/firewall/options"), 405)
end)

t.test("hostup: auth, unknown VM, unknown route", function()
  local a = account(hostup)
  local status, body = a.call("GET", "/vm/10000/firewall", nil, {})
  t.eq({ status, body.code, body.message, body.error },
    { 401, "UNAUTHORIZED", "Authentication required", "Unauthorized" })
  hostup_error(body, "401")
  t.eq(a.call("GET", "/vm/10000/firewall", nil, { ["x-api-key"] = "wrong" }), 401)
  t.eq(a.call("GET", "/vm/10000/firewall", nil, { authorization = "Bearer " .. hostup.env("").HOSTUP_API_KEY }), 200)
  status, body = a.call("GET", "/vm/424242/firewall")
  t.eq(status, 404)
  hostup_error(body, "vm")
  t.eq(a.call("GET", "/vm/abc/firewall"), 400)
  t.eq(a.call("GET", "/vm/0/firewall"), 400)
  t.eq(a.call("GET", "/dns/zones"), 404)
  t.eq(a.call("PATCH", "/vm/10000/firewall"), 405)
  t.eq(keys(hostup.error_body(429, "slow down")), "error,message,requestId,retryAfter")
  hostup_error(hostup.error_body(502, "injected"), "502")
end)

------------------------------------------------------------------------------------------------
-- All three: a state that went through a JSON dump and load keeps working.

t.test("all: state survives a JSON round trip", function()
  for _, mod in ipairs({ genesis, barrack, hostup }) do
    local a = account(mod)
    a.state = cjson.decode(sgsim.json.encode(a.state))
    if mod == genesis then
      t.eq(a.call("POST", "/security-groups", GENESIS_EXAMPLE), 201)
      t.eq(a.call("GET", "/instances"), 200)
    elseif mod == barrack then
      local status, body = a.call("POST", "/instances/BRK-100001A/security-rules/", BARRACK_RULE)
      t.eq(status, 200)
      t.ok(body.security_rule.id:match("^sg%-rule%-%d+$"), body.security_rule.id)
      t.eq(a.call("GET", "/firewalls/1/"), 200)
    else
      t.eq(a.call("POST", "/vm/10000/firewall", HOSTUP_RULE), 200)
      t.eq(a.call("DELETE", "/vm/10000/firewall?pos=3"), 200)
    end
  end
end)

t.test("the kill hook is refused unless the emulator was started with SGRUN_SIM_TEST_HOOKS=1", function()
  t.eq(os.getenv("SGRUN_SIM_TEST_HOOKS"), nil, "the library tests run without it")
  local core = assert(sgsim.new({ seed = 1 }))
  local status, body = core:request({ method = "PUT", uri = "/_sim/kill", headers = {},
    body = '{"pid": 99999, "writes": 1, "when": "before"}' })
  t.eq(status, 403)
  t.ok(body:find("SGRUN_SIM_TEST_HOOKS=1", 1, true), body)
end)

-- A state file (--state) or /_sim/load body of the wrong shape is refused once, at load, naming
-- the place; the emulator keeps its state, instead of a traceback on every request after it.
t.test("a loaded state of the wrong shape is refused at load, naming the place", function()
  local core = assert(sgsim.new({ seed = 1 }))
  local function get_genesis()
    return (core:request({ method = "GET", uri = "/genesis/compute/v1/security-groups",
      headers = AUTH.genesis }))
  end
  local cases = {
    { '{"providers":{"exoscale":{"groups":5}}}', "providers.exoscale.groups must be an object, not a number" },
    { '{"providers":{"exoscale":5}}', "providers.exoscale must be an object (that provider's state), not a number" },
    { '{"providers":{"genesis":{"groups":[5],"instances":[],"token":"x"}}}', "providers.genesis.groups[1] must be an object, not a number" },
    { '{"providers":{"genesis":{"groups":[{"name":{"a":1},"rules":[]}],"instances":[],"token":"x"}}}',
      "providers.genesis.groups[1].name must be a single value, not an object" },
    { '{"providers":{"genesis":{"groups":[{"rules":{"a":1}}],"instances":[],"token":"x"}}}',
      "providers.genesis.groups[1].rules must be a list, not an object" },
    { '{"providers":{"genesis":{"groups":[],"instances":[]}}}', "providers.genesis has no token" },
    { '{"providers":{"genesis":{"groups":[],"instances":[],"token":7}}}', "providers.genesis.token must be a string, not a number" },
    { '{"providers":{"barrack":{"api_key":"k","firewalls":[],"instances":[],"next_id":"x"}}}', "providers.barrack.next_id must be a number" },
    { '{"format":"sgrun.sim-state/9","providers":{}}', "unknown format sgrun.sim-state/9" },
    { '[]', 'expected {"providers"' },
    { "", "nothing in it: it is empty; give a state the emulator saved" },
  }
  for _, c in ipairs(cases) do
    local ok, err = core:load(c[1])
    t.eq(ok, nil, c[1])
    t.ok(tostring(err):find(c[2], 1, true), tostring(err))
    if c[1] ~= "" then t.ok(err:find("give a state the emulator saved", 1, true), err) end
    t.eq(get_genesis(), 200, "the emulator still answers from its own state")
  end
  -- what the emulator saves loads back, also after changes (a group made, a rule added)
  local function sent_as_json(auth)
    local h = { ["content-type"] = "application/json" }
    for k, v in pairs(auth) do h[k] = v end
    return h
  end
  t.eq(core:request({ method = "POST", uri = "/genesis/compute/v1/security-groups", headers = sent_as_json(AUTH.genesis),
    body = '{"name":"made","region":"NORD-NO-KRS-1","rules":[]}' }), 201)
  t.eq(core:request({ method = "POST", uri = "/barrack/api/firewalls/1/firewall-rules/", headers = sent_as_json(AUTH.barrack),
    body = '{"direction":"ingress","protocol":"udp","ethertype":"IPv6","remote_ip_prefix":"::/0"}' }), 200)
  local other = assert(sgsim.new({ seed = 2 }))
  t.eq({ other:load(core:dump()) }, { true })
  t.eq({ core:load(core:dump()) }, { true })
end)

t.run()
