-- sg.apply's counts when the adapter fails part-way: the rules whose writes landed before the
-- failure are reported (Exoscale and Barrack write one rule per request), not 0.
local t = require "testlib"
local sg = require "sg"
local http = require "_sg.http"
local rule = require "sg.rule"
local w = require "sim_wire"

local function tcp(port) return rule.normalize { direction = "ingress", protocol = "tcp", port = port } end

local function keyset(rules)
  local out = {}
  for _, r in ipairs(rules) do out[rule.key(r)] = true end
  return out
end

t.test("setup", function()
  w.reset()
  w.knobs({ task_duration_ms = 50, task_error_rate = 0, error_rate = 0, rate_limit = 0, drop_rate = 0 })
end)

t.test("Exoscale: two adds land, the third is refused: added 2", function()
  local exo = sg.connect("exoscale", { transport = w.refusing_add(8093) })
  local p = sg.plan(exo, "web", { tcp(8091), tcp(8092), tcp(8093) }, { mode = "additive" })
  t.eq(#p.add, 3)
  local result = sg.apply(p)
  t.eq(result.ok, false)
  t.ok(tostring(result.error):find("refused by the test", 1, true), tostring(result.error))
  t.eq({ result.added, result.removed }, { 2, 0 }, "what was done")
  local held = keyset(assert(sg.connect("exoscale"):group("web")).rules)
  t.ok(held[rule.key(tcp(8091))] and held[rule.key(tcp(8092))] and not held[rule.key(tcp(8093))],
    "the group holds the two that landed")
end)

t.test("Barrack: one add lands, the other is refused: added 1", function()
  local needle = '"port_range_min":9124'
  local brk = sg.connect("barrack", { transport = function(req)
    if req.method == "POST" and tostring(req.body):find(needle, 1, true) then
      sg.sleep(0.3) -- the other add is accepted first
      return { status = 400, headers = {}, body = '{"success":false,"message":"refused by the test"}' }
    end
    return http.request(req)
  end, retry = { base = 0.05, cap = 1 } })
  local p = sg.plan(brk, "demo-firewall", { tcp(9123), tcp(9124) }, { mode = "additive" })
  t.eq(#p.add, 2)
  local result = sg.apply(p)
  t.eq(result.ok, false)
  t.eq({ result.added, result.removed }, { 1, 0 }, "what was done: " .. tostring(result.error))
end)

t.run()
