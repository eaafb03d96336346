-- The Exoscale emulator over real HTTP: the endpoints and shapes of reference/exoscale.md §3-5
-- and seeds/003 (the vendor's security-group page), signature verification (§1), async
-- operations, and every refusal the reference lists.
local t = require "testlib"
local http = require "_sg.http"
local cjson = require "cjson"
local exo = require "_sg.exoscale"

local BASE = assert(os.getenv("SGRUN_SIM_URL"), "SGRUN_SIM_URL is not set (run through with_sim.sh)")
local URL = assert(os.getenv("SGRUN_EXOSCALE_URL"))
local KEY = assert(os.getenv("EXOSCALE_API_KEY"))
local SECRET = assert(os.getenv("EXOSCALE_API_SECRET"))
local PREFIX = URL:match("^https?://[^/]+(.*)$") -- "/exoscale/v2"
local TASK = 0.3 -- seconds of task duration set below

local function sleep(s) require("_sg.task").sleep(s) end

local function decode(body)
  if body == nil or body == "" then return nil end
  return cjson.decode(body)
end

---A signed request. opts: query (raw), body (string or table), sign_* overrides, headers.
local function call(method, path, opts)
  opts = opts or {}
  local body = opts.body
  if type(body) == "table" then body = cjson.encode(body) end
  local query = opts.query or ""
  local headers = { ["Content-Type"] = "application/json" }
  if not opts.unsigned then
    headers.Authorization = exo.sign { method = method, path = opts.sign_path or (PREFIX .. path),
      query = opts.sign_query or query, body = opts.sign_body or body or "", key = opts.key or KEY,
      secret = opts.secret or SECRET, expires = opts.expires }
  end
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  local r, err = http.request { method = method, url = URL .. path .. (query ~= "" and ("?" .. query) or ""),
    headers = headers, body = body, timeout = 10 }
  assert(r, err)
  r.json = decode(r.body)
  return r
end

local function control(method, path, body)
  local r = assert(http.request { method = method, url = BASE .. path,
    body = body and cjson.encode(body) or nil, headers = { ["Content-Type"] = "application/json" } })
  return r.status, decode(r.body)
end

local function group_by_name(name)
  local r = call("GET", "/security-group")
  for _, g in ipairs(r.json["security-groups"]) do
    if g.name == name then return g end
  end
end

---Polls an operation until it leaves pending.
local function wait_op(op)
  for _ = 1, 100 do
    local r = call("GET", "/operation/" .. op.id)
    t.eq(r.status, 200, "get-operation")
    if r.json.state ~= "pending" then return r.json end
    sleep(0.05)
  end
  error("operation still pending")
end

local function fresh()
  t.eq((control("POST", "/_sim/reset")), 200)
  t.eq((control("PUT", "/_sim/knobs", { task_duration_ms = TASK * 1000, latency_ms = 0, jitter_ms = 0,
    error_rate = 0, drop_rate = 0, task_error_rate = 0, rate_limit = 0 })), 200)
end

local function is_uuid(s)
  return type(s) == "string" and s:match("^%x+%-%x+%-%x+%-%x+%-%x+$") ~= nil
end

local function expect_error(r, status, needle)
  t.eq(r.status, status, "status of " .. tostring(r.body))
  t.ok(type(r.json) == "table" and type(r.json.message) == "string", "error body {message}: " .. tostring(r.body))
  if needle then t.ok(r.json.message:find(needle, 1, true), "message " .. r.json.message .. " mentions " .. needle) end
end

t.test("list-security-groups: {security-groups: [...]} with the seeded demo group web", function()
  fresh()
  local r = call("GET", "/security-group")
  t.eq(r.status, 200)
  t.eq(r.headers["content-type"], "application/json")
  local web = group_by_name("web")
  t.ok(web, "web is seeded")
  t.ok(is_uuid(web.id))
  t.eq(type(web["external-sources"]), "table")
  local ports = {}
  for _, rule in ipairs(web.rules) do
    t.ok(is_uuid(rule.id))
    t.ok(rule["flow-direction"] == "ingress" or rule["flow-direction"] == "egress")
    if rule["start-port"] then ports[rule["start-port"]] = true end
  end
  t.ok(ports[22] and ports[80] and ports[443], "22, 80 and 443 are open")
end)

t.test("get-security-group: the shape of seeds/003", function()
  local web = group_by_name("web")
  local r = call("GET", "/security-group/" .. web.id)
  t.eq(r.status, 200)
  for _, k in ipairs({ "id", "name", "description", "external-sources", "rules" }) do
    t.ok(r.json[k] ~= nil, "field " .. k)
  end
  local db = group_by_name("db")
  local ref = db.rules[1]["security-group"]
  t.eq(ref, { id = web.id, name = "web", visibility = "private" })
  local ping
  for _, rule in ipairs(web.rules) do
    if rule.protocol == "icmp" then ping = rule end
  end
  t.eq(ping.icmp, { type = 8, code = 0 }, "icmp type 0/code 0 are kept, not dropped")
  expect_error(call("GET", "/security-group/00000000-0000-4000-8000-000000000000"), 404)
end)

t.test("visibility=public lists the Exoscale public groups (a signed query)", function()
  local r = call("GET", "/security-group", { query = "visibility=public" })
  t.eq(r.status, 200)
  local names = {}
  for _, g in ipairs(r.json["security-groups"]) do names[g.name] = true end
  t.ok(names["public-nlb-healthcheck-sources"] and names["public-sos-endpoints"])
  expect_error(call("GET", "/security-group", { query = "visibility=everyone" }), 400)
end)

t.test("signature: missing, unknown key, wrong secret, expired are 403", function()
  expect_error(call("GET", "/security-group", { unsigned = true }), 403)
  expect_error(call("GET", "/security-group", { unsigned = true, headers = { Authorization = "Bearer x" } }), 403)
  expect_error(call("GET", "/security-group", { key = "EXOnotakey000000000000000" }), 403)
  expect_error(call("GET", "/security-group", { secret = SECRET .. "x" }), 403, "Invalid request signature")
  expect_error(call("GET", "/security-group", { expires = os.time() - 5 }), 403, "expired")
  t.eq(call("GET", "/security-group", { expires = os.time() + 60 }).status, 200)
end)

t.test("signature: the wire path with its prefix is what is signed", function()
  -- signed as /v2/security-group (the vendor's path) but sent under /exoscale/v2
  expect_error(call("GET", "/security-group", { sign_path = "/v2/security-group" }), 403)
  expect_error(call("GET", "/security-group", { sign_path = "/security-group" }), 403)
end)

t.test("signature: a tampered body or query is refused", function()
  local web = group_by_name("web")
  local signed = '{"cidr":"192.0.2.0/24"}'
  expect_error(call("PUT", "/security-group/" .. web.id .. ":add-source",
    { body = '{"cidr":"198.51.100.0/24"}', sign_body = signed }), 403, "Invalid request signature")
  -- the same bytes with different JSON spacing are a different body
  expect_error(call("PUT", "/security-group/" .. web.id .. ":add-source",
    { body = '{"cidr": "192.0.2.0/24"}', sign_body = signed }), 403)
  expect_error(call("GET", "/security-group", { query = "visibility=public", sign_query = "visibility=private" }), 403)
  expect_error(call("GET", "/security-group", { query = "visibility=public", sign_query = "" }), 403)
  -- query values are signed decoded: %2F and / are the same value
  t.eq(call("GET", "/security-group", { query = "visibility=%70rivate", sign_query = "visibility=private" }).status, 200)
end)

t.test("create-security-group: an operation pending for the task duration, then success", function()
  fresh()
  local r = call("POST", "/security-group", { body = { name = "api", description = "API servers" } })
  t.eq(r.status, 200)
  local op = r.json
  t.ok(is_uuid(op.id))
  t.eq(op.state, "pending")
  t.ok(is_uuid(op.reference.id), "reference.id is filled at creation (TFP reads it)")
  t.eq(op.reference.link, "/v2/security-group/" .. op.reference.id)
  t.eq(op.reference.command, "get-security-group")
  t.eq(call("GET", "/operation/" .. op.id).json.state, "pending")
  t.eq(group_by_name("api"), nil, "not there before the operation completes")
  local done = wait_op(op)
  t.eq(done.state, "success")
  t.eq(done.reference.id, op.reference.id)
  local g = call("GET", "/security-group/" .. op.reference.id).json
  t.eq(g.name, "api")
  t.eq(g.description, "API servers")
  t.eq(#g.rules, 0)
end)

t.test("create-security-group: a name already in use is refused, also while pending", function()
  expect_error(call("POST", "/security-group", { body = { name = "web" } }), 409, "Security Group name is already in use")
  local op = call("POST", "/security-group", { body = { name = "twice" } }).json
  expect_error(call("POST", "/security-group", { body = { name = "twice" } }), 409, "already in use")
  wait_op(op)
end)

t.test("create-security-group: validation", function()
  expect_error(call("POST", "/security-group", { body = {} }), 400, "name")
  expect_error(call("POST", "/security-group", { body = { name = "" } }), 400)
  expect_error(call("POST", "/security-group", { body = { name = string.rep("n", 256) } }), 400)
  expect_error(call("POST", "/security-group", { body = { name = 42 } }), 400)
  expect_error(call("POST", "/security-group", { body = { name = "x", description = string.rep("d", 256) } }), 400)
  expect_error(call("POST", "/security-group", { body = { name = "x", colour = "red" } }), 400, "unknown field")
  expect_error(call("POST", "/security-group", { body = '{"name": "x"' }), 400, "malformed JSON")
  expect_error(call("POST", "/security-group", { body = "[1,2]" }), 400)
  -- maxLength counts characters: 200 two-byte ones are a valid description
  local r = call("POST", "/security-group", { body = { name = "utf8-group", description = string.rep("é", 200) } })
  t.eq(r.status, 200, r.body)
  expect_error(call("POST", "/security-group", { body = { name = "y", description = string.rep("é", 256) } }), 400)
end)

t.test("add-rule-to-security-group: reference.id is the group, the rule appears on success", function()
  fresh()
  local web = group_by_name("web")
  local body = '{"flow-direction":"ingress","protocol":"tcp","network":"10.0.0.0/8","start-port":8080,"end-port":8081,"description":"app"}'
  local r = call("POST", "/security-group/" .. web.id .. "/rules", { body = body })
  t.eq(r.status, 200)
  t.eq(r.json.state, "pending")
  t.eq(r.json.reference.id, web.id, "reference.id is the SG id, not the rule id")
  t.eq(#call("GET", "/security-group/" .. web.id).json.rules, #web.rules, "not yet applied")
  t.eq(wait_op(r.json).state, "success")
  local after = call("GET", "/security-group/" .. web.id).json
  t.eq(#after.rules, #web.rules + 1)
  local added
  for _, rule in ipairs(after.rules) do
    if rule["start-port"] == 8080 then added = rule end
  end
  t.ok(is_uuid(added.id))
  added.id = nil
  t.eq(added, { ["flow-direction"] = "ingress", protocol = "tcp", network = "10.0.0.0/8",
    ["start-port"] = 8080, ["end-port"] = 8081, description = "app" })
end)

t.test("add-rule: the request bodies of the reference's signature table are accepted", function()
  local g = call("POST", "/security-group", { body = '{"name":"my-security-group"}' })
  local sg = wait_op(g.json).reference.id
  for _, body in ipairs({
    '{"flow-direction":"ingress","protocol":"tcp","network":"0.0.0.0/0","start-port":22,"end-port":22,"description":"ssh"}',
    '{"flow-direction":"ingress","icmp":{"code":0,"type":8},"network":"0.0.0.0/0","protocol":"icmp"}',
    '{"flow-direction":"ingress","protocol":"tcp","security-group":{"name":"public-nlb-healthcheck-sources","visibility":"public"},"start-port":80,"end-port":80}',
  }) do
    local r = call("POST", "/security-group/" .. sg .. "/rules", { body = body })
    t.eq(r.status, 200, body .. " -> " .. r.body)
    t.eq(wait_op(r.json).state, "success")
  end
  local rules = call("GET", "/security-group/" .. sg).json.rules
  t.eq(#rules, 3)
  t.eq(rules[3]["security-group"].name, "public-nlb-healthcheck-sources")
  t.eq(rules[3]["security-group"].visibility, "public")
end)

-- Exoscale reports these refusals in the operation, not in the HTTP answer: a client that does
-- not wait for the operation never sees them.
local function expect_failed_op(r, needle)
  t.eq(r.status, 200, r.body)
  local op = wait_op(r.json)
  t.eq({ op.state, op.reason }, { "failure", "conflict" })
  if needle then t.ok(tostring(op.message):find(needle, 1, true), tostring(op.message)) end
end

t.test("add-rule: a duplicate rule is accepted and its operation fails, also while the first is pending", function()
  local web = group_by_name("web")
  local n = #web.rules
  expect_failed_op(call("POST", "/security-group/" .. web.id .. "/rules", { body = { ["flow-direction"] = "ingress",
    protocol = "tcp", network = "0.0.0.0/0", ["start-port"] = 22, ["end-port"] = 22, description = "other text" } }),
    "No new rule would be created")
  local body = { ["flow-direction"] = "egress", protocol = "udp", network = "::/0", ["start-port"] = 53, ["end-port"] = 53 }
  local first = call("POST", "/security-group/" .. web.id .. "/rules", { body = body })
  expect_failed_op(call("POST", "/security-group/" .. web.id .. "/rules", { body = body }))
  t.eq(wait_op(first.json).state, "success")
  t.eq(#group_by_name("web").rules, n + 1)
end)

t.test("add-rule: validation of each field (§3.3)", function()
  local web = group_by_name("web")
  local path = "/security-group/" .. web.id .. "/rules"
  local function rule(over)
    local r = { ["flow-direction"] = "ingress", protocol = "tcp", network = "0.0.0.0/0", ["start-port"] = 1000, ["end-port"] = 1000 }
    for k, v in pairs(over) do if v == false then r[k] = nil else r[k] = v end end
    return r
  end
  local cases = {
    { rule { ["flow-direction"] = false }, "flow-direction" },
    { rule { ["flow-direction"] = "inbound" }, "flow-direction" },
    { rule { protocol = false }, "protocol" },
    { rule { protocol = "sctp" }, "protocol" },
    { rule { protocol = "TCP" }, "protocol" },
    { rule { ["start-port"] = false, ["end-port"] = false }, "port" },
    { rule { ["start-port"] = 0 }, "start-port" },
    { rule { ["end-port"] = 65536 }, "end-port" },
    { rule { ["start-port"] = 2000, ["end-port"] = 1000 }, "end-port" },
    { rule { ["start-port"] = "22" }, "start-port" },
    { rule { network = "10.0.0.0/33" }, "network" },
    { rule { network = "example.com" }, "network" },
    { rule { network = false }, "network" },
    { rule { ["security-group"] = { id = web.id } }, "exactly one" },
    { rule { network = false, ["security-group"] = { id = "00000000-0000-4000-8000-000000000000" } }, "not found", 404 },
    { rule { protocol = "esp" }, "ports" },
    { rule { protocol = "icmp", ["start-port"] = false, ["end-port"] = false, icmp = { type = 255, code = 0 } }, "icmp" },
    { rule { icmp = { type = 8, code = 0 } }, "icmp" },
    { rule { description = string.rep("d", 256) }, "description" },
    { rule { priority = 1 }, "unknown field" },
  }
  for i, c in ipairs(cases) do
    local r = call("POST", path, { body = c[1] })
    t.eq(r.status, c[3] or 400, "case " .. i .. ": " .. r.body)
    t.ok(r.json.message:find(c[2], 1, true), "case " .. i .. " mentions " .. c[2] .. ": " .. r.json.message)
  end
  t.eq(call("POST", path, { body = "not json" }).status, 400)
end)

t.test("delete-rule-from-security-group: operation, then gone; unknown rule 404", function()
  fresh()
  local web = group_by_name("web")
  local victim = web.rules[1]
  local r = call("DELETE", "/security-group/" .. web.id .. "/rules/" .. victim.id)
  t.eq(r.status, 200)
  t.eq(r.json.reference.id, web.id)
  t.eq(wait_op(r.json).state, "success")
  local after = call("GET", "/security-group/" .. web.id).json
  t.eq(#after.rules, #web.rules - 1)
  for _, rule in ipairs(after.rules) do t.ok(rule.id ~= victim.id) end
  expect_error(call("DELETE", "/security-group/" .. web.id .. "/rules/" .. victim.id), 404)
end)

t.test("add-source / remove-source (seeds/003 bodies)", function()
  local web = group_by_name("web")
  local r = call("PUT", "/security-group/" .. web.id .. ":add-source", { body = '{"cidr":"192.0.2.0/24"}' })
  t.eq(r.status, 200)
  t.eq(wait_op(r.json).state, "success")
  t.eq(call("GET", "/security-group/" .. web.id).json["external-sources"], { "192.0.2.0/24" })
  expect_failed_op(call("PUT", "/security-group/" .. web.id .. ":add-source", { body = '{"cidr":"192.0.2.0/24"}' }))
  expect_error(call("PUT", "/security-group/" .. web.id .. ":add-source", { body = '{"cidr":"192.0.2.0"}' }), 400)
  expect_error(call("PUT", "/security-group/" .. web.id .. ":add-source", { body = '{}' }), 400, "cidr")
  r = call("PUT", "/security-group/" .. web.id .. ":remove-source", { body = '{"cidr":"192.0.2.0/24"}' })
  t.eq(wait_op(r.json).state, "success")
  t.eq(#call("GET", "/security-group/" .. web.id).json["external-sources"], 0)
  expect_failed_op(call("PUT", "/security-group/" .. web.id .. ":remove-source", { body = '{"cidr":"192.0.2.0/24"}' }))
  expect_error(call("PUT", "/security-group/" .. web.id .. ":frobnicate", { body = '{}' }), 404)
end)

t.test("attach / detach instances; a group in use cannot be deleted", function()
  fresh()
  local instances = call("GET", "/instance").json.instances
  local spare
  for _, i in ipairs(instances) do
    if i.name == "spare-1" then spare = i end
  end
  local op = call("POST", "/security-group", { body = { name = "temp" } }).json
  local gid = wait_op(op).reference.id
  local r = call("PUT", "/security-group/" .. gid .. ":attach", { body = { instance = { id = spare.id } } })
  t.eq(r.status, 200)
  t.eq(wait_op(r.json).state, "success")
  t.eq(call("GET", "/instance/" .. spare.id).json["security-groups"], { { id = gid } })
  expect_failed_op(call("PUT", "/security-group/" .. gid .. ":attach", { body = { instance = { id = spare.id } } }))
  expect_error(call("DELETE", "/security-group/" .. gid), 409, "Cannot delete group when it's in use by virtual machines")
  expect_error(call("PUT", "/security-group/" .. gid .. ":attach",
    { body = { instance = { id = "00000000-0000-4000-8000-000000000000" } } }), 404)
  expect_error(call("PUT", "/security-group/" .. gid .. ":attach", { body = { instance = "x" } }), 400)
  -- the full Instance object of seeds/003 is accepted, only its id matters
  r = call("PUT", "/security-group/" .. gid .. ":detach", { body = { instance = { id = spare.id,
    ["disk-size"] = 10, labels = {}, ["created-at"] = "2024-01-01T12:00:00Z" } } })
  t.eq(wait_op(r.json).state, "success")
  t.eq(#call("GET", "/instance/" .. spare.id).json["security-groups"], 0)
  expect_failed_op(call("PUT", "/security-group/" .. gid .. ":detach", { body = { instance = { id = spare.id } } }),
    "not attached")
  r = call("DELETE", "/security-group/" .. gid)
  t.eq(r.status, 200)
  t.eq(r.json.reference.id, gid)
  t.eq(wait_op(r.json).state, "success")
  expect_error(call("GET", "/security-group/" .. gid), 404)
  expect_error(call("DELETE", "/security-group/" .. gid), 404)
end)

t.test("a group referenced by rules (its own included) cannot be deleted: conflict", function()
  local web = group_by_name("web")
  expect_error(call("DELETE", "/security-group/" .. web.id), 409) -- in use by web-1 and by db's rule
  local op = call("POST", "/security-group", { body = { name = "selfref" } }).json
  local gid = wait_op(op).reference.id
  local r = call("POST", "/security-group/" .. gid .. "/rules", { body = { ["flow-direction"] = "ingress",
    protocol = "tcp", ["start-port"] = 1, ["end-port"] = 65535, ["security-group"] = { id = gid } } })
  t.eq(wait_op(r.json).state, "success")
  expect_error(call("DELETE", "/security-group/" .. gid), 409, "conflict")
end)

t.test("task_error knob: operations end in failure with a reason, nothing applied", function()
  fresh()
  t.eq((control("PUT", "/_sim/knobs", { task_error_rate = 1 })), 200)
  local op = call("POST", "/security-group", { body = { name = "doomed" } }).json
  local done = wait_op(op)
  t.eq(done.state, "failure")
  t.ok(done.reason and done.message)
  t.eq(group_by_name("doomed"), nil)
  t.eq((control("PUT", "/_sim/knobs", { task_error_rate = 0 })), 200)
end)

t.test("unknown paths, wrong methods, unknown operations, oversized bodies", function()
  expect_error(call("GET", "/nope"), 404)
  expect_error(call("PATCH", "/security-group"), 405)
  expect_error(call("GET", "/operation/00000000-0000-4000-8000-000000000000"), 404)
  local big = '{"name":"' .. string.rep("x", 1100 * 1024) .. '"}'
  expect_error(call("POST", "/security-group", { body = big }), 413)
end)

t.test("strict: the EXO2-HMAC-SHA256 header in the documented field order, nothing else", function()
  fresh()
  local good = exo.sign { method = "GET", path = PREFIX .. "/security-group", query = "", body = "",
    key = KEY, secret = SECRET }
  t.eq(call("GET", "/security-group", { headers = { Authorization = good } }).status, 200)
  local cred, expires, sig = good:match("^EXO2%-HMAC%-SHA256 credential=([^,]+),expires=([^,]+),signature=(.+)$")
  t.ok(cred and expires and sig, good)
  for _, h in ipairs({
    ("EXO2-HMAC-SHA256 expires=%s,credential=%s,signature=%s"):format(expires, cred, sig),
    ("EXO2-HMAC-SHA256 credential=%s,signature=%s,expires=%s"):format(cred, sig, expires),
    ("EXO2-HMAC-SHA256 credential=%s, expires=%s, signature=%s"):format(cred, expires, sig),
    ("EXO2-HMAC-SHA256 credential=%s,expires=%s,signature=%s,extra=1"):format(cred, expires, sig),
    ("EXO2-HMAC-SHA256 credential=%s,credential=%s,expires=%s,signature=%s"):format(cred, cred, expires, sig),
  }) do
    expect_error(call("GET", "/security-group", { headers = { Authorization = h } }), 403)
  end
end)

t.test("strict: null names, string/boolean/fractional ports and a null icmp are 400", function()
  fresh()
  local web = group_by_name("web")
  local n = #web.rules
  local cases = {
    { "/security-group", '{"name": null}' },
    { "/security-group", '{"name": "x", "description": null}' },
  }
  for _, port in ipairs({ '"22"', "true", "22.0", "null" }) do
    cases[#cases + 1] = { "/security-group/" .. web.id .. "/rules", ('{"flow-direction": "ingress", '
      .. '"protocol": "tcp", "network": "0.0.0.0/0", "start-port": %s, "end-port": 22}'):format(port) }
  end
  cases[#cases + 1] = { "/security-group/" .. web.id .. "/rules", '{"flow-direction": "ingress", '
    .. '"protocol": "icmp", "network": "0.0.0.0/0", "icmp": null}' }
  for _, c in ipairs(cases) do
    expect_error(call("POST", c[1], { body = c[2] }), 400)
  end
  t.eq(#group_by_name("web").rules, n, "no rule added")
end)

t.run()
