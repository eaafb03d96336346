-- sg.repl: what the interactive loop runs for each line.
local pretty = require "sg.pretty"

local M = {}

---Runs a compiled line and prints its results readably, with the time taken when it was slow.
---@async
---@param chunk function
function M.run_and_print(chunk)
  local clock = require("_sg.task").now
  local started = clock()
  local results = table.pack(chunk())
  local elapsed = clock() - started
  for i = 1, results.n do
    print(pretty.format(results[i]))
  end
  if elapsed >= 0.5 then print(string.format("(%.2f s)", elapsed)) end
end

return M
