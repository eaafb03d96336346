-- Issue 10 item 1: a write is never re-sent by the transport. libcurl silently repeats a request
-- whose reused keep-alive connection dies before any answer; tests/support/reuseserver kills
-- every reused connection on the first bytes of a write and counts what arrived.
local t = require "testlib"
local sg = require "sg"

local base = assert(os.getenv("TEST_URL"), "run through with_testserver.sh with reuseserver")

local function count(method)
  local res = assert(sg.http.request { url = base .. "/count?m=" .. method })
  return sg.json.decode(res.body).count
end

for _, method in ipairs({ "DELETE", "PUT", "POST", "PATCH" }) do
  t.test(method .. " after a request on a keep-alive connection reaches the server once", function()
    assert(sg.http.request { url = base .. "/reset" })
    -- warm the connection pool: this GET leaves a keep-alive connection the write could reuse
    assert(sg.http.request { url = base .. "/warm" })
    local res, err = sg.http.request { method = method, url = base .. "/firewall?pos=3",
      body = method ~= "DELETE" and "{}" or nil }
    t.eq(count(method), 1, method .. " arrivals (" .. tostring(res and res.status or err) .. ")")
  end)
end

t.test("reads still reuse connections (the server answers a GET on a reused one)", function()
  assert(sg.http.request { url = base .. "/reset" })
  for _ = 1, 3 do assert(sg.http.request { url = base .. "/warm" }) end
  t.eq(count("GET"), 4)
end)

t.run()
