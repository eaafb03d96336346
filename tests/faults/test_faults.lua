-- The fault matrix as a test: two roll-outs per kind of fault (429s, 5xx, dropped connections,
-- task errors, latency with a short timeout) (seeds fixed and printed), every
-- target read back after each: none may be left neither converged nor exactly restored, and
-- every report must exist and agree with what was read back.
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local t = require "testlib"
local matrix = require "matrix"

local SEEDS = { 11, 23 }

-- the latency kind at a quarter of the issue's figures (200 ms + 200 ms jitter, 0.25 s timeout):
-- the same proportions in a quarter of the time; bench/run.sh faults runs it at full scale
local kinds = {}
for i, kind in ipairs(matrix.KINDS) do kinds[i] = kind.name == "latency" and matrix.latency_scaled(0.25) or kind end

for _, kind in ipairs(kinds) do
  t.test("fault " .. kind.name .. ": every target converged or restored, reports accurate", function()
    for _, seed in ipairs(SEEDS) do
      print(string.format("  fault %s seed %d", kind.name, seed))
      local r = matrix.run(kind, seed)
      t.eq(r.problems, {}, table.concat(r.outcomes, ","))
    end
  end)
end

t.run()
