-- The emulator core over real HTTP: routing by prefix, the /_sim/ control endpoints (knobs,
-- state dump/load/reset, request log), latency, injected faults in each provider's own error
-- shape (429 with Retry-After, 5xx, dropped connections, 413, malformed JSON), determinism
-- under a seed, and concurrency shown from the server's own request log.
local t = require "testlib"
local http = require "_sg.http"
local cjson = require "cjson"
local task = require "_sg.task"

local BASE = assert(os.getenv("SGRUN_SIM_URL"), "SGRUN_SIM_URL is not set (run through with_sim.sh)")
local GCORE = assert(os.getenv("SGRUN_GCORE_URL"))
local GCORE_AUTH = { Authorization = "APIKey " .. assert(os.getenv("GCORE_API_KEY")), ["Content-Type"] = "application/json" }
local GLIST = GCORE .. "/cloud/v1/securitygroups/" .. os.getenv("GCORE_CLOUD_PROJECT_ID") .. "/" .. os.getenv("GCORE_CLOUD_REGION_ID")

local function req(method, url, body, headers)
  if type(body) == "table" then body = cjson.encode(body) end
  local r, err, code = http.request { method = method, url = url, body = body,
    headers = headers or { ["Content-Type"] = "application/json" }, timeout = 10 }
  if not r then return nil, err, code end
  if r.body ~= "" then r.json = cjson.decode(r.body) end
  return r
end

local function control(method, path, body)
  return assert(req(method, BASE .. path, body))
end

local function knobs(k)
  local r = control("PUT", "/_sim/knobs", k)
  t.eq(r.status, 200, r.body)
  return r.json
end

local DEFAULTS = { latency_ms = 0, jitter_ms = 0, task_duration_ms = 200, error_rate = 0, drop_rate = 0,
  task_error_rate = 0, rate_limit = 0 }

t.test("GET /_sim/ lists the providers and their prefixes", function()
  local r = control("GET", "/_sim/")
  t.eq(r.status, 200)
  t.eq(r.json.providers.exoscale, "/exoscale/v2")
  t.eq(r.json.providers.gcore, "/gcore")
end)

t.test("knobs: GET, PUT partial changes, refuse unknown knobs and bad values", function()
  local k = knobs(DEFAULTS)
  t.eq(k.latency_ms, 0)
  t.eq(control("GET", "/_sim/knobs").json.task_duration_ms, 200)
  k = knobs({ faults = "5xx=0.25,drop=0.5" })
  t.eq(k.error_rate, 0.25)
  t.eq(k.drop_rate, 0.5)
  t.eq(control("PUT", "/_sim/knobs", { bogus = 1 }).status, 400)
  t.eq(control("PUT", "/_sim/knobs", { error_rate = 2 }).status, 400)
  t.eq(control("PUT", "/_sim/knobs", { faults = "explode=1" }).status, 400)
  t.eq(control("PUT", "/_sim/knobs", "{").status, 400)
  t.eq(control("GET", "/_sim/knobs").json.error_rate, 0.25, "a refused change changes nothing")
  knobs(DEFAULTS)
  t.eq(control("GET", "/_sim/nothing").status, 404)
end)

t.test("unknown prefix: 404 naming the served prefixes", function()
  local r = assert(req("GET", BASE .. "/aws/v1/things"))
  t.eq(r.status, 404)
  t.eq(r.json.providers.gcore, "/gcore")
  -- a prefix must end at a path segment boundary
  t.eq(assert(req("GET", BASE .. "/gcorex/cloud")).status, 404)
end)

t.test("request log: seq, provider, method, path, query, status, t_start, t_end", function()
  control("DELETE", "/_sim/log")
  local r = assert(req("GET", GLIST .. "?limit=5", nil, GCORE_AUTH))
  t.eq(r.status, 200)
  assert(req("GET", GLIST, nil, {}))
  local log = control("GET", "/_sim/log").json
  t.eq(log.count, 2)
  local e = log.requests[1]
  t.eq(e.provider, "gcore")
  t.eq(e.method, "GET")
  t.eq(e.path, "/gcore/cloud/v1/securitygroups/1/76")
  t.eq(e.query, "limit=5")
  t.eq(e.status, 200)
  t.eq(log.requests[2].status, 401)
  t.ok(e.t_end >= e.t_start and math.abs(e.t_start - os.time()) < 60)
  t.ok(log.requests[2].seq > e.seq)
  local since = control("GET", "/_sim/log?since=" .. math.tointeger(e.seq)).json
  t.eq(since.count, 1)
  t.eq(control("GET", "/_sim/log?provider=exoscale").json.count, 0)
  t.eq(control("DELETE", "/_sim/log").json.cleared, 2)
end)

t.test("latency and jitter are added to provider responses, not to control ones", function()
  knobs({ latency_ms = 150, jitter_ms = 50 })
  local t0 = task.now()
  assert(req("GET", GLIST, nil, GCORE_AUTH))
  -- a lower bound only: the emulator never answers before its latency; a loaded machine may be slower
  t.ok(task.now() - t0 >= 0.15, "answered before the latency")
  -- a control call made while a delayed provider call is open answers first
  knobs({ latency_ms = 1000, jitter_ms = 0 })
  local order = {}
  local slow = task.spawn(function()
    assert(req("GET", GLIST, nil, GCORE_AUTH))
    order[#order + 1] = "provider"
  end)
  task.sleep(0.05)
  control("GET", "/_sim/knobs")
  order[#order + 1] = "control"
  task.wait(slow)
  t.eq(order, { "control", "provider" })
  knobs(DEFAULTS)
end)

t.test("rate limit: 429 with Retry-After in the provider's error shape", function()
  knobs({ rate_limit = 3 })
  local statuses, limited = {}, nil
  for i = 1, 6 do
    local r = assert(req("GET", GLIST, nil, GCORE_AUTH))
    statuses[i] = r.status
    if r.status == 429 then limited = r end
  end
  t.eq(statuses[1], 200)
  t.ok(limited, "some request was limited")
  t.ok(tonumber(limited.headers["retry-after"]) >= 1, "Retry-After in seconds")
  t.ok(limited.json.exception_class and limited.json.message and limited.json.request_id, "Gcore's error shape")
  local exo = assert(req("GET", os.getenv("SGRUN_EXOSCALE_URL") .. "/zone"))
  t.eq(exo.status, 200, "buckets are per provider")
  knobs(DEFAULTS)
end)

t.test("5xx injection uses each provider's error shape", function()
  knobs({ error_rate = 1 })
  local r = assert(req("GET", GLIST, nil, GCORE_AUTH))
  t.ok(r.status >= 500 and r.status <= 503, tostring(r.status))
  t.ok(r.json.exception_class and r.json.message)
  r = assert(req("GET", os.getenv("SGRUN_EXOSCALE_URL") .. "/zone"))
  t.ok(r.status >= 500)
  t.ok(type(r.json.message) == "string" and r.json.exception_class == nil, "Exoscale's {message}")
  knobs(DEFAULTS)
end)

t.test("dropped connections: the client sees a transport error, the log says dropped", function()
  control("DELETE", "/_sim/log")
  knobs({ drop_rate = 1 })
  local r, err = req("GET", GLIST, nil, GCORE_AUTH)
  t.eq(r, nil)
  t.ok(err, "an error message")
  knobs(DEFAULTS)
  local log = control("GET", "/_sim/log").json.requests
  t.eq(log[1].dropped, true)
  t.eq(log[1].status, 0)
end)

t.test("malformed JSON and oversized bodies: the provider's shape, never a crash", function()
  local r = assert(req("POST", GCORE .. "/cloud/v2/security_groups/1/76", '{"name": [', GCORE_AUTH))
  t.eq(r.status, 400)
  t.eq(r.json.exception_class, "ValidationError")
  r = assert(req("POST", GCORE .. "/cloud/v2/security_groups/1/76", string.rep("x", 2 * 1024 * 1024), GCORE_AUTH))
  t.eq(r.status, 413)
  t.ok(r.json.exception_class and r.json.message)
  for _, body in ipairs({ "\0\1\2", "{}}", '{"a":' .. string.rep("[", 5000), "null", "1e999", '"\\ud800"' }) do
    r = assert(req("POST", GCORE .. "/cloud/v2/security_groups/1/76", body, GCORE_AUTH))
    t.ok(r.status == 400, "status " .. r.status .. " for " .. body:sub(1, 20))
  end
  t.eq(assert(req("GET", GLIST, nil, GCORE_AUTH)).status, 200, "still serving")
end)

t.test("state: dump, load and reset", function()
  control("POST", "/_sim/reset")
  local dump = control("GET", "/_sim/state").json
  t.eq(dump.format, "sgrun.sim-state/1")
  t.ok(dump.providers.exoscale and dump.providers.gcore)
  local before = assert(req("GET", GLIST .. "?limit=100", nil, GCORE_AUTH)).json.count
  local r = assert(req("POST", GCORE .. "/cloud/v1/securitygroups/1/76/" ..
    assert(req("GET", GLIST .. "?name=web", nil, GCORE_AUTH)).json.results[1].id .. "/copy", { name = "extra" }, GCORE_AUTH))
  t.eq(r.status, 200)
  t.eq(assert(req("GET", GLIST .. "?limit=100", nil, GCORE_AUTH)).json.count, before + 1)
  t.eq(control("POST", "/_sim/load", { providers = { gcore = dump.providers.gcore } }).status, 200)
  t.eq(assert(req("GET", GLIST .. "?limit=100", nil, GCORE_AUTH)).json.count, before, "the dump came back")
  -- the loaded state still works for mutations (numbers came back through JSON as floats)
  local web = assert(req("GET", GLIST .. "?name=web", nil, GCORE_AUTH)).json.results[1]
  r = assert(req("POST", GCORE .. "/cloud/v2/security_groups/1/76/" .. web.id .. "/rules",
    { direction = "ingress", protocol = "tcp", port_range_min = 22, port_range_max = 22,
      remote_ip_prefix = "0.0.0.0/0" }, GCORE_AUTH))
  t.eq(r.status, 409, "duplicate detection works on loaded state")
  t.eq(control("POST", "/_sim/load", { providers = { nope = {} } }).status, 400)
  t.eq(control("POST", "/_sim/load", { something = 1 }).status, 400)
  t.eq(control("POST", "/_sim/reset").status, 200)
end)

t.test("a seed makes ids repeat after a reset", function()
  knobs({ seed = 1234 })
  control("POST", "/_sim/reset")
  local a = control("GET", "/_sim/state").json.providers.gcore.group_order
  control("POST", "/_sim/reset")
  local b = control("GET", "/_sim/state").json.providers.gcore.group_order
  t.eq(a, b)
  knobs({ seed = 99 })
  control("POST", "/_sim/reset")
  local c = control("GET", "/_sim/state").json.providers.gcore.group_order
  t.ok(c[1] ~= a[1])
end)

-- Concurrency is asserted by what the emulator saw (requests open at once), never by wall time:
-- bench/ measures time.
t.test("concurrency: 500 concurrent requests are in flight at the server at once", function()
  knobs({ latency_ms = 1000 })
  control("DELETE", "/_sim/log")
  local n, ok = 500, 0
  local tasks = {}
  for i = 1, n do
    tasks[i] = task.spawn(function()
      -- a generous timeout: a loaded machine (sanitizers) may take long to serve 500 at once
      local r = http.request { method = "GET", url = BASE .. "/exoscale/v2/zone", timeout = 120 }
      if r and r.status == 200 then ok = ok + 1 end
    end)
  end
  for _, tk in ipairs(tasks) do task.wait(tk) end
  knobs(DEFAULTS)
  t.eq(ok, n)
  local log = control("GET", "/_sim/log").json
  t.eq(#log.requests, n)
  print(string.format("concurrency: %d requests, at most %d in flight at the server", n, log.max_in_flight))
  t.ok(log.max_in_flight > 1, "requests overlapped at the server: " .. log.max_in_flight)
end)

t.test("kill hook: the N-th write SIGKILLs the armed pid; bad arguments refused", function()
  for _, body in ipairs({ {}, { pid = 1, writes = 1, when = "before" }, { pid = 99999, writes = 0, when = "after" },
    { pid = 99999, writes = 1, when = "later" }, { pid = "x", writes = 1, when = "before" } }) do
    t.eq(control("PUT", "/_sim/kill", body).status, 400, cjson.encode(body))
  end
  local p = assert(io.popen("sleep 30 >/dev/null 2>&1 & echo $!"))
  local pid = assert(tonumber(p:read("l")))
  p:close()
  t.eq(control("PUT", "/_sim/kill", { pid = pid, writes = 2, when = "before" }).json.armed, true)
  -- reads do not count; the first write does not reach the count
  assert(req("GET", GLIST, nil, GCORE_AUTH))
  assert(req("POST", GCORE .. "/cloud/v2/security_groups/1/76", "{}", GCORE_AUTH))
  t.eq(control("GET", "/_sim/kill").json, { armed = true, fired = false, seen = 1 })
  assert(req("POST", GCORE .. "/cloud/v2/security_groups/1/76", "{}", GCORE_AUTH))
  t.eq(control("GET", "/_sim/kill").json, { armed = false, fired = true, seen = 2 })
  -- the signal is sent; the process ends as soon as the kernel schedules it (bounded wait), and
  -- as its parent shell is gone it may linger as a zombie
  local stat
  for _ = 1, 200 do
    local f = io.open("/proc/" .. pid .. "/stat")
    stat = f and f:read("a") or ""
    if f then f:close() end
    if stat == "" or stat:match("^%d+ %b() [ZX]") then break end
    task.sleep(0.05)
  end
  t.ok(stat == "" or stat:match("^%d+ %b() [ZX]"), "the armed process is gone: " .. stat)
  t.eq(control("DELETE", "/_sim/kill").json.armed, false)
end)

t.run()
