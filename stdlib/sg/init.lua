-- sg: the sgrun standard library. `local sg = require "sg"` gives the bindings (sg.http,
-- sg.crypto, sg.json) and the concurrency helpers at the top level.
local task = require "sg.task"

local sg = {
  http = require "_sg.http",
  crypto = require "_sg.crypto",
  json = require "sg.json",
  task = task,
  spawn = task.spawn,
  wait = task.wait,
  all = task.all,
  sleep = task.sleep,
  timeout = task.timeout,
  now = task.now,
}

-- Provider connections (sg.connect, loaded on first use to keep start-up small) and the
-- Exoscale signer, callable for testing/debugging.
---@param provider string
---@param opts? table
---@return sg.Connection
function sg.connect(provider, opts)
  return require("sg.connect").connect(provider, opts)
end
sg.crypto.exoscale_sign = require("_sg.exoscale").sign

return sg
