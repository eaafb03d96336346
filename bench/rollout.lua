-- Roll-out against the emulator with 50 ms latency and 500 ms async tasks: 100 rules onto Gcore,
-- Genesis Cloud, Barrack and HostUp at once, against the slowest of the four done alone (the
-- critical path: the roll-out can be no faster than its slowest target). Also counts the reads
-- each provider's async work took.
-- usage: sgrun --sim bench/rollout.lua
local sg = require "sg"

local SIM = assert(os.getenv("SGRUN_SIM_URL"), "run with: sgrun --sim bench/rollout.lua")

local function control(method, path, body)
  local res = assert(sg.http.request { method = method, url = SIM .. path,
    body = body and sg.json.encode(body), headers = { ["Content-Type"] = "application/json" } })
  assert(res.status < 300, res.body)
  return res.body ~= "" and sg.json.decode(res.body) or nil
end

local rules = {}
for i = 1, 100 do
  rules[i] = { direction = "ingress", protocol = "tcp", port_min = 2000 + i, port_max = 2000 + i,
    cidr = "0.0.0.0/0" }
end

local conns = {}
local function target(provider, ref)
  conns[provider] = conns[provider] or sg.connect(provider)
  return { conns[provider], ref }
end
-- every emulated cloud but the source's: a "bench" group, or the second demo VM where a
-- provider's groups are VMs' firewalls (HostUp)
local function all_targets()
  local out = {}
  for _, name in ipairs(require("sg.connect").providers()) do
    if name ~= "exoscale" then
      local _, demo = require("sg.cli").parse_target(name .. ":" .. require("sgsim." .. name).demo_target)
      out[#out + 1] = target(name, type(demo) == "table" and { vm = 10001 } or "bench")
    end
  end
  return out
end

local function run(targets)
  control("POST", "/_sim/reset")
  control("DELETE", "/_sim/log")
  control("PUT", "/_sim/knobs", { latency_ms = 50, task_duration_ms = 500 })
  local started = sg.now()
  local report = sg.rollout(rules, targets)
  local took = sg.now() - started
  assert(report.ok, tostring(report))
  local reads, writes = {}, {}
  for _, e in ipairs(control("GET", "/_sim/log").requests) do
    local into = e.method == "GET" and reads or writes
    into[e.provider] = (into[e.provider] or 0) + 1
  end
  return took, reads, writes
end

local slowest, slowest_name = 0, nil
for _, t in ipairs(all_targets()) do
  local took, reads, writes = run({ t })
  local p = t[1].provider
  print(string.format("  %-8s alone: %6.2f s  (%d writes, %d reads)", p, took, writes[p] or 0, reads[p] or 0))
  if took > slowest then slowest, slowest_name = took, p end
end
local took = run(all_targets())
print(string.format("rollout: 100 rules to 4 providers, 50 ms latency, 500 ms tasks: %.2f s; " ..
  "critical path (%s alone) %.2f s; ratio %.2f", took, slowest_name, slowest, took / slowest))
