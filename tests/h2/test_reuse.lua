-- Issue 14 item 2, against a real HTTP/2 server (nginx, tests/support/with_nginx.sh): a burst of
-- reads to a new host waits for the first handshake and rides one h2 connection per transport
-- thread (PIPEWAIT);
-- writes never go on a reused connection, on h2 and HTTP/1.1, and a server closing connections mid-burst never sees
-- a write twice. Connections are counted by the server (its access log names each one).
local t = require "testlib"
local sg = require "sg"

local nginx_log = require "nginx_log"

local h2, h1, h2_short = os.getenv("H2_URL"), os.getenv("H1_URL"), os.getenv("H2_SHORT_URL")
local served, connections = nginx_log.served, nginx_log.connections

-- n requests, at most limit at once; method(i) and path(i) choose each one.
local function burst(base, n, limit, method, path)
  local fns = {}
  for i = 1, n do
    fns[i] = function()
      local m = method(i)
      local res, err = sg.http.request { method = m, url = base .. path(i),
        body = m ~= "GET" and "{}" or nil }
      return res and res.status or err
    end
  end
  return sg.all(fns, { limit = limit })
end

local function get() return "GET" end

t.test("a burst of 50 reads to a new HTTP/2 host shares one connection per transport thread", function()
  local st = burst(h2, 50, 50, get, function(i) return "/burst?i=" .. i end)
  for i = 1, 50 do t.eq(st[i], 200, "request " .. i) end
  local lines = served("/burst", 50)
  t.eq(#lines, 50)
  t.eq(lines[1].proto, "HTTP/2.0")
  -- each thread has a connection cache of its own
  t.ok(connections(lines) <= sg.http.threads(), connections(lines) .. " connections (TLS handshakes) for 50 h2 requests on "
    .. sg.http.threads() .. " transport threads")
end)

for _, case in ipairs({ { "HTTP/2", h2, "/w2" }, { "HTTP/1.1", h1, "/w1" } }) do
  local name, base, prefix = case[1], case[2], case[3]
  t.test(name .. ": writes never go on a reused connection; reads do", function()
    assert(sg.http.request { url = base .. prefix .. "/warm" })
    local st = burst(base, 40, 10, function(i) return i % 2 == 0 and "POST" or "GET" end,
      function(i) return prefix .. "/x?i=" .. i end)
    for i = 1, 40 do t.eq(st[i], 200, "request " .. i) end
    local reused_reads = 0
    for _, l in ipairs(served(prefix, 41)) do
      if l.method == "POST" then t.eq(l.nth, 1, "a POST was request " .. l.nth .. " on its connection")
      elseif l.nth > 1 then reused_reads = reused_reads + 1 end
    end
    t.ok(reused_reads > 0, "reads reuse connections")
  end)
end

t.test("an h2 server closing its connections mid-burst (GOAWAY) receives every write once", function()
  local st = burst(h2_short, 60, 12, function(i) return i % 3 == 0 and "POST" or "GET" end,
    function(i) return "/short?i=" .. i end)
  local answered = 0
  for i = 1, 60 do
    if st[i] == 200 then answered = answered + 1 end
  end
  local arrivals = {}
  for _, l in ipairs(served("/short", answered)) do
    if l.method == "POST" then arrivals[l.uri] = (arrivals[l.uri] or 0) + 1 end
  end
  for i = 3, 60, 3 do
    local uri = "/short?i=" .. i
    t.ok((arrivals[uri] or 0) <= 1, uri .. " arrived " .. tostring(arrivals[uri]) .. " times")
    if st[i] == 200 then t.eq(arrivals[uri], 1, uri .. " answered but not logged") end
  end
end)

t.run()
