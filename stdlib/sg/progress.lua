-- sg.progress: what a roll-out is doing while it runs, from sg.rollout's on_progress events.
-- On a terminal: one line per target, redrawn in place (reading, applying 3/7 writes, waiting for
-- the provider's task, ...), at most every REDRAW seconds unless a target changes step.
-- Under --log-format json: one log event per target step (not per write or poll), so a
-- scheduler's log shows progress.
-- Otherwise nothing: plain logs are not flooded, and the report follows at the end anyway.
local group_text = require("sg.plan").group_text
local task = require "sg.task"

local M = {}

M.REDRAW = 0.1 -- seconds between redraws for mere counts (3/7 -> 4/7)

local STEP_TEXT = { reading = "reading", planning = "planning", applying = "applying",
  waiting = "waiting for the provider's task", verifying = "verifying", restoring = "restoring",
  done = "done" }

local function describe(e)
  local text = STEP_TEXT[e.step] or tostring(e.step)
  if e.step == "applying" and e.total then text = string.format("applying %d/%d writes", e.done, e.total)
  elseif e.step == "waiting" and e.total then text = string.format("%s (%d/%d writes)", text, e.done, e.total)
  elseif e.done and e.total then text = string.format("%s %d/%d", text, e.done, e.total) end
  if e.step == "done" and e.status then text = e.status:gsub("_", " ") end
  return text
end

-- The terminal view: a block of lines, one per target in target order, rewritten in place.
local function terminal(stream)
  local lines, steps, drawn, last = {}, {}, 0, -math.huge
  return function(e)
    if e == nil then -- something else was written below the block: start a new one
      lines, steps, drawn = {}, {}, 0
      return
    end
    lines[e.target] = string.format("  %-9s %-22s %s", e.provider, group_text(e.group), describe(e))
    -- a new step is drawn at once; a count that moved within REDRAW of the last draw waits for
    -- the next event (the step that ends a target always comes)
    local now = task.now()
    local new_step = steps[e.target] ~= e.step
    steps[e.target] = e.step
    if not new_step and now - last < M.REDRAW then return end
    last = now
    local out = {}
    -- back to the top of the block, then every line again (each cleared first)
    if drawn > 0 then out[1] = string.format("\r\27[%dA", drawn) end
    local n = 0
    for i = 1, math.max(#lines, e.target) do
      out[#out + 1] = "\27[2K" .. (lines[i] or "") .. "\n"
      n = i
    end
    drawn = n
    stream:write(table.concat(out))
    stream:flush()
  end
end

-- one event per step of each target: a target's writes and waits do not each make a line
local function json_log()
  local logged = {}
  return function(e)
    if e == nil then return end
    logged[e.target] = logged[e.target] or {}
    if logged[e.target][e.step] then return end
    logged[e.target][e.step] = true
    local fields = { target = e.target, provider = e.provider, group = group_text(e.group), step = e.step }
    if e.done then fields.done = e.done end
    if e.total then fields.total = e.total end
    if e.status then fields.status = e.status end
    require("_sg.log").write("info", "rollout_progress", describe(e), fields)
  end
end

---An on_progress function for sg.rollout that shows the events on `stream`. Called with nil, it
---starts a new block below whatever else was written to the terminal meanwhile (a question).
---@param stream file* where a terminal view is drawn (stderr)
---@param opts {tty: boolean?, json_log: boolean?}
---@return fun(event: table?)
function M.new(stream, opts)
  if opts.json_log then return json_log() end
  if opts.tty then return terminal(stream) end
  return function() end
end

return M
