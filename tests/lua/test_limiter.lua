-- sg.limiter on its own (the behaviour against a limiting server is tests/sim/test_limiter).
local t = require "testlib"
local limiter = require "sg.limiter"
local task = require "sg.task"

t.test("a key that never meets a 429 keeps only about a window's request times", function()
  limiter.reset()
  local window = limiter.WINDOW
  limiter.WINDOW = 0.01 -- so that the test's time leaves many windows behind
  for round = 1, 20 do
    for _ = 1, 500 do
      limiter.acquire("gcore:acct")
      limiter.observe("gcore:acct", 200)
    end
    if round < 20 then task.sleep(0.02) end
  end
  limiter.WINDOW = window
  local sent, passed = limiter.kept("gcore:acct")
  -- 10,000 requests; at most twice the last window's 500 survive a prune
  t.ok(sent <= 1000, sent .. " sent times kept")
  t.ok(passed <= 1000, passed .. " success times kept")
  t.eq(limiter.rate("gcore:acct"), nil, "no limit was learned")
end)

t.test("a Retry-After of years holds a key for at most MAX_HOLD", function()
  limiter.reset()
  local now = task.now()
  limiter.observe("genesis:acct", 429, 999999999)
  local held = limiter.held_until("genesis:acct") - now
  t.ok(held > 0 and held <= limiter.MAX_HOLD + 1, "held " .. held .. " s")
end)

t.test("retry.run passes on a Retry-After cut to its policy's cap", function()
  limiter.reset()
  local retry = require "sg.retry"
  local policy = retry.policy { attempts = 1, retry_after_cap = 2 }
  local now = task.now()
  retry.run(policy, function()
    return { status = 429, headers = { ["retry-after"] = "999999999" }, body = "" }
  end, { idempotent = true, key = "genesis:capped" })
  local held = limiter.held_until("genesis:capped") - now
  t.ok(held > 0 and held <= 3, "held " .. held .. " s")
end)

t.run()
