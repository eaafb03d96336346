-- sg.retry: the one retry policy of every provider call: 429, 5xx (but 501) and connection
-- failures are retried with capped exponential backoff and jitter, Retry-After (seconds or an
-- HTTP date) is honoured up to a cap, and the number of attempts is bounded.
--
-- A non-idempotent call (a create) whose earlier attempt may have reached the server (a 5xx, a
-- timeout, a connection closed after sending) is never blindly re-sent: the caller's reconcile
-- hook re-reads and matches first, and only a confirmed absence allows the re-send. Without a
-- hook, the call stops with an error saying it may have been applied.
local limiter = require "sg.limiter"
local optcheck = require "sg.optcheck"
local task = require "sg.task"

local M = {}

---@class sg.RetryPolicy
---@field attempts integer total attempts, first included
---@field base number first backoff, seconds
---@field cap number longest backoff, seconds
---@field retry_after_cap number longest wait a Retry-After may impose, seconds
---@field jitter boolean

M.DEFAULT = { attempts = 5, base = 0.2, cap = 8, retry_after_cap = 60, jitter = true }

---A policy: the defaults overridden by the given fields (unknown fields are a mistake).
---@param opts table|nil
---@return sg.RetryPolicy
function M.policy(opts)
  local p, known = {}, {}
  for k, v in pairs(M.DEFAULT) do p[k], known[#known + 1] = v, k end
  optcheck.check("retry", opts, known, 3)
  for k, v in pairs(opts or {}) do
    if type(v) ~= type(M.DEFAULT[k]) then
      error(string.format("retry: option '%s' must be a %s", k, type(M.DEFAULT[k])), 3)
    end
    p[k] = v
  end
  if p.attempts < 1 then error("retry: attempts must be at least 1", 3) end
  return p
end

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8, Sep = 9,
  Oct = 10, Nov = 11, Dec = 12 }

-- Days from 1970-01-01 to y-m-d (proleptic Gregorian): os.time() would apply the local zone.
local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

---Seconds to wait from a Retry-After value: delta-seconds or an IMF-fixdate ("Wed, 21 Oct 2015
---07:28:00 GMT"). nil when absent or unreadable.
---@param value string|nil
---@param now number|nil epoch seconds (default os.time())
---@return number|nil
function M.parse_retry_after(value, now)
  if type(value) ~= "string" then return nil end
  value = value:match("^%s*(.-)%s*$")
  if value:match("^%d+$") then return tonumber(value) end
  local d, mon, y, hh, mm, ss = value:match("^%a+,%s*(%d+)%s+(%a+)%s+(%d+)%s+(%d+):(%d+):(%d+)%s+GMT$")
  if not d or not MONTHS[mon] then return nil end
  local epoch = days_from_civil(tonumber(y), MONTHS[mon], tonumber(d)) * 86400
      + tonumber(hh) * 3600 + tonumber(mm) * 60 + tonumber(ss)
  return math.max(0, epoch - (now or os.time()))
end

-- A roll-out's per-call timeout (opts.timeout), in force while it runs.
local call_timeout

---The timeout of one HTTP attempt: the roll-out's while one runs, else the connection's.
---@param default number the connection's timeout
---@return number
function M.call_timeout(default)
  return call_timeout or default
end

---Runs fn() with every provider call's timeout set to `seconds` (nil: unchanged).
---@async
---@param seconds number|nil
---@param fn function
function M.with_call_timeout(seconds, fn)
  if seconds == nil then return fn() end
  local saved = call_timeout
  call_timeout = seconds
  local ok, res = pcall(fn)
  call_timeout = saved
  if not ok then error(res, 0) end
  return res
end

---Backoff before attempt n+1 after attempt n failed (n >= 1).
---@param p sg.RetryPolicy
---@param n integer
---@return number
function M.backoff(p, n)
  local d = math.min(p.cap, p.base * 2 ^ (n - 1))
  -- "equal jitter": never less than half the step, so a burst of clients spreads out without
  -- one of them retrying immediately
  if p.jitter then d = d / 2 + math.random() * d / 2 end
  return d
end

-- Transport failures: which are worth retrying, and which may have reached the server.
local TRANSPORT = {
  connect = { retry = true, delivered = false },
  resolve = { retry = true, delivered = false },
  timeout = { retry = true, delivered = true },
  closed = { retry = true, delivered = true },
  curl = { retry = true, delivered = true },
}

-- Retry-After where a provider puts it in the 429 body instead of (or besides) the header:
-- {"retry_after": n} (Exoscale's rate-limited schema), {"retryAfter": n} (HostUp v1).
local function body_retry_after(resp)
  local body = resp.body
  if type(body) ~= "string" or not body:find("etry", 1, true) then return nil end
  local ok, doc = pcall(require("sg.json").decode, body)
  if not ok or type(doc) ~= "table" then return nil end
  local v = doc.retry_after or doc.retryAfter
  return type(v) == "number" and v >= 0 and v or nil
end

---Seconds a response asks the caller to wait before sending again: its Retry-After header, else
---the body's field where a provider puts it there. nil when it says nothing readable.
---@param resp table {status, headers, body}
---@return number|nil
function M.retry_after(resp)
  return M.parse_retry_after(resp.headers and resp.headers["retry-after"]) or body_retry_after(resp)
end

---Classifies one attempt's outcome.
---@return boolean retry, boolean maybe_delivered, number|nil retry_after
function M.classify(resp, code)
  if resp then
    local s = resp.status
    if s == 429 then return true, false, M.retry_after(resp) end
    if s >= 500 and s ~= 501 then
      -- 503 may carry Retry-After too; any 5xx may have been partly applied
      return true, true, M.retry_after(resp)
    end
    return false, false, nil
  end
  local t = TRANSPORT[code or ""]
  if t then return t.retry, t.delivered, nil end
  return false, false, nil
end

---Runs send(attempt) under the policy.
---opts.idempotent: re-sending is harmless. Otherwise opts.reconcile() is called before any
---re-send that follows a possibly delivered attempt; it returns found (boolean) and a value, and
---raises when it cannot tell (then nothing is re-sent).
---@async
---@param p sg.RetryPolicy
---@param send fun(attempt: integer): table|nil, string|nil, string|nil
---opts.key: the provider and account, for the rate limiter (sg.limiter); nil: not limited.
---@param opts {idempotent: boolean, reconcile: (fun(): boolean, any)|nil, on_retry: function|nil, key: string|nil}
---@return table outcome {resp=, err=, code=, attempts=, recovered=, value=, unsafe=}
function M.run(p, send, opts)
  local maybe_delivered = false
  local last
  for attempt = 1, p.attempts do
    if attempt > 1 and maybe_delivered and not opts.idempotent then
      if not opts.reconcile then
        last.unsafe = true
        return last
      end
      -- a re-read that fails tells nothing: not re-sending is the only safe choice then
      local ok, found, value = pcall(opts.reconcile)
      if not ok then
        last.unsafe = true
        return last
      end
      if found then return { recovered = true, value = value, attempts = attempt - 1 } end
    end
    limiter.acquire(opts.key)
    local resp, err, code = send(attempt)
    last = { resp = resp, err = err, code = code, attempts = attempt, maybe_delivered = maybe_delivered }
    local retry, delivered, retry_after = M.classify(resp, code)
    limiter.observe(opts.key, resp and resp.status, retry_after and math.min(retry_after, p.retry_after_cap))
    if not retry or attempt == p.attempts then return last end
    maybe_delivered = maybe_delivered or delivered
    last.maybe_delivered = maybe_delivered
    local wait = retry_after and math.min(retry_after, p.retry_after_cap) or M.backoff(p, attempt)
    if opts.on_retry then opts.on_retry(attempt, wait, resp, code) end
    task.sleep(wait)
  end
  return last
end

return M
