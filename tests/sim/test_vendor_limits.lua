-- Vendor schema limits (Exoscale: ICMP type/code -1..254, rule and group descriptions and group
-- names of at most 255 characters; Gcore: rule descriptions of at most 255 characters, the group
-- name pattern) are refused while the roll-out plans, before any write: Exoscale takes one request
-- per rule, so a refusal from the vendor would come after the rules before it had landed.
local t = require "testlib"
local sg = require "sg"
local rule = require "sg.rule"
local w = require "sim_wire"

local function reset()
  w.reset()
  w.knobs({ task_duration_ms = 50, task_error_rate = 0, task_error_only = "", error_rate = 0,
    rate_limit = 0, drop_rate = 0 })
end

local function tcp(port)
  return rule.normalize { direction = "ingress", protocol = "tcp", port = port, cidr = "198.51.100.0/24" }
end

-- Rolls `desired` out to one group of `provider` and returns the report and the writes (non-GET
-- requests) the emulator received meanwhile.
local function rollout(provider, ref, desired, opts)
  local conn = sg.connect(provider)
  local since = w.last_seq(provider)
  local report = sg.rollout(desired, { { conn, ref } }, opts or { mode = "additive" })
  return report, w.mutations(provider, since)
end

local function refused(report, writes, ...)
  t.eq(report.ok, false, tostring(report))
  t.eq(#writes, 0, "no write at all")
  local rt = report.targets[1]
  t.ok(rt.status ~= "converged" and rt.status ~= "rolled_back", "never touched: " .. tostring(rt.status))
  local text = tostring(report)
  for _, needle in ipairs({ ... }) do
    t.ok(text:find(needle, 1, true), "the report says " .. needle .. ": " .. text)
  end
end

t.test("Exoscale: an ICMP type of 255 among good rules: nothing is sent", function()
  reset()
  local bad = rule.normalize { direction = "ingress", protocol = "icmp", icmp_type = 255, icmp_code = 0,
    cidr = "0.0.0.0/0" }
  local report, writes = rollout("exoscale", "web", { tcp(8081), tcp(8082), bad })
  refused(report, writes, "icmp type 255 code 0", "ICMP type of at most 254", "icmp.type", "0..254")
  -- the limits themselves go through: type and code 254, a 255-character description
  reset()
  local long = rule.normalize { direction = "ingress", protocol = "tcp", port = 8084, cidr = "0.0.0.0/0",
    description = string.rep("é", 255) }
  local edge = rule.normalize { direction = "ingress", protocol = "icmp", icmp_type = 254, icmp_code = 254,
    cidr = "0.0.0.0/0" }
  report = rollout("exoscale", "web", { long, edge })
  t.ok(report.ok, tostring(report))
  t.eq(report.targets[1].added, 2, tostring(report))
end)

t.test("Exoscale: an ICMP code of 255: nothing is sent", function()
  reset()
  local bad = rule.normalize { direction = "ingress", protocol = "icmp", icmp_type = 3, icmp_code = 255,
    cidr = "0.0.0.0/0" }
  local report, writes = rollout("exoscale", "web", { tcp(8081), bad })
  refused(report, writes, "ICMP code of at most 254", "icmp.code")
end)

-- a rule whose description is one character past the vendors' maxLength 255
local LONG_DESCRIPTION = rule.normalize { direction = "ingress", protocol = "tcp", port = 8083, cidr = "0.0.0.0/0",
  description = string.rep("d", 256) }

t.test("Exoscale, Gcore: a 256-character rule description among good rules: nothing is sent", function()
  for _, provider in ipairs({ "exoscale", "gcore" }) do
    reset()
    local report, writes = rollout(provider, "web", { tcp(8081), tcp(8082), LONG_DESCRIPTION })
    refused(report, writes, "tcp 8083", "description of at most 255 characters", "has 256", "shorten")
  end
  -- lossy = "allow" skips the rule it names, and sends the others
  reset()
  local report, writes = rollout("exoscale", "web", { tcp(8081), LONG_DESCRIPTION },
    { mode = "additive", lossy = "allow" })
  t.ok(report.ok, tostring(report))
  t.eq(report.targets[1].added, 1, tostring(report))
  t.eq(#writes, 1, "one add")
end)

t.test("Exoscale: a new group's name or description over 255 characters: nothing is sent", function()
  reset()
  local report, writes = rollout("exoscale", string.rep("n", 256), { tcp(22) },
    { mode = "additive", create = true })
  refused(report, writes, "group name (name) of at most 255 characters", "has 256", "shorter name")
  reset()
  report, writes = rollout("exoscale", "fresh", { tcp(22) },
    { mode = "additive", create = true, description = string.rep("x", 300) })
  refused(report, writes, "group description (description) of at most 255 characters", "has 300")
end)

t.test("Gcore: a new group's name off the pattern: nothing is sent", function()
  local report, writes
  for _, name in ipairs({ "ab", "-web", "web-", "web/1", string.rep("a", 64), "wéb" }) do
    reset()
    report, writes = rollout("gcore", name, { tcp(22) }, { mode = "additive", create = true })
    refused(report, writes, "Gcore takes a group name (name)", "choose such a name")
  end
  -- the pattern's own edges are taken
  reset()
  report = rollout("gcore", "a.b", { tcp(22) }, { mode = "additive", create = true })
  t.ok(report.ok, tostring(report))
end)

t.run()
