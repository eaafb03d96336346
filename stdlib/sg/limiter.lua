-- sg.limiter: a client-side rate limiter per provider and account, learned from the server.
--
-- No limit is assumed until the server answers 429. Then the key's rate is set to what the server
-- let through over the last second (at most once a second; without any success, half the rate),
-- and every request of that key waits for its slot; a Retry-After holds every request of the key
-- until it has passed. Waiting for a slot costs no attempt. Each success raises the rate a little
-- (additive increase), so the pace recovers gradually, and once it is well above what is being
-- asked for, the limit is dropped again. Without this, many concurrent callers burn their
-- attempts against the limit together and some give up.
local task = require "sg.task"

local M = {}

M.MIN_RATE = 0.5   -- requests per second: never slower than this
M.WINDOW = 1       -- seconds over which the sending rate is measured
M.FREE_AFTER = 4   -- drop the limit when it is this many times what was sent over the window
M.MAX_HOLD = 60    -- seconds: the longest a Retry-After holds a key (a server may ask for years)

---@class sg.LimiterState
---@field rate number? requests per second; nil: no limit known
---@field next_slot number when the next request may start (task.now() clock)
---@field hold_until number Retry-After: nobody of this key starts before this
---@field sent number[] start times within the window
---@field passed number[] times of successes within the window
---@field cut_at number when the rate was last lowered
---@field pruned_at table<string, integer> per list: its length after it was last pruned

local states = {}

local function state(key)
  local st = states[key]
  if not st then
    st = { next_slot = 0, hold_until = 0, sent = {}, passed = {}, cut_at = -math.huge,
      pruned_at = { sent = 0, passed = 0 } }
    states[key] = st
  end
  return st
end

-- How many of the times in st[field] fall within the window (older ones are dropped).
local function recent(st, field, now)
  local keep = {}
  for _, t in ipairs(st[field]) do
    if now - t < M.WINDOW then keep[#keep + 1] = t end
  end
  st[field] = keep
  st.pruned_at[field] = #keep
  return #keep
end

-- Appends a time to st[field]. Once the list has doubled since it was last pruned, the times
-- older than the window go: a key that never meets a 429 would otherwise keep every request's
-- time for as long as the process lives (a scheduled job, a REPL), and pruning only on doubling
-- keeps the cost per request constant.
local function append(st, field, now)
  local list = st[field]
  list[#list + 1] = now
  if #list >= 2 * math.max(32, st.pruned_at[field]) then recent(st, field, now) end
end

---Waits until a request of `key` may start.
---@async
---@param key string|nil provider and account (nil: not limited)
function M.acquire(key)
  if key == nil then return end
  local st = state(key)
  while true do
    local now = task.now()
    if st.hold_until > now then
      task.sleep(st.hold_until - now)
    elseif st.rate then
      local slot = math.max(now, st.next_slot)
      st.next_slot = slot + 1 / st.rate
      if slot > now then task.sleep(slot - now) end
      -- a Retry-After that arrived while this one slept holds it too
      if st.hold_until <= task.now() then break end
    else
      break
    end
  end
  append(st, "sent", task.now())
end

---Learns from one response of `key`: status 429 slows the key down (retry_after: seconds the
---server asked for), anything else lets it recover a step.
---@param key string|nil
---@param status integer|nil nil: no response (transport failure), which teaches nothing
---@param retry_after number|nil
function M.observe(key, status, retry_after)
  if key == nil or status == nil then return end
  local st = state(key)
  local now = task.now()
  if status == 429 then
    local passed = recent(st, "passed", now) / M.WINDOW
    local target = passed > 0 and passed or (st.rate or recent(st, "sent", now) / M.WINDOW) / 2
    if st.rate == nil or now - st.cut_at >= M.WINDOW or target < st.rate and passed > 0 then
      st.rate = math.max(M.MIN_RATE, math.min(st.rate or math.huge, target))
      st.cut_at = now
    end
    if retry_after and retry_after > 0 then
      st.hold_until = math.max(st.hold_until, now + math.min(retry_after, M.MAX_HOLD))
    end
  elseif status < 500 then
    append(st, "passed", now)
    if st.rate then
      st.rate = st.rate + 1 / st.rate
      if st.rate > M.FREE_AFTER * math.max(1, recent(st, "sent", now) / M.WINDOW) then st.rate = nil end
    end
  end
end

---When a key's Retry-After hold ends (task.now() time; in the past when there is none), for tests.
---@param key string
---@return number
function M.held_until(key)
  return state(key).hold_until
end

---The learned rate of a key (nil: unlimited), for reports and tests.
---@param key string
---@return number|nil
function M.rate(key)
  return states[key] and states[key].rate
end

---How many request times a key keeps (sent, passed), for tests.
---@param key string
---@return integer sent, integer passed
function M.kept(key)
  local st = states[key]
  if not st then return 0, 0 end
  return #st.sent, #st.passed
end

---Forgets everything learned (tests).
function M.reset()
  states = {}
end

return M
