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
local wire = require "sim_wire"

local SEED = tonumber(os.getenv("SGRUN_KILL_SEED")) or 20261
local POINTS = tonumber(os.getenv("SGRUN_KILL_POINTS")) or 20
-- short async tasks: the points are counted in writes, so their speed changes nothing but time
local KNOBS = { task_duration_ms = 20 }

local sgrun
do
  local lowest = 0
  while arg[lowest - 1] do lowest = lowest - 1 end
  sgrun = arg[lowest]
end
local here = arg[0]:match("^(.*)/[^/]*$") or "."
local PLAYBOOK = here .. "/../../scripts/rollout.lua"
local SOURCE = "exoscale:web"
local go_file = os.tmpname()

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function command(mode, extra)
  local args = { sgrun, PLAYBOOK }
  if mode == "atomic" then args[#args + 1] = "--atomic" end
  for _, a in ipairs(extra) do args[#args + 1] = a end
  for i, a in ipairs(args) do args[i] = shell_quote(a) end
  return table.concat(args, " ")
end

local function roll_args()
  local out = { "--allow-lossy", "--yes", SOURCE }
  for _, text in ipairs(matrix.TARGET_ARGS) do out[#out + 1] = text end
  return out
end

local function state()
  local out = {}
  for i, tg in ipairs(matrix.TARGETS) do
    local g = sg.connect(tg[1]):group(tg[2])
    out[i] = g and matrix.keyset(g.rules) or false
  end
  return out
end

-- A process that has ended but is not reaped yet (a zombie, whose parent shell is gone) counts
-- as ended.
local function alive(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true end
  local stat = f:read("a") or ""
  f:close()
  return stat ~= "" and not stat:match("^%d+ %b() [ZX]")
end

-- Starts the roll-out held at the door (a shell that execs sgrun, keeping its pid, once the go
-- file exists), so that the kill is armed for its pid before it sends anything; returns when it
-- has ended, and whether the emulator killed it.
local function run_killed(mode, writes, when)
  os.remove(go_file)
  local p = assert(io.popen(string.format("sh -c 'echo $$; exec >/dev/null 2>&1 </dev/null; " ..
    "while [ ! -e %s ]; do sleep 0.01; done; exec %s' &", go_file, command(mode, roll_args()):gsub("'", "'\\''"))))
  local pid = assert(tonumber(p:read("l")), "no pid")
  p:close()
  wire.control("PUT", "/_sim/kill", { pid = pid, writes = writes, when = when })
  assert(io.open(go_file, "w")):close()
  -- bounded: a run that neither ends nor is killed fails the test instead of hanging it
  for _ = 1, 1200 do
    if not alive(pid) then break end
    sg.sleep(0.05)
  end
  t.ok(not alive(pid), "the killed run ended")
  local fired = wire.control("GET", "/_sim/kill").fired
  wire.control("DELETE", "/_sim/kill")
  return fired
end

-- How many writes a whole roll-out of `mode` sends: the range the kill points are drawn from.
local function writes_of_a_run(mode)
  wire.reset()
  wire.knobs(KNOBS)
  wire.control("DELETE", "/_sim/log")
  os.execute(command(mode, roll_args()) .. " >/dev/null 2>&1")
  local n = 0
  for _, e in ipairs(wire.control("GET", "/_sim/log").requests) do
    if e.provider ~= sg.json.null and e.method ~= "GET" and e.method ~= "HEAD" then n = n + 1 end
  end
  return n
end

print(string.format("kill test: seed %d, %d points per mode (SGRUN_KILL_SEED, SGRUN_KILL_POINTS)", SEED, POINTS))

for m, mode in ipairs({ "per-target", "atomic" }) do
  t.test("SIGKILL at " .. POINTS .. " points, " .. mode .. ": the re-run ends clean", function()
    local total = writes_of_a_run(mode)
    t.ok(total > 0, "a roll-out writes")
    math.randomseed(SEED, m)
    for n = 1, POINTS do
      local writes, when = math.random(total), math.random(2) == 1 and "before" or "after"
      -- one re-run in three is --recover (this roll-out's targets, or every journal)
      local how = ({ "re-run", "--recover", "--recover TARGET" })[math.random(3)]
      wire.reset()
      wire.knobs(KNOBS)
      local source = sg.snapshot(sg.connect("exoscale"), "web")
      local before = state()
      local fired = run_killed(mode, writes, when)
      local where = string.format("%s point %d (kill %s write %d of %d, then %s)", mode, n, when, writes, total, how)
      print("  " .. where .. (fired and "" or ": the run ended first"))
      local extra = roll_args()
      if how == "--recover" then
        extra = { "--recover" }
      elseif how == "--recover TARGET" then
        extra = { "--recover", matrix.TARGET_ARGS[math.random(#matrix.TARGET_ARGS)] }
      end
      local out = assert(io.popen(command(mode == "atomic" and how == "re-run" and "atomic" or "per-target", extra) ..
        " 2>/dev/null"))
      local text = out:read("a")
      local ok = out:close()
      if how ~= "re-run" then
        t.ok(ok, where .. ": --recover exits 0:\n" .. text)
        t.ok(not fired or text:find("recovered: ", 1, true), where .. ": --recover reports:\n" .. text)
      end
      local after = state()
      -- atomic: a killed run is undone (one that ended first converged)
      local restore = mode == "atomic" and fired
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

t.test("cleanup", function() os.remove(go_file) end)

t.run()
