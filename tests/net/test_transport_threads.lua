-- sg.http over the transport threads (runtime/curlmux.c), against tests/support/testserver:
-- requests cancelled at every point of their life give their handles back whole (the sanitizer
-- build runs this too), the per-host limit holds across threads, and the thread count is checked.
local t = require "testlib"
local sg = require "sg"

local base = assert(os.getenv("TEST_URL"), "run through with_testserver.sh")
local port = base:match(":(%d+)$")

t.test("400 requests, half cancelled at scattered points, leave every handle reusable", function()
  local rounds, cancelled, answered = 4, 0, 0
  for round = 1, rounds do
    local tasks = {}
    for i = 1, 100 do
      tasks[i] = sg.spawn(function()
        local res = assert(sg.http.request { url = base .. "/delay?ms=" .. (i % 7) * 3 .. "&id=" .. i, timeout = 20 })
        t.eq(sg.json.decode(res.body).id, tostring(i), "round " .. round .. " request " .. i)
        return true
      end)
    end
    -- cancel the even ones from 0 to 20 ms in: queued, on the wire, answered and not yet collected
    for i = 2, 100, 2 do
      if i % 10 == 0 then sg.sleep(0.002) end
      tasks[i]:cancel()
    end
    for i = 1, 100 do
      local ok, err = sg.wait(tasks[i])
      if i % 2 == 1 then
        t.ok(ok, "request " .. i .. " failed: " .. tostring(err))
        answered = answered + 1
      elseif not ok then
        cancelled = cancelled + 1
      end
    end
  end
  t.eq(answered, rounds * 50)
  t.ok(cancelled > 0, "no request was cancelled")
  t.eq(sg.http.in_flight(), 0)
  -- every pooled handle works for the next request
  local fns = {}
  for i = 1, 150 do fns[i] = function() return assert(sg.http.request { url = base .. "/delay?ms=1&id=" .. i }).status end end
  for i, status in ipairs(sg.all(fns)) do t.eq(status, 200, "request " .. i .. " after the cancels") end
end)

t.test("a request cancelled after it finished and before it ran again gives its handle back at once", function()
  -- the first of each pair to run cancels the other, which is then either waiting on the wire or
  -- finished and queued to run; either way its handle must come back without a collection
  collectgarbage("stop")
  for round = 1, 20 do
    local tasks = {}
    for i = 1, 20 do
      local me = i
      tasks[i] = sg.spawn(function()
        assert(sg.http.request { url = base .. "/delay?ms=0&id=" .. round .. "-" .. i })
        local other = tasks[me % 2 == 1 and me + 1 or me - 1]
        if other:status() ~= "done" then other:cancel() end
      end)
    end
    for i = 1, 20 do sg.wait(tasks[i]) end
    t.eq(sg.http.in_flight(), 0, "round " .. round .. ": requests left in flight")
  end
  collectgarbage("restart")
end)

t.test("a POST body the caller drops while it is sent goes out whole", function()
  local function body() return string.rep("sgrun-body ", 8 * 1024 * 1024 // 11) end
  local opts = { method = "POST", url = base .. "/echo", body = body(), timeout = 60 }
  local len = #opts.body
  local task = sg.spawn(sg.http.request, opts)
  sg.sleep(0) -- the task runs until its request is on the way
  t.eq(sg.http.in_flight(), 1)
  opts.body = nil
  -- overwrite what the collector frees with other bytes of the same size
  local filler = {}
  for i = 1, 4 do
    collectgarbage()
    filler[i] = string.rep("X", len - i)
  end
  local ok, res = sg.wait(task)
  t.eq(#filler, 4, "the filler is held until the request is over")
  t.ok(ok and res, "the request failed: " .. tostring(res))
  t.eq(#res.body, len)
  t.ok(res.body == body(), "the server received other bytes than the body")
end)

-- the connection each request went on, as the server numbers them
local function connection_of(path_host, max_connections)
  local res = assert(sg.http.request { url = "http://" .. path_host .. ":" .. port .. "/idle-close?s=30",
    resolve = { path_host .. ":" .. port .. ":127.0.0.1" }, max_connections = max_connections, timeout = 20 })
  return sg.json.decode(res.body).connection
end

for _, limit in ipairs { 1, 3 } do
  t.test("max_connections = " .. limit .. " holds across the transport threads", function()
    local host = "limit" .. limit .. ".test"
    local fns = {}
    for i = 1, 60 do fns[i] = function() return connection_of(host, limit) end end
    local seen, distinct = {}, 0
    for _, connection in ipairs(sg.all(fns)) do
      if not seen[connection] then
        seen[connection] = true
        distinct = distinct + 1
      end
    end
    t.ok(distinct <= limit, distinct .. " connections for a limit of " .. limit)
  end)
end

-- A host of its own: the idle connections earlier tests left to 127.0.0.1 would be reused, and
-- libcurl's limit is on connections it opens.
local function fresh_host(name)
  return "http://" .. name .. ":" .. port, { name .. ":" .. port .. ":127.0.0.1" }
end

t.test("a lowered max_connections holds for transfers already waiting", function()
  local url, resolve = fresh_host("lowered.test")
  assert(sg.http.request { url = base .. "/reset" })
  local fns = {}
  for i = 1, 20 do
    fns[i] = function()
      return assert(sg.http.request { url = url .. "/delay?ms=200&id=" .. i, resolve = resolve,
        max_connections = i < 20 and 4 or 1, timeout = 30 }).status
    end
  end
  sg.all(fns)
  local most = sg.json.decode(assert(sg.http.request { url = base .. "/stats" }).body).max_concurrent
  t.ok(most <= 4, most .. " requests at once with at most 4 connections allowed")
end)

t.test("with a free connection to the host, requests do not wait behind a held one", function()
  local url, resolve = fresh_host("held.test")
  local held_done = false
  local held = sg.spawn(function()
    local res = sg.http.request { url = url .. "/delay?ms=3000&id=held", resolve = resolve, max_connections = 2,
      timeout = 30 }
    held_done = true
    return res
  end)
  sg.sleep(0.05)
  local fns = {}
  for i = 1, 10 do
    fns[i] = function()
      return assert(sg.http.request { url = url .. "/delay?ms=5&id=" .. i, resolve = resolve, max_connections = 2 }).status
    end
  end
  for i, status in ipairs(sg.all(fns)) do t.eq(status, 200, "request " .. i) end
  -- ten 5 ms requests on the free connection end long before the held one's 3 s
  t.ok(not held_done, "the quick requests waited for the held one")
  held:cancel()
end)

t.test("a bad SGRUN_TRANSPORT_THREADS is refused with what to set", function()
  local sgrun = assert(arg[-1], "the interpreter's path")
  for _, value in ipairs { "0", "9", "two", "2x" } do
    local p = assert(io.popen("SGRUN_TRANSPORT_THREADS=" .. value .. " " .. sgrun
      .. " -e 'require \"sg\".http.in_flight()' 2>&1; echo \"exit=$?\""))
    local out = p:read("a")
    p:close()
    t.ok(out:find("SGRUN_TRANSPORT_THREADS must be a whole number from 1 to 8", 1, true), value .. ": " .. out)
    t.ok(not out:find("exit=0", 1, true), value .. " was taken: " .. out)
  end
end)

t.run()
