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

return sg
