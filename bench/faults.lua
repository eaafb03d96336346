-- The fault matrix at full size: `runs` roll-outs per kind of fault (seeds 1..runs), every
-- target read back after each, and the table of outcomes per kind: targets converged, restored,
-- partial (neither: must be 0), reports missing or disagreeing with what was read back (must be 0).
-- The latency kind is the issue's: 800 ms latency + 800 ms jitter with a 1 s timeout per call.
-- usage: sgrun --sim bench/faults.lua [runs]   (from the repository root)
package.path = "tests/faults/?.lua;" .. package.path
local matrix = require "matrix"

local runs = tonumber(arg and arg[1]) or 10
local bad = 0
print(string.format("%-11s %5s %10s %9s %8s %16s", "fault", "runs", "converged", "restored", "partial",
  "report problems"))
for _, kind in ipairs(matrix.KINDS) do
  local counts = { converged = 0, restored = 0, partial = 0 }
  local problems = 0
  for seed = 1, runs do
    local r = matrix.run(kind, seed)
    for _, o in ipairs(r.outcomes) do counts[o] = counts[o] + 1 end
    for _, p in ipairs(r.problems) do
      if not p:find("neither converged", 1, true) then problems = problems + 1 end
      io.stderr:write(p, "\n")
    end
  end
  bad = bad + counts.partial + problems
  print(string.format("%-11s %5d %10d %9d %8d %16d", kind.name, runs, counts.converged, counts.restored,
    counts.partial, problems))
end
os.exit(bad == 0 and 0 or 1)
