-- Plan benchmark: plan.compute on N current vs N desired canonical rules, for growing N.
-- The two sets overlap by 90%, so a tenth of each side is added or removed. Prints seconds per
-- size and the growth ratio against the previous size (linear growth: ratio ~ size ratio).
-- Run: SGRUN_DEV_ROOT=. ./build/sgrun bench/plan_bench.lua [sizes...]
local rule = require "sg.rule"
local plan = require "sg.plan"
local codec = require "sg.codec"

-- Rule i: a distinct (port, network) pair; 256 networks repeat across rules, as in real sets.
local function rules(n, offset)
  local out = {}
  for i = 1, n do
    local j = i + offset
    out[i] = rule.normalize {
      direction = j % 7 == 0 and "egress" or "ingress",
      protocol = j % 2 == 0 and "tcp" or "udp",
      port_min = j % 65535 + 1,
      cidr = string.format("10.%d.%d.0/24", (j // 65535) % 256, j % 256),
      description = "rule " .. j,
    }
  end
  return out
end

local sizes = {}
for i = 1, #arg do sizes[i] = tonumber(arg[i]) end
if #sizes == 0 then sizes = { 10000, 50000, 100000 } end

-- Exoscale: it publishes no rule limit, so any size is a valid plan; every rule is translated.
local target_codec = codec.get("exoscale")
local previous
print(string.format("%8s %10s %18s %10s %8s %8s", "rules", "seconds", "ratio", "no-GC s", "add",
  "remove"))
for _, n in ipairs(sizes) do
  local current, desired = rules(n, 0), rules(n, n // 10)
  collectgarbage("collect")
  local function run()
    local t0 = os.clock()
    local p = plan.compute { target = { provider = "exoscale", group = "bench" }, current = current,
      desired = desired, codec = target_codec, lossy = "allow" }
    return os.clock() - t0, p
  end
  local best, nogc, p = math.huge, math.huge, nil
  for _ = 1, 3 do
    local s
    s, p = run()
    best = math.min(best, s)
    -- the same with the collector paused: the plan's own cost, without the collector's work
    -- on the (size-proportional) live heap, which is what bends the curve at large sizes
    collectgarbage("collect")
    collectgarbage("stop")
    nogc = math.min(nogc, (run()))
    collectgarbage("restart")
  end
  print(string.format("%8d %10.3f %18s %10.3f %8d %8d", n, best,
    previous and string.format("%.2fx (n %.0fx)", best / previous.t, n / previous.n) or "-",
    nogc, #p.add, #p.remove))
  previous = { t = best, n = n }
end
