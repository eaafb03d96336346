-- sg.apply's counts when the adapter fails part-way: the rules whose writes landed before the
-- failure are reported (Exoscale, Barrack and HostUp write rule by rule), not 0.
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

-- A HostUp connection whose first `n` writes land; from then on the emulator answers every
-- request with a 5xx (its error_rate fault), so the write after them and the re-read that would
-- reconcile it both fail. The fault stays until `healed()`.
local function hostup_failing_after(n)
  local writes = 0
  return sg.connect("hostup", { retry = { base = 0.05, cap = 0.1, attempts = 2 }, transport = function(req)
    local resp, err, code = http.request(req)
    if req.method ~= "GET" then
      writes = writes + 1
      if writes == n then w.knobs({ error_rate = 1 }) end
    end
    return resp, err, code
  end })
end

local function healed() w.knobs({ error_rate = 0 }) end

local function hostup_apply(n, desired)
  w.reset()
  local hu = hostup_failing_after(n)
  local p = sg.plan(hu, { vm = 10000 }, desired(sg.connect("hostup"):group({ vm = 10000 })))
  local ok, result = pcall(sg.apply, p)
  healed()
  assert(ok, result)
  t.eq(result.ok, false)
  t.ok(tostring(result.error):find("injected server error", 1, true), tostring(result.error))
  return p, result
end

-- VM 10000 holds ssh (22), web (80,443 in one rule) and ping, all ACCEPT
local function seeded(g, port)
  for _, r in ipairs(g.rules) do
    if r.protocol == "tcp" and r.port_min == port then return r end
  end
  error("no seeded rule for port " .. port)
end

t.test("HostUp: two of three adds land, the third fails: added 2", function()
  local p, result = hostup_apply(2, function(g)
    local desired = { tcp(8091), tcp(8092), tcp(8093) }
    for _, r in ipairs(g.rules) do desired[#desired + 1] = r end
    return desired
  end)
  t.eq({ #p.add, #p.remove }, { 3, 0 })
  t.eq({ result.added, result.removed }, { 2, 0 }, "what was done")
  local held = keyset(assert(sg.connect("hostup"):group({ vm = 10000 })).rules)
  t.eq(held[rule.key(tcp(8091))] or false, false, "the adds go in order: 8093, 8092, 8091")
  t.ok(held[rule.key(tcp(8092))] and held[rule.key(tcp(8093))], "the two that landed are there")
end)

t.test("HostUp: an add put below a denial counts once its last write lands", function()
  local drop = rule.normalize { direction = "ingress", action = "drop", protocol = "tcp", port = 25 }
  -- writes: POST the drop (pos 0); for the accept below it, POST a copy of the top rule, then
  -- PUT the accept over it at 1. The PUT fails: the list holds the drop and a repeated rule.
  local _, result = hostup_apply(2, function(g)
    local desired = { drop, tcp(8091) }
    for _, r in ipairs(g.rules) do desired[#desired + 1] = r end
    return desired
  end)
  t.eq({ result.added, result.removed }, { 1, 0 }, "what was done")
end)

t.test("HostUp: a narrowed rule counts what it lost; the delete after it fails: removed 1", function()
  -- 443 leaves the 80,443 rule (one PUT in place), ping is deleted after it
  local p, result = hostup_apply(1, function(g) return { seeded(g, 22), seeded(g, 80) } end)
  t.eq({ #p.add, #p.remove }, { 0, 2 })
  t.eq({ result.added, result.removed }, { 0, 1 }, "what was done")
  local held = keyset(assert(sg.connect("hostup"):group({ vm = 10000 })).rules)
  t.eq(held[rule.key(tcp(443))] or false, false, "443 is gone")
end)

t.run()
