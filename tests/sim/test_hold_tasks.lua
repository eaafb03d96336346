-- The emulator's hold_tasks knob: while it is true no provider's async work completes, whatever
-- the task duration; set false, the work held completes. Tests that must catch a target in the
-- middle of its changes (e2e/test_signals) hold it there instead of betting on a long duration.
local t = require "testlib"
local w = require "sim_wire"
local sg = require "sg"

local SHORT = { timeout = 0.6, interval = 0.1 }

-- One piece of async work per provider that has any: a function that starts it and returns what
-- conn:wait takes.
local starts = {
  exoscale = function(c) return c:create_security_group({ name = "held", description = "held" }) end,
  gcore = function(c)
    return c:create_security_group({ name = "held", description = "held", rules = sg.json.array() })
  end,
  genesis = function(c)
    return c:create_security_group({ name = "held", region = "NORD-NO-KRS-1", rules = sg.json.array() })
  end,
  barrack = function(c)
    return c:add_instance_security_rule("BRK-100001A", { direction = "ingress", protocol = "tcp",
      ethertype = "IPv4", remote_ip_prefix = "203.0.113.0/24", port_range_min = 3306, port_range_max = 3306 })
  end,
}

for _, provider in ipairs({ "exoscale", "gcore", "genesis", "barrack" }) do
  t.test(provider .. ": work started while held stays pending; let go, it completes", function()
    w.reset()
    w.knobs({ task_duration_ms = 0, hold_tasks = true })
    local c = w.connect(provider)
    local started = starts[provider](c)
    local err = t.raises(function() c:wait(started, SHORT) end, "was not done after")
    t.eq(err.code, "timeout")
    w.knobs({ hold_tasks = false })
    t.ok(c:wait(started, SHORT), "done once let go")
    -- and work that ended stays ended when tasks are held again
    w.knobs({ hold_tasks = true })
    t.ok(c:wait(started, SHORT), "still done while held again")
    w.knobs({ hold_tasks = false })
  end)
end

t.test("hold_tasks takes true or false only, and is listed with the knobs", function()
  w.reset()
  local resp = assert(sg.http.request { method = "PUT", url = w.SIM .. "/_sim/knobs",
    body = '{"hold_tasks": 1}' })
  t.eq(resp.status, 400)
  t.ok(resp.body:find("hold_tasks must be true or false", 1, true), resp.body)
  t.eq(w.control("GET", "/_sim/knobs").hold_tasks, false)
end)

t.run()
