-- SIGINT/SIGTERM while roll-outs run. The first signal is Lua's to handle: no new write starts,
-- what is in flight settles by the mode, and the report says so; a second one stops the run at
-- once.
local signals = require "_sg.task"

local M = {}

-- The roll-outs running in this process (sg.fleet runs many at once), by their signal handlers.
-- The signal state is the process's: the first to start makes the first SIGINT/SIGTERM Lua's
-- to handle, and the last to end takes the signal, so that none of the others misses it.
local running = {}

-- Called from the loop outside any task (so nothing here waits) for each signal.
local function running_signal(sig, count)
  if count == 1 then
    require("_sg.log").write("warn", "rollout_interrupted", "stopping: no new write starts; the writes " ..
      "in flight finish, then each target is kept or restored by the mode (" .. sig ..
      " again stops at once)", { signal = sig })
  end
  for _, handler in ipairs(running) do handler(count) end
end

---The signal that interrupted the roll-outs running, or nil.
---@return string?
function M.signal() return signals.signal() end

---Counts a roll-out in as running: `handler(count)` is called for each signal until M.stop.
---@param handler fun(count: integer) called outside any task: it must not wait
function M.start(handler)
  running[#running + 1] = handler
  if #running == 1 then
    signals.graceful(true)
    signals.on_signal(running_signal)
  end
end

---Counts the roll-out of `handler` out.
---@param handler fun(count: integer) as given to M.start
---@return string? signal the signal that interrupted the roll-out, or nil
function M.stop(handler)
  for i, h in ipairs(running) do
    if h == handler then table.remove(running, i) break end
  end
  if #running > 0 then return signals.signal() end
  signals.graceful(false)
  signals.on_signal(nil)
  -- taken: the playbook decides how to end (exit 130/143), after printing the report
  return signals.signal(true)
end

return M
