-- The client-side rate limiter (sg.limiter) against the emulator's per-provider token bucket:
-- many concurrent calls with few attempts each all get through, because after the first 429s
-- the calls wait for their slot instead of spending attempts against the limit.
local t = require "testlib"
local sg = require "sg"
local limiter = require "sg.limiter"
local retry = require "sg.retry"

local SIM = assert(os.getenv("SGRUN_SIM_URL"), "run through with_sim.sh")

local function control(method, path, body)
  local res = assert(sg.http.request { method = method, url = SIM .. path,
    body = body and sg.json.encode(body), headers = { ["Content-Type"] = "application/json" } })
  assert(res.status < 300, res.body)
  return res.body ~= "" and sg.json.decode(res.body) or nil
end

t.test("120 concurrent calls with 3 attempts each against a 20 requests/s limit all succeed", function()
  control("POST", "/_sim/reset")
  control("PUT", "/_sim/knobs", { rate_limit = 20, error_rate = 0, drop_rate = 0 })
  limiter.reset()
  local gcore = sg.connect("gcore", { retry = { attempts = 3 } })
  local calls = {}
  for i = 1, 120 do calls[i] = function() return gcore:list_security_groups() ~= nil end end
  local results = sg.all(calls, { limit = 120 })
  local ok = 0
  for _, r in ipairs(results) do if r then ok = ok + 1 end end
  t.eq(ok, 120)
  local limited = 0
  for _, e in ipairs(control("GET", "/_sim/log").requests) do
    if e.status == 429 then limited = limited + 1 end
  end
  t.ok(limited > 0, "the emulator did limit")
  control("PUT", "/_sim/knobs", { rate_limit = 0 })
end)

t.test("Retry-After is read from the error body where the provider puts it", function()
  local resp = { status = 429, headers = {}, body = '{"error":"Too Many Requests","retryAfter":7}' }
  t.eq(select(3, retry.classify(resp)), 7)
  resp.body = '{"error":"rate-limited","retry_after":3}'
  t.eq(select(3, retry.classify(resp)), 3)
  resp.headers["retry-after"] = "2"
  t.eq(select(3, retry.classify(resp)), 2, "the header wins")
end)

t.test("the limiter slows down on 429 and recovers step by step", function()
  limiter.reset()
  local key = "test"
  for _ = 1, 10 do limiter.acquire(key); limiter.observe(key, 200) end
  t.eq(limiter.rate(key), nil, "no limit until a 429")
  limiter.observe(key, 429)
  local cut = limiter.rate(key)
  t.ok(cut ~= nil and cut >= limiter.MIN_RATE, "a limit is set")
  limiter.observe(key, 200)
  t.ok(limiter.rate(key) > cut, "a success raises it a step")
end)

t.run()
