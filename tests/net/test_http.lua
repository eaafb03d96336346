-- sg.http.request over real HTTP against tests/support/testserver on 127.0.0.1 (TEST_URL).
local t = require "testlib"
local sg = require "sg"

local base = assert(os.getenv("TEST_URL"), "run through with_testserver.sh")

local function get(path, opts)
  opts = opts or {}
  opts.url = base .. path
  return sg.http.request(opts)
end

t.test("200 requests held 300 ms each are in flight together", function()
  assert(get("/reset"))
  local fns = {}
  for i = 1, 200 do
    fns[i] = function()
      local res = assert(get("/delay?ms=300&id=" .. i, { timeout = 20 }))
      return res
    end
  end
  local responses = sg.all(fns, { limit = 200 })
  local seen = {}
  for i, res in ipairs(responses) do
    t.eq(res.status, 200)
    local id = sg.json.decode(res.body).id
    t.eq(id, tostring(i), "response " .. i .. " carries its own id")
    seen[id] = true
  end
  local distinct = 0
  for _ in pairs(seen) do distinct = distinct + 1 end
  t.eq(distinct, 200)
  local stats = sg.json.decode(assert(get("/stats")).body)
  -- overlap as the server saw it (one at a time would be 1); how fast is bench/'s question
  t.ok(stats.max_concurrent >= 20, "server saw at most " .. stats.max_concurrent .. " at once")
end)

t.test("a response carries status, lower-case headers, body and time", function()
  local res = assert(sg.http.request { method = "POST", url = base .. "/echo", body = "payload",
    headers = { ["X-Test"] = "yes", ["Content-Type"] = "text/plain" } })
  t.eq(res.status, 200)
  t.eq(res.body, "payload")
  t.eq(res.headers["x-method"], "POST")
  t.eq(res.headers["x-test-echo"], "yes")
  t.ok(type(res.time) == "number" and res.time >= 0, "time is a number of seconds")
end)

t.test("a pooled handle carries nothing from one request to the next", function()
  -- one task's requests one after another run on the same pooled easy handle, which is not
  -- reset between them: each must go out exactly as asked
  local seq = {
    { method = "POST", body = "one" },
    { method = "HEAD" },
    { method = "GET" },
    { method = "DELETE" },
    { method = "PUT", body = "two", headers = { ["user-agent"] = "mine/1" } },
    { method = "GET", headers = { ["X-Test"] = "x" } },
    { method = "PATCH", body = "" },
    { method = "OPTIONS" },
    { method = "GET", max_size = 2 },
    { method = "GET" },
  }
  for i, req in ipairs(seq) do
    req.url = base .. "/echo"
    local what = "request " .. i .. " (" .. req.method .. ")"
    local res = assert(sg.http.request(req))
    t.eq(res.status, 200, what)
    t.eq(res.headers["x-method"], req.method, what .. ": the method on the wire")
    if req.method ~= "HEAD" then t.eq(res.body, req.body or "", what .. ": the body") end
    t.eq(res.headers["x-test-echo"], req.headers and req.headers["X-Test"], what .. ": the headers")
    local agents = res.headers["x-user-agents"]
    if req.headers and req.headers["user-agent"] then t.eq(agents, "mine/1", what .. ": the caller's User-Agent alone")
    else t.ok(agents and agents:match("^sgrun/[%d.]+$"), what .. ": one User-Agent, sgrun's: " .. tostring(agents)) end
  end
  local res, msg, code = sg.http.request { url = base .. "/bytes?n=100", max_size = 10 }
  t.eq(res, nil, msg)
  t.eq(code, "too_large")
  t.eq(assert(sg.http.request { url = base .. "/bytes?n=100" }).body, ("x"):rep(100), "the size cap does not stay")
end)

t.test("proxy variables are honoured as libcurl reads them, but never for clear text to loopback", function()
  -- each case a process of its own: sgrun reads the variables once; port 1 has no proxy behind it.
  -- proxied.test is the test server under a name that is not loopback (resolve: no DNS asked)
  local clean = "env -u http_proxy -u HTTP_PROXY -u https_proxy -u HTTPS_PROXY -u all_proxy -u ALL_PROXY"
    .. " -u no_proxy -u NO_PROXY "
  local port = base:match(":(%d+)$")
  local named = "http://proxied.test:" .. port
  local function run(vars, url)
    local p = io.popen(clean .. vars .. " " .. arg[-1] .. [[ -e "local r, _, c = require('sg').http.request { url = ']]
      .. (url or named) .. [[/hello', resolve = { 'proxied.test:]] .. port .. [[:127.0.0.1' } }
      io.write(r and r.status or c)" 2>&1]])
    local out = p:read("a")
    p:close()
    return out
  end
  t.eq(run(""), "200", "no proxy")
  t.eq(run("http_proxy=http://127.0.0.1:1"), "connect", "http_proxy")
  t.eq(run("all_proxy=http://127.0.0.1:1"), "connect", "all_proxy")
  t.eq(run("http_proxy=http://127.0.0.1:1 no_proxy=proxied.test"), "200", "no_proxy")
  t.eq(run("http_proxy=http://127.0.0.1:1 NO_PROXY=proxied.test"), "200", "NO_PROXY")
  t.eq(run("HTTP_PROXY=http://127.0.0.1:1"), "200", "HTTP_PROXY in upper case is not used (httpoxy)")
  t.eq(run("https_proxy=http://127.0.0.1:1"), "200", "https_proxy is not for http://")
  -- sg.connect sends credentials in clear text to loopback unasked (the emulator): a proxy, often
  -- set for a whole machine, would be a second host reading them
  t.eq(run("http_proxy=http://127.0.0.1:1", base), "200", "clear text to 127.0.0.1 goes direct")
  t.eq(run("all_proxy=http://127.0.0.1:1", "http://localhost:" .. port), "200", "and to localhost")
  t.eq(run("http_proxy=http://127.0.0.1:1", "http://sim.localhost:" .. port), "200", "and to *.localhost")
  t.eq(run("http_proxy=http://127.0.0.1:1", "http://notlocalhost:" .. port), "connect", "but not to notlocalhost")
end)

t.test("HTTP errors are responses, not failures", function()
  for _, code in ipairs({ 404, 429, 503 }) do
    local res = assert(get("/status?code=" .. code))
    t.eq(res.status, code)
  end
end)

t.test("a timeout fires and says so", function()
  -- the answer would come after 2 s: a timeout code proves the call gave up before it
  local res, msg, code = get("/delay?ms=2000", { timeout = 0.2 })
  t.eq(res, nil)
  t.eq(code, "timeout")
  t.ok(msg:find("imed out"), msg)
end)

t.test("a timeout under a millisecond is a timeout, not none", function()
  -- it truncated to 0 ms, libcurl's "no timeout": the call waited the whole 2 s and succeeded
  local res, _, code = get("/delay?ms=2000", { timeout = 0.0004 })
  t.eq({ res, code }, { nil, "timeout" })
end)

t.test("cancelling a task frees its request", function()
  local before = sg.http.in_flight()
  local task = sg.spawn(function() return get("/delay?ms=2000") end)
  sg.sleep(0.05)
  t.eq(sg.http.in_flight(), before + 1)
  task:cancel()
  t.eq(sg.http.in_flight(), before)
  t.eq({ task:wait() }, { false, "cancelled" })
  local v, msg, code = sg.timeout(0.05, get, "/delay?ms=2000")
  t.eq({ v, code }, { nil, "timeout" }, msg)
  t.eq(sg.http.in_flight(), before)
end)

t.test("a refused connection is reported with code 'connect'", function()
  local res, msg, code = sg.http.request { url = "http://127.0.0.1:1/" }
  t.eq(res, nil)
  t.eq(code, "connect")
  t.ok(#msg > 0)
end)

t.test("a response over the size cap is refused with code 'too_large'", function()
  local res, msg, code = get("/bytes?n=100000", { max_size = 1000 })
  t.eq(res, nil)
  t.eq(code, "too_large")
  t.ok(msg:find("1000"), msg)
  t.eq(#assert(get("/bytes?n=100000")).body, 100000)
end)

t.test("a connection closed without an answer is code 'closed'", function()
  local res, _, code = get("/drop")
  t.eq(res, nil)
  t.eq(code, "closed")
end)

t.test("misuse raises before anything is sent", function()
  t.raises(function() sg.http.request { } end, "'url' is required")
  t.raises(function() sg.http.request { url = base, body = {} } end, "'body' must be a string")
  t.raises(function() sg.http.request { url = base, method = "get" } end, "upper case")
  t.raises(function() sg.http.request { url = base, headers = { ["X"] = "a\r\nB: c" } } end,
    "line break")
  -- a misspelt option is not dropped: {methd = "POST"} would send a GET
  t.raises(function() sg.http.request { url = base, methd = "POST" } end,
    "http.request: unknown option 'methd'; did you mean 'method'? (known: body,")
  t.raises(function() sg.http.request { url = base, [1] = "x" } end, "unknown option 1 (known:")
end)

t.test("an unknown option names the likely one, as sg.optcheck guesses", function()
  local function message(opts)
    opts.url = base
    local ok, err = pcall(sg.http.request, opts)
    t.eq(ok, false)
    return tostring(err)
  end
  local function guess(name)
    return message({ [name] = 1 }):match("did you mean '([^']*)'%?")
  end
  -- a case or separator slip, however long the name
  t.eq(guess("MaxConnections"), "max_connections")
  t.eq(guess("max-size"), "max_size")
  t.eq(guess("URL"), "url")
  -- edits: at most two, and at most a third of the known name
  t.eq(guess("timout"), "timeout")
  t.eq(guess("ca_fiel"), "ca_file")
  t.eq(guess("hedaers"), "headers")
  t.eq(guess("ur"), "url")
  t.eq(guess("bod"), "body")
  t.eq(guess("resolv"), "resolve")
  t.eq(guess("methodd"), "method")
  t.eq(guess("ulr"), nil) -- two edits from a name of three letters
  t.eq(guess("bdy"), "body")
  t.eq(guess("by"), nil)
  t.eq(guess("tiemuot"), nil) -- more than two edits
  t.eq(guess("banana"), nil)
  -- a tie goes to the first in the sorted list, as sg.optcheck's does
  t.eq(guess("ca_fith"), "ca_file") -- two edits from ca_file and from ca_path
  -- the same guesses as sg.optcheck's, for every name tried
  local known = { "body", "ca_file", "ca_path", "headers", "max_connections", "max_size", "method",
    "resolve", "timeout", "url" }
  for _, name in ipairs({ "MaxConnections", "max-size", "URL", "timout", "ca_fiel", "hedaers", "ur", "bod",
    "resolv", "methodd", "ulr", "bdy", "by", "tiemuot", "banana", "ca_fith", "ca_path_", "Timeout", "mx_size",
    "max_connection", "heders", "u", "" }) do
    local _, expected = require("sg.optcheck").first_unknown({ [name] = 1 }, known)
    t.eq(guess(name), expected, name)
  end
  -- no guess, no "did you mean"
  t.eq(message({ banana = 1 }):find("did you mean", 1, true), nil)
end)

t.test("blocking requests work inside pcall and coroutine.wrap", function()
  local ok, res = pcall(get, "/hello")
  t.eq({ ok, res.status }, { true, 200 })
  local next_body = coroutine.wrap(function()
    for _ = 1, 2 do coroutine.yield(assert(get("/hello")).body) end
  end)
  t.eq({ next_body(), next_body() }, { "hello\n", "hello\n" })
end)

t.test("errors in sg.all children that make requests reach the caller", function()
  t.raises(function()
    sg.all(function() return assert(get("/hello")) end,
      function() local _, msg = get("/delay?ms=1000", { timeout = 0.05 }) error("child: " .. msg) end)
  end, "child: ")
end)

-- Plain http:// never becomes h2, so a burst to a new host must not wait for the first answer
-- to learn that (CURLOPT_PIPEWAIT is for https:// only): all of it reaches the server at once.
t.test("a burst to a new plain-http host is all in flight together from the start", function()
  -- requests earlier tests abandoned may still be held by the server: they would count too
  for _ = 1, 300 do
    if sg.json.decode(assert(get("/stats")).body).current == 0 then break end
    sg.sleep(0.1)
  end
  assert(get("/reset"))
  local port = base:match(":(%d+)$")
  local fns = {}
  for i = 1, 20 do
    fns[i] = function()
      return assert(sg.http.request { url = "http://burst.test:" .. port .. "/delay?ms=2000&id=" .. i,
        resolve = { "burst.test:" .. port .. ":127.0.0.1" }, timeout = 20 }).status
    end
  end
  for i, status in ipairs(sg.all(fns)) do t.eq(status, 200, "request " .. i) end
  t.eq(sg.json.decode(assert(get("/stats")).body).max_concurrent, 20)
end)

-- Between requests a kept-alive connection's socket stays registered with the event loop
-- (runtime/loop.c parks it). A server that closes it there must neither make the loop spin on
-- the closed socket nor leave the next requests waiting on a registration that is gone.
t.test("connections the server closes while idle are replaced, and the idle loop stays idle", function()
  local port = base:match(":(%d+)$")
  -- the number of the connection each request went on (the server numbers them as it accepts)
  local function batch()
    local fns = {}
    for i = 1, 10 do
      fns[i] = function()
        local res = assert(sg.http.request { url = "http://idle.test:" .. port .. "/idle-close?s=1",
          resolve = { "idle.test:" .. port .. ":127.0.0.1" }, timeout = 20 })
        t.eq(res.status, 200, "request " .. i)
        return sg.json.decode(res.body).connection
      end
    end
    return sg.all(fns)
  end
  local function connections() return sg.json.decode(assert(get("/stats")).body).connections end
  batch()
  local cpu = os.clock()
  sg.sleep(2.5) -- the server closes every connection of the batch after 1 s idle
  cpu = os.clock() - cpu
  t.ok(cpu < 0.5, string.format("%.2f s of CPU while waiting: the loop spun on closed sockets", cpu))
  local closed_up_to = connections()
  for i, connection in ipairs(batch()) do
    t.ok(connection > closed_up_to, "request " .. i .. " of the second batch went on connection " .. connection ..
      ", which the server had closed")
  end
end)

t.run()
