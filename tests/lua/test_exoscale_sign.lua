-- The EXO2-HMAC-SHA256 signer against reference/exoscale.md §2: the official Set A vectors and
-- the security-group rows, byte for byte.
local t = require "testlib"
local exo = require "_sg.exoscale"
local crypto = require "_sg.crypto"

local KEY = "EXO" .. string.rep("x", 24)
local SECRET = string.rep("X", 43)
local EXP = 3376684800
local SG = "a02baf5a-a3e4-49a0-857b-8a08d276c1c0"
local RULE = "9ecc6b8b-73d4-4211-8ced-f7f29bb79524"
local OP = "e2047130-b86e-11ef-83b3-0d8312b2c2d7"
local INSTANCE = "f81d4fae-7dec-11d0-a765-00a0c91e6bf6"

---@param method string
---@param path string
---@param query string|table|nil
---@param body string|nil
local function sign(method, path, query, body)
  return exo.sign { method = method, path = path, query = query, body = body, key = KEY,
    secret = SECRET, expires = EXP }
end

local function header(sig, args)
  return "EXO2-HMAC-SHA256 credential=" .. KEY .. (args and (",signed-query-args=" .. args) or "")
    .. ",expires=3376684800,signature=" .. sig
end

t.test("A1 GET /v2/zone", function()
  local h, sig, msg = sign("GET", "/v2/zone")
  t.eq(msg, "GET /v2/zone\n\n\n\n3376684800")
  t.eq(crypto.hex_encode(crypto.base64_decode(sig)),
    "36d6eafe9d07566037660d471d8f8bab5be31468bb1de32bae05c34b98d13656")
  t.eq(h, header("Ntbq/p0HVmA3Zg1HHY+Lq1vjFGi7HeMrrgXDS5jRNlY="))
end)

t.test("A2 GET /v2/zone?k1=v1&k2=v2", function()
  local h, _, msg = sign("GET", "/v2/zone", "k1=v1&k2=v2")
  t.eq(msg, "GET /v2/zone\n\nv1v2\n\n3376684800")
  t.eq(h, header("iqOBz13+44L5j0uJclE8hmUhQQcvtCSoPEOXYK6liqY=", "k1;k2"))
  -- the same query given as a table, and in the other wire order
  t.eq(sign("GET", "/v2/zone", { k2 = "v2", k1 = "v1" }), h)
  t.eq(sign("GET", "/v2/zone", "k2=v2&k1=v1"), h)
end)

t.test("A3 POST with a spaced JSON body", function()
  local h, _, msg = sign("POST", "/v2/load-balancer", nil, '{"name": "foo"}')
  t.eq(msg, 'POST /v2/load-balancer\n{"name": "foo"}\n\n\n3376684800')
  t.eq(h, header("duldkM0+pgWRtUznj0rMrZauzsYOtSVLn1LCGcs7CcE="))
end)

local rows = {
  { "GET", "/v2/security-group", nil, nil, "7wfRZsvItiw2s2TDBo1L0nw/AcjH/fpTDZxuSqcWRQI=" },
  { "GET", "/v2/security-group", "visibility=public", nil,
    "Gd88BWof2k9M7cgZDadRuUsRD06U7QslxRJ0euDFJnE=", "visibility" },
  { "POST", "/v2/security-group", nil, '{"name":"my-security-group"}',
    "cUQHnW6MsaNkuO2fRRA0LQNzuV+CA6oJJIezlLGqEd4=" },
  { "POST", "/v2/security-group", nil, '{"name": "my-security-group"}',
    "bBqOwexDm1294v4dXoMT8esbfDFrJ1PnyBtzWWDXfPw=" },
  { "GET", "/v2/security-group/" .. SG, nil, nil, "EJI3Yzeei9yQtd50qqMbSF/NOXOomecND0cyKAii2hg=" },
  { "DELETE", "/v2/security-group/" .. SG, nil, nil, "AwGEX6Pb5zc8/i0XtXMf/RLL4xGh2CcK5HyLaSAWKJs=" },
  { "POST", "/v2/security-group/" .. SG .. "/rules", nil,
    '{"flow-direction":"ingress","protocol":"tcp","network":"0.0.0.0/0","start-port":22,"end-port":22,"description":"ssh"}',
    "QZno8aAhzIMEr8qdSwDRs276Kh4Fcc+tnDYVj9bYjCQ=" },
  { "POST", "/v2/security-group/" .. SG .. "/rules", nil,
    '{"flow-direction":"ingress","icmp":{"code":0,"type":8},"network":"0.0.0.0/0","protocol":"icmp"}',
    "sR+rW0UlIVsUVgOVtn0YEeNKWgZNRqBabc/SQsxS7K0=" },
  { "POST", "/v2/security-group/" .. SG .. "/rules", nil,
    '{"flow-direction":"ingress","protocol":"tcp","security-group":{"name":"public-nlb-healthcheck-sources","visibility":"public"},"start-port":80,"end-port":80}',
    "/30cnOxhip23CuLSqgRB1HURxIHGQSk1Y2BMaDtB0BI=" },
  { "DELETE", "/v2/security-group/" .. SG .. "/rules/" .. RULE, nil, nil,
    "U6F278jI516p0F6268b8cmFIjtx7bFZNLZ1ipDihC7w=" },
  { "PUT", "/v2/security-group/" .. SG .. ":add-source", nil, '{"cidr":"192.0.2.0/24"}',
    "BHFqgIukrO/GegyL/sCCkt/4QMiCZS/298qq4IdsQIM=" },
  { "PUT", "/v2/security-group/" .. SG .. ":remove-source", nil, '{"cidr":"192.0.2.0/24"}',
    "hEu+OnXlBrNn8uP+PIgDmU6yMdEefN4EZCK3XkHijT0=" },
  { "PUT", "/v2/security-group/" .. SG .. ":attach", nil, '{"instance":{"id":"' .. INSTANCE .. '"}}',
    "a7ocREUF5s+uc2mXuBocWjlIjEEFS8Qj2rfDa3k8xr4=" },
  { "PUT", "/v2/security-group/" .. SG .. ":detach", nil, '{"instance":{"id":"' .. INSTANCE .. '"}}',
    "09caLb13RvhfCoqTnq+JgV3PHau1zBN1Pm5YvuCO5vI=" },
  { "GET", "/v2/operation/" .. OP, nil, nil, "a1kAuT+ao5hvkvTp+xCLzd4PN97dEbx0kNYcHyrAd6k=" },
}

for i, r in ipairs(rows) do
  t.test(string.format("security-group row %d: %s %s", i, r[1], r[2]), function()
    local h, sig = sign(r[1], r[2], r[3], r[4])
    t.eq(sig, r[5])
    t.eq(h, header(r[5], r[6]))
  end)
end

t.test("query values are signed decoded, names sorted bytewise", function()
  local _, _, msg = sign("GET", "/v2/x", "q=a%20b%2Fc&x=1")
  t.eq(msg, "GET /v2/x\n\na b/c1\n\n3376684800")
  local h2, _, msg2 = sign("GET", "/v2/x", "b=2&a=1&C=3")
  t.eq(msg2, "GET /v2/x\n\n312\n\n3376684800")
  t.ok(h2:find("signed-query-args=C;a;b", 1, true))
  local _, _, msg3 = sign("GET", "/v2/x", "labels=a+b")
  t.eq(msg3, "GET /v2/x\n\na b\n\n3376684800")
end)

t.test("Go ParseQuery edge cases: repeated, empty, bare and invalid pairs", function()
  local h, _, msg = sign("GET", "/v2/x", "k=1&k=2&e=&bare&bad=%zz&semi=a;b&z=9")
  t.eq(msg, "GET /v2/x\n\n9\n\n3376684800")
  t.ok(h:find("signed-query-args=bare;e;z,", 1, true), h)
  local h2 = sign("GET", "/v2/x", { k = { "1", "2" }, z = 9 })
  t.ok(h2:find("signed-query-args=z,", 1, true), h2)
end)

t.test("expires defaults to ten minutes from now", function()
  local h = exo.sign { method = "GET", path = "/v2/zone", key = KEY, secret = SECRET }
  local exp = tonumber(h:match("expires=(%d+)"))
  t.ok(math.abs(exp - (os.time() + 600)) <= 2, "expires " .. tostring(exp))
end)

t.test("misuse raises", function()
  t.raises(function() exo.sign { path = "/v2/zone", key = KEY, secret = SECRET } end, "method")
  t.raises(function() exo.sign { method = "GET", path = "/v2/zone?a=1", key = KEY, secret = SECRET } end,
    "query")
  t.raises(function() exo.sign { method = "GET", path = "/v2/zone", key = KEY } end, "secret")
  t.raises(function()
    exo.sign { method = "GET", path = "/v2/zone", key = KEY, secret = SECRET, expires = "soon" }
  end, "expires")
end)

t.run()
