-- SIGKILL at random points of a roll-out (scripts/rollout.lua, per target and --atomic), each
-- followed by a re-run of the same roll-out or by `--recover`: every re-run ends with all
-- targets converged (--atomic: all back to what they held before) and no journal left behind.
--
-- A point is a count of writes, not a delay: the emulator itself SIGKILLs the run at its N-th
-- write request (/_sim/kill), before or after that write takes effect, so every point is hit
-- exactly however loaded the machine is. Points come from a fixed seed, printed
-- (SGRUN_KILL_SEED repeats another); SGRUN_KILL_POINTS sets how many per mode (default 20).
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local t = require "testlib"
local sg = require "sg"
local journal = require "sg.journal"
local matrix = require "matrix"
local cli = require "rollout_cli"
local wire = require "sim_wire"

local SEED = tonumber(os.getenv("SGRUN_KILL_SEED")) or 20261
local POINTS = tonumber(os.getenv("SGRUN_KILL_POINTS")) or 20
-- short async tasks: the points are counted in writes, so their speed changes nothing but time
local KNOBS = { task_duration_ms = 20 }

print(string.format("kill test: seed %d, %d points per mode (SGRUN_KILL_SEED, SGRUN_KILL_POINTS)", SEED, POINTS))

for m, mode in ipairs({ "per-target", "atomic" }) do
  local atomic = mode == "atomic"
  t.test("SIGKILL at " .. POINTS .. " points, " .. mode .. ": the re-run ends clean", function()
    wire.reset()
    wire.knobs(KNOBS)
    local total = cli.writes_of_a_run(atomic)
    t.ok(total > 0, "a roll-out writes")
    math.randomseed(SEED, m)
    for n = 1, POINTS do
      local writes, when = math.random(total), math.random(2) == 1 and "before" or "after"
      -- two re-runs in three are --recover (every journal, or one of this roll-out's targets)
      local how = ({ "re-run", "--recover", "--recover TARGET" })[math.random(3)]
      local extra = cli.roll_args()
      if how == "--recover" then
        extra = { "--recover" }
      elseif how == "--recover TARGET" then
        extra = { "--recover", matrix.TARGET_ARGS[math.random(#matrix.TARGET_ARGS)] }
      end
      wire.reset()
      wire.knobs(KNOBS)
      local source = sg.snapshot(sg.connect("exoscale"), "web")
      local before = cli.state()
      local fired, ended = cli.run_killed(atomic, writes, when)
      local where = string.format("%s point %d (kill %s write %d of %d, then %s)", mode, n, when, writes, total, how)
      print("  " .. where .. (fired and "" or ": the run ended first"))
      t.ok(ended, where .. ": the killed run ended")
      local code, text = cli.run(cli.command(atomic and how == "re-run", extra))
      if how == "re-run" then
        t.ok(not fired or text:find("a killed run left unfinished", 1, true), where .. ": the re-run says so:\n" .. text)
      else
        t.eq(code, 0, where .. ": --recover's exit status\n" .. text)
        t.ok(not fired or text:find("recovered: ", 1, true), where .. ": --recover reports:\n" .. text)
      end
      local after = cli.state()
      -- atomic: a killed run is undone (one that ended first converged)
      local restore = atomic and fired
      for i, tg in ipairs(matrix.TARGETS) do
        local target = string.format("%s, target %d (%s)", where, i, matrix.TARGET_ARGS[i])
        if restore then
          t.ok(after[i] == false and before[i] == false or after[i] and before[i] and matrix.same(after[i], before[i]),
            target .. ": not restored\n" .. text)
        else
          t.ok(after[i] and matrix.same(after[i], matrix.translated(tg[1], source.rules)),
            target .. ": not converged\n" .. text)
        end
      end
      t.eq(journal.list(), {}, where .. ": no journal left")
    end
  end)
end

t.run()
