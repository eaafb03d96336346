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
  -- a user part before the host is refused outright ("http://127.0.0.1@remote" is remote)
  t.raises(function() connect { base_url = "http://user@" .. REMOTE .. "/x" } end, "user name or password")
  t.raises(function() connect { base_url = "http://127.0.0.1@" .. REMOTE .. "/x" } end, "user name or password")
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

t.test("userinfo tricks: the host the check sees is the host libcurl reaches", function()
  -- each URL hides a remote name around an '@'; the check must either refuse it or see the host
  -- libcurl connects to. evil.example.test resolves nowhere: a request libcurl sends reaches the
  -- test server (loopback) or fails on its URL, never on resolving the remote name.
  local hp = "127.0.0.1:" .. port
  local urls = { "http://a@evil.example.test@" .. hp, "http://evil.example.test;@" .. hp,
    "http://evil.example.test\\@" .. hp, "http://evil.example.test#@" .. hp, "http://evil.example.test?@" .. hp,
    "http://" .. hp .. "\\@evil.example.test", "http://127.0.0.1%2f@evil.example.test",
    "http://127.0.0.1:80@evil.example.test", "http://[::1]@evil.example.test" }
  for _, url in ipairs(urls) do
    local ok = pcall(connect, { base_url = url .. "/hostup/api" })
    if ok then
      local res, err, code = sg.http.request { url = url .. "/hello", timeout = 5 }
      t.ok((res and res.status == 200) or (code ~= "resolve" and not tostring(err):find("resolve", 1, true)),
        url .. " was taken for loopback but went elsewhere: " .. tostring(code) .. " " .. tostring(err))
    end
  end
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

-- item 5: the method on the wire is the method asked for
t.test("a GET or HEAD with a body is refused, never sent as a POST", function()
  for _, m in ipairs({ "GET", "HEAD" }) do
    t.raises(function() sg.http.request { method = m, url = base .. "/echo", body = "x" } end,
      "cannot carry a body")
  end
  for _, m in ipairs({ "DELETE", "OPTIONS", "PUT" }) do
    local res = assert(sg.http.request { method = m, url = base .. "/echo", body = "{}" })
    t.eq(res.headers["x-method"], m)
  end
end)

t.test("under --dry-run a GET with a body is refused too, and nothing but reads leave", function()
  local code = [[
    local sg = require("sg")
    local base = os.getenv("TEST_URL")
    print(pcall(sg.http.request, { method = "GET", url = base .. "/echo", body = "delete everything" }))
    print(select(3, sg.http.request { method = "PUT", url = base .. "/echo", body = "{}" }))
    print(sg.http.request({ url = base .. "/echo" }).headers["x-method"])]]
  local f = assert(io.popen(string.format("echo %q | %s --dry-run - 2>&1", code, arg[-1])))
  local out = f:read("a")
  f:close()
  t.ok(out:find("false\t[^\n]*cannot carry a body"), out)
  t.ok(out:find("\ndry_run\n", 1, false), out)
  t.ok(out:find("\nGET\n"), out)
end)

-- item 8: numeric options are checked before they become integers
t.test("timeout and max_size: NaN, infinities and huge values are refused with a clear message", function()
  for _, v in ipairs({ 0, -1, 0 / 0, math.huge, 1e300 }) do
    t.raises(function() sg.http.request { url = base .. "/hello", timeout = v } end, "'timeout' must be")
    t.raises(function() sg.connect("hostup", { api_key = "k-12345678", timeout = v }) end, "timeout must be")
  end
  for _, v in ipairs({ -1, 0 / 0, math.huge, 1e300 }) do
    t.raises(function() sg.http.request { url = base .. "/hello", max_size = v } end, "'max_size' must be")
    t.raises(function() sg.connect("hostup", { api_key = "k-12345678", max_size = v }) end, "max_size must be")
  end
  local res = assert(sg.http.request { url = base .. "/bytes?n=10", max_size = 1e15 })
  t.eq(#res.body, 10)
  local _, msg = sg.http.request { url = base .. "/bytes?n=100", max_size = 5e9 + 0.5 }
  t.eq(msg, nil)
  local code
  _, msg, code = sg.http.request { url = base .. "/bytes?n=100", max_size = 10 }
  t.eq(code, "too_large")
  t.ok(msg:find("10 byte limit", 1, true), msg)
end)

t.test("headers over the limit say so, instead of 'Out of memory'", function()
  for _, q in ipairs({ "n=1&size=200000", "n=400&size=1000" }) do
    local res, msg, code = sg.http.request { url = base .. "/headers?" .. q }
    t.eq(res, nil)
    t.eq(code, "too_large")
    t.ok(msg:find("response headers larger than the limit", 1, true), msg)
  end
  local res = assert(sg.http.request { url = base .. "/headers?n=20&size=100" })
  t.eq(#res.headers["x-big-19"], 100)
end)

t.run()
