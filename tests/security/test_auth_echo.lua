-- A server that echoes the request's auth header back (tests/support/testserver's /echo-auth/:
-- in its JSON error body and in a response header) gets no credential printed, for all five
-- providers: not in the error sgrun prints, not in the error object's fields, not in the
-- SGRUN_DEBUG=http trace. Exoscale's Authorization carries the API key and a signature that
-- stays valid until it expires: both are credentials.
local t = require "testlib"
local sg = require "sg"

local URL = assert(os.getenv("TEST_URL"), "TEST_URL is not set (run under with_testserver.sh)")
local SGRUN = arg[-1]
local TMP = os.tmpname()

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- distinctive credentials, long enough that any 12 characters of one identify it
local accounts = {
  exoscale = { key = "EXOecho7c1d2e3f4a5b6c7d8e9f0a", secret = "echoSECRETexo0123456789abcdefghijABCDEFGHIJ" },
  gcore = { api_key = "4242$echoGCOREkey0123456789abcdef", project_id = 1, region_id = 2 },
  genesis = { token = "echoGENESIStoken0123456789abcdef" },
  barrack = { api_key = "echoBARRACKkey0123456789abcdef" },
  hostup = { api_key = "hostup-echo-key-0123456789abcdef" },
}

-- The credentials of a connection and the secret parts of the auth header it sent: the
-- signature of an Exoscale request, the token of a Bearer/APIKey header, an X-API-Key value.
local function secrets_of(provider, sent)
  local out = {}
  for name, v in pairs(accounts[provider]) do
    if name ~= "project_id" and name ~= "region_id" then out[#out + 1] = v end
  end
  for _, header in ipairs(sent) do
    out[#out + 1] = header:match("signature=([^,]+)") or header:match("^%S+ (%S+)$") or header
  end
  return out
end

-- the first piece of a secret (12 characters, raw or JSON-escaped) found in text
local function leak(text, secrets)
  for _, s in ipairs(secrets) do
    for _, form in ipairs({ s, (sg.json.encode(s):sub(2, -2)) }) do
      for i = 1, #form - 11 do
        local piece = form:sub(i, i + 11)
        if text:find(piece, 1, true) then return piece end
      end
    end
  end
end

-- The program a child sgrun runs: one call through a transport that notes the auth header it
-- sends, then the call again unprotected, so that sgrun prints the error as it would for a user.
local CHILD = [[
local sg = require "sg"
local provider, base, sent_path = arg[1], arg[2], arg[3]
local opts = sg.json.decode(arg[4])
opts.base_url = base
local http = require "_sg.http"
local sent = assert(io.open(sent_path, "w"))
opts.transport = function(req)
  sent:write(req.headers.Authorization or req.headers["X-API-Key"] or "", "\n")
  sent:flush()
  return http.request(req)
end
local c = sg.connect(provider, opts)
local method, id = arg[5], math.tointeger(tonumber(arg[6]))
local _, e = pcall(c[method], c, id)
io.write("FIELDS ", sg.json.encode(e), "\n")
c[method](c, id)
]]

local child_path = TMP .. ".child.lua"
local f = assert(io.open(child_path, "w"))
f:write(CHILD)
f:close()

for _, provider in ipairs({ "exoscale", "gcore", "genesis", "barrack", "hostup" }) do
  t.test(provider .. ": an echoed auth header is scrubbed from the error and the trace", function()
    local sent_path = TMP .. "." .. provider .. ".sent"
    local method = provider == "hostup" and "list_firewall_rules 10000" or "groups"
    local cmd = string.format("SGRUN_DEBUG=http %s %s %s %s %s %s %s 2>&1", shell_quote(SGRUN),
      shell_quote(child_path), provider, shell_quote(URL .. "/echo-auth/" .. provider), shell_quote(sent_path),
      shell_quote(sg.json.encode(accounts[provider])), method)
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    local ok = p:close()
    local sent = {}
    for line in io.lines(sent_path) do
      if line ~= "" then sent[#sent + 1] = line end
    end
    os.remove(sent_path)
    t.ok(not ok, "the call failed: " .. out)
    t.ok(#sent >= 1, "an auth header was sent")
    t.ok(out:lower():find("x-echo-", 1, true) and out:find("HTTP 401", 1, true), "the server echoed (trace shows it): " .. out)
    t.ok(out:find("REDACTED", 1, true), "the echo shows as redacted: " .. out)
    local piece = leak(out, secrets_of(provider, sent))
    t.ok(not piece, "printed: " .. tostring(piece) .. " in\n" .. out)
  end)
end

t.test("cleanup", function()
  os.remove(child_path)
end)

t.run()
