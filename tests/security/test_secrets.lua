-- Issue 12 item 6: a hostile or compromised server that echoes the credential back, in any error
-- field and in any encoding, never gets it printed; and a playbook cannot read a connection's
-- secrets through sg.connect's internals.
local t = require "testlib"
local sg = require "sg"
local connect = require "sg.connect"
local trace = require "sg.trace"

-- distinctive, with the characters that JSON and URLs escape
local SECRET = "sgrTOKEN/7Qz\"x\\+k=9f3b1e"

local function json_escaped(s) return (sg.json.encode(s):sub(2, -2)) end

-- every way of writing the secret a server might echo, and prefixes of at least 8 characters
local function leaks(text)
  local forms = { SECRET, json_escaped(SECRET), (json_escaped(SECRET):gsub("\\/", "/")),
    (SECRET:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end)) }
  for _, f in ipairs(forms) do
    -- a prefix scrubbed alone would leave the rest: look for both ends
    if text:find(f:sub(1, 8), 1, true) or text:find(f:sub(-6), 1, true) then return f end
  end
end

-- a server that puts the token it received into every field of its error
local function hostile(req)
  local got = req.headers["X-API-Key"] or req.headers.Authorization or ""
  got = json_escaped((got:gsub("^Bearer ", "")))
  local body = string.format('{"code":"bad_%s","message":"denied for %s","requestId":"%s",' ..
    '"detail":"%s","error":{"token":"%s"}}', got, got, got, got, got)
  return { status = 403, headers = { ["x-request-id"] = SECRET, ["content-type"] = "application/json" },
    body = body, time = 0.01 }
end

for _, provider in ipairs({ "hostup", "genesis" }) do
  t.test(provider .. ": an error object built from an echoing server holds no form of the secret", function()
    local opts = { transport = hostile, base_url = "https://api.example.test" }
    opts[provider == "hostup" and "api_key" or "token"] = SECRET
    local conn = sg.connect(provider, opts)
    local method = provider == "hostup" and "list_firewall_rules" or "list_security_groups"
    local ok, e = pcall(conn[method], conn, provider == "hostup" and 10000 or nil)
    t.ok(not ok, "the call failed")
    t.ok(type(e) == "table", "an error object")
    local seen = {}
    local function walk(v)
      if type(v) == "string" then
        local f = leaks(v)
        t.ok(not f, "field leaks " .. tostring(f) .. ": " .. v)
        seen[#seen + 1] = v
      elseif type(v) == "table" then
        for k, x in pairs(v) do walk(k) walk(x) end
      end
    end
    walk(e)
    local printed = tostring(e)
    t.ok(not leaks(printed), "tostring leaks: " .. printed)
    t.ok(printed:find("REDACTED", 1, true), "the echo shows as redacted: " .. printed)
    t.ok(#seen >= 3, "fields were inspected")
  end)
end

t.test("the SGRUN_DEBUG=http trace scrubs raw, JSON-escaped and percent-encoded echoes", function()
  local req = { method = "GET", url = "https://x.test/a?key=" .. SECRET:gsub("[^%w]", function(c)
    return string.format("%%%02X", c:byte()) end), headers = { ["X-Other"] = SECRET } }
  local resp = hostile({ headers = { Authorization = "Bearer " .. SECRET } })
  local text = trace.format("hostup", "op", req, resp, nil, { secrets = { SECRET } })
  t.ok(not leaks(text), "trace leaks: " .. text)
end)

t.test("the trace shows no body that carries a credential escaped character by character", function()
  -- every character as JSON \uXXXX, or percent-encoded: no window of the raw secret is in the text
  local as_unicode = SECRET:gsub(".", function(c) return string.format("\\u%04x", c:byte()) end)
  local as_percent = SECRET:gsub(".", function(c) return string.format("%%%02X", c:byte()) end)
  for _, escaped in ipairs { as_unicode, as_percent } do
    local resp = { status = 401, headers = {}, body = '{"message":"bad token ' .. escaped .. '"}' }
    local text = trace.format("hostup", "op", { method = "GET", url = "https://x.test/a", headers = {} }, resp, nil,
      { secrets = { SECRET } })
    t.ok(not text:find(escaped, 1, true), "the escaped echo is not in the trace: " .. text)
    t.ok(text:find("body not shown", 1, true), text)
  end
  -- a body with escapes but no credential is shown as it is
  local resp = { status = 200, headers = {}, body = '{"name":"caf\\u00e9 50%25"}' }
  local text = trace.format("hostup", "op", { method = "GET", url = "https://x.test/a", headers = {} }, resp, nil,
    { secrets = { SECRET } })
  t.ok(text:find("caf\\u00e9 50%25", 1, true), text)
end)

t.test("connect internals give a playbook no secret", function()
  local conn = sg.connect("hostup", { api_key = SECRET, base_url = "https://api.example.test" })
  local i = connect.internals(conn)
  t.eq(i.secrets, nil)
  local function walk(v, depth)
    if depth > 4 then return end
    if type(v) == "string" then t.ok(not leaks(v), "internals leak the secret")
    elseif type(v) == "table" then for k, x in pairs(v) do walk(k, depth + 1) walk(x, depth + 1) end end
  end
  walk(i, 0)
  t.ok(not leaks(i.scrub("echo " .. SECRET)), "scrub works without handing the secret out")
end)

t.run()
