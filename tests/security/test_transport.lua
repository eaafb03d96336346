-- Issue 12 items 3 and 5: no credentials over plain HTTP to another host, no redirect followed,
-- and the method on the wire is the method asked for. Every request goes to the loopback test
-- server (TEST_URL); the "remote" host names are mapped to 127.0.0.1 with the resolve option, so
-- even a broken check sends nothing off this machine.
local t = require "testlib"
local sg = require "sg"

local base = assert(os.getenv("TEST_URL"), "run through with_testserver.sh")
local port = assert(base:match(":(%d+)$"))
local REMOTE = "api.example.test"
local resolve = { REMOTE .. ":" .. port .. ":127.0.0.1", "other.example.test:" .. port .. ":127.0.0.1" }
local remote_url = "http://" .. REMOTE .. ":" .. port

local function connect(opts)
  opts.api_key = "sgr-insecure-probe-key"
  opts.resolve = resolve
  return sg.connect("hostup", opts)
end

t.test("the resolve override reaches the loopback server under a remote name", function()
  local res = assert(sg.http.request { url = remote_url .. "/hello", resolve = resolve })
  t.eq(res.status, 200)
end)

t.test("plain http:// to a remote host is refused, naming the option and the opt-in", function()
  t.raises(function() connect { base_url = remote_url .. "/hostup/api" } end, "base_url option")
  t.raises(function() connect { base_url = remote_url .. "/hostup/api" } end, "allow_insecure_http = true")
  t.raises(function() connect { base_url = "http://user@" .. REMOTE .. "/x" } end, "clear text")
end)

t.test("... also when the URL comes from SGRUN_HOSTUP_URL", function()
  local code = string.format([[
    local ok, err = pcall(require("sg").connect, "hostup", { api_key = "k-12345678" })
    io.write(tostring(err))]])
  local cmd = string.format("SGRUN_HOSTUP_URL=%s/hostup/api %s -e '%s' 2>&1", remote_url, arg[-1], code)
  local h = assert(io.popen(cmd))
  local out = h:read("a")
  h:close()
  t.ok(out:find("SGRUN_HOSTUP_URL", 1, true) and out:find("allow_insecure_http", 1, true), out)
end)

t.test("loopback hosts need no opt-in", function()
  for _, host in ipairs({ "127.0.0.1", "localhost", "127.1.2.3", "[::1]" }) do
    connect { base_url = "http://" .. host .. ":" .. port .. "/hostup/api" }
  end
  t.raises(function() connect { base_url = "http://127.0.0.1.example.test/x" } end, "clear text")
end)

t.test("allow_insecure_http = true (option or profile) lets a lab run", function()
  local conn = connect { base_url = remote_url .. "/hostup/api", allow_insecure_http = true }
  -- the test server has no HostUp API: a 404 proves the request went (to 127.0.0.1)
  local ok, e = pcall(conn.list_firewall_rules, conn, 10000)
  t.ok(not ok and e.status == 404, tostring(e))
  local dir = os.tmpname()
  local f = assert(io.open(dir, "w"))
  f:write("[lab.hostup]\nallow_insecure_http = true\n")
  f:close()
  local cmd = string.format([[SGRUN_PROFILES=%s %s -e 'require("sg").connect("hostup", {api_key = "k-12345678",
    profile = "lab", base_url = "%s/x"}) io.write("ok")' 2>&1]], dir, arg[-1], remote_url)
  os.execute("chmod 600 " .. dir)
  local h = assert(io.popen(cmd))
  local out = h:read("a")
  h:close()
  os.remove(dir)
  t.eq(out, "ok")
end)

t.test("a redirect is never followed: it would carry credentials elsewhere", function()
  local to = "http://other.example.test:" .. port .. "/hello"
  local res = assert(sg.http.request { url = base .. "/redirect?to=" .. to, resolve = resolve,
    headers = { Authorization = "Bearer x" } })
  t.eq(res.status, 302)
  t.eq(res.headers.location, to)
  local conn = connect { base_url = base .. "/redirect?to=" .. to .. "&" }
  local ok, e = pcall(conn.list_firewall_rules, conn, 10000)
  t.ok(not ok and e.status == 302, "a connection call sees the 302: " .. tostring(e))
end)

t.run()
