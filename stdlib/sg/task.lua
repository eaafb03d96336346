-- sg.task: concurrency helpers over the scheduler's primitives. Every function that waits must
-- run inside a task (a playbook's main chunk is one).
local core = require "_sg.task"

local M = {}

---Starts fn(...) as a new task and returns its handle (`t:wait()`, `t:cancel()`, `t:status()`).
---@param fn function
---@return userdata task
M.spawn = core.spawn

---Waits for a task: true and its results, false and its error (and traceback), or nil and
---"timeout" when `timeout` seconds pass first.
---@async
---@param task userdata
---@param timeout? number
M.wait = core.wait

---Cancels a task and its children; whatever they wait on is released.
M.cancel = core.cancel

---Pauses the calling task.
---@async
---@param seconds number
M.sleep = core.sleep

---Seconds on a monotonic clock.
---@return number
M.now = core.now

---The running task's context (nil outside a task or when none was set); context(value) sets it.
---Tasks it spawns start with the same context.
---@param value any?
---@return any
M.context = core.context

---@class sg.TaskGuard
---@field enter fun(kind: "write"|"wait", what: string) called before; raises to refuse the call
---@field leave fun(kind: "write"|"wait", ok: boolean) called after, however it ended
---@field started fun(handle: table)? called when a write started async work at the provider that
---goes on whether or not anybody waits for it; `handle` (plain data) lets conn:follow wait for it
---from another process

---Runs fn(...) under the guard of the running task's context ({guard = sg.TaskGuard}), when it
---has one: sg.rollout's guard refuses new provider writes once the roll-out is interrupted,
---counts what is in flight and shows progress. Without a guard, just fn(...).
---@async
---@param kind "write"|"wait"
---@param what string the call, for messages
---@param fn function
function M.guarded(kind, what, fn, ...)
  local ctx = core.context()
  local guard = type(ctx) == "table" and ctx.guard
  if not guard then return fn(...) end
  guard.enter(kind, what)
  local out = table.pack(pcall(fn, ...))
  guard.leave(kind, out[1])
  if not out[1] then error(out[2], 0) end
  return table.unpack(out, 2, out.n)
end

---Tells the running task's guard (when it has a `started`) of async work a write started at the
---provider: sg.rollout journals it, so that a run taking over from a killed one waits for it.
---@param handle table plain data, as conn:follow takes it
function M.started(handle)
  local ctx = core.context()
  local guard = type(ctx) == "table" and ctx.guard
  if guard and guard.started then guard.started(handle) end
end

-- Wraps a child's error so the waiter sees where it happened.
local function with_traceback(err)
  if type(err) == "string" then return debug.traceback(err, 2) end
  return err
end

---Runs functions concurrently and returns the first result of each, in order. Call as
---`sg.all(f1, f2, ...)` (results returned as values) or `sg.all(list, {limit = n})` (results
---returned as a list; at most n run at once). If one fails, the others are cancelled and its
---error is raised.
---@async
---@return ...
function M.all(first, ...)
  local fns, opts, as_list
  if type(first) == "table" then
    fns, opts, as_list = first, (...) or {}, true
  else
    fns = table.pack(first, ...)
    if type(fns[fns.n]) == "table" then
      opts = fns[fns.n]
      fns.n = fns.n - 1
    end
  end
  local n = fns.n or #fns
  require("sg.optcheck").check("sg.all", opts, { "limit" }, 2)
  opts = opts or {}
  for i = 1, n do
    if type(fns[i]) ~= "function" then
      error(string.format("sg.all: argument %d is a %s, not a function", i, type(fns[i])), 2)
    end
  end
  local limit = opts.limit or n
  if math.type(limit) ~= "integer" or limit < 1 then
    error("sg.all: limit must be a positive integer", 2)
  end

  local results, workers = {}, {}
  local next_index, failure = 0, nil
  ---@async
  local function worker(me)
    while not failure do
      next_index = next_index + 1
      local i = next_index
      if i > n then return end
      local ok, value = xpcall(fns[i], with_traceback)
      if not ok then
        failure = failure or value
        for _, w in ipairs(workers) do
          if w ~= me then core.cancel(w) end
        end
        return
      end
      results[i] = value
    end
  end
  for w = 1, math.min(limit, n) do
    -- the handle is stored before the worker first runs: spawn only queues it
    workers[w] = core.spawn(
      ---@async
      function() worker(workers[w]) end)
  end
  for _, w in ipairs(workers) do core.wait(w) end
  if failure then error(failure, 0) end
  if as_list then return results end
  return table.unpack(results, 1, n)
end

---Runs fn(...) with a deadline: its results, or nil, a message and "timeout" when `seconds`
---pass first (fn is then cancelled, with any requests it has in flight). fn's errors are raised.
---@async
---@param seconds number
---@param fn function
function M.timeout(seconds, fn, ...)
  if type(seconds) ~= "number" or seconds < 0 then
    error("sg.timeout: seconds must be a number >= 0", 2)
  end
  local child = core.spawn(
  ---@async
  function(...)
    return table.pack(xpcall(fn, with_traceback, ...))
  end, ...)
  local ok, packed = core.wait(child, seconds)
  if ok == nil then
    core.cancel(child)
    return nil, string.format("timed out after %g s", seconds), "timeout"
  end
  if not ok then error(packed, 0) end
  if not packed[1] then error(packed[2], 0) end
  return table.unpack(packed, 2, packed.n)
end

return M
