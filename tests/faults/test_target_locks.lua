-- Two roll-outs on overlapping targets (scripts/rollout.lua, as a user runs them): the second
-- finds the group the first is writing to locked, exits 75 and writes nothing, so the first's
-- roll-out stands; whether the group is named or given by its id. The first is caught in the
-- middle of its changes by the emulator holding every provider task (hold_tasks), not by timing.
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local t = require "testlib"
local sg = require "sg"
local matrix = require "matrix"
local cli = require "rollout_cli"
local wire = require "sim_wire"

local FIRST = { "--yes", "--allow-lossy", "exoscale:web", "gcore:web", "genesis:web" }
-- the second run's own options: its deadline only bounds a run that, wrongly, waits on the held
-- tasks, so that a failure ends instead of hanging
local SECOND = { "--yes", "--allow-lossy", "--deadline", "10" }

local function fresh()
  wire.reset()
  wire.control("DELETE", "/_sim/log")
  wire.knobs({ task_duration_ms = 20, hold_tasks = false })
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

-- Starts the first roll-out in the background with every task held, and returns once its write
-- to Gcore is in: its pid, and the files its exit status and output go to.
---@async
local function first_held()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -m 700 " .. dir))
  wire.knobs({ hold_tasks = true })
  local p = assert(io.popen(string.format("( sh -c 'echo $$ >%s/pid; exec %s' >%s/out 2>&1; echo $? >%s/rc ) &",
    dir, cli.command(false, FIRST):gsub("'", "'\\''"), dir, dir)))
  p:close()
  local first = { dir = dir }
  for _ = 1, 600 do
    if #wire.mutations("gcore") > 0 then break end
    sg.sleep(0.05)
  end
  first.pid = assert(read(dir .. "/pid"), "the first run started"):match("%d+")
  t.eq(#wire.mutations("gcore"), 1, "the first run is held at its write to Gcore")
  return first
end

-- Lets the held tasks go and waits (bounded) for the first run to end: its status and output.
---@async
local function first_ends(first)
  wire.knobs({ hold_tasks = false })
  for _ = 1, 1200 do
    if read(first.dir .. "/rc") then break end
    sg.sleep(0.05)
  end
  local code, out = tonumber(read(first.dir .. "/rc")), read(first.dir .. "/out")
  os.execute("rm -rf " .. first.dir)
  return code, out
end

for _, case in ipairs({ { how = "by name" }, { how = "by its id", by_id = true } }) do
  t.test("a roll-out to a group another roll-out is writing to (" .. case.how .. ") exits 75 and writes nothing",
    function()
      fresh()
      local gcore = sg.connect("gcore")
      local second_target = case.by_id and "gcore:" .. assert(gcore:group("web")).id or "gcore:web"
      local source = sg.snapshot(sg.connect("exoscale"), "web")
      local first = first_held()
      local since = wire.last_seq("gcore")
      local code, text = cli.run(cli.command(false, { table.unpack(SECOND), "exoscale:db", second_target }), true)
      t.eq(code, 75, text)
      t.ok(text:find("gcore " .. second_target:match(":(.*)$") .. ": another roll-out is writing to this group, pid " ..
        first.pid .. " since ", 1, true), text)
      t.ok(text:find("this run wrote nothing", 1, true), text)
      t.eq(wire.mutations("gcore", since), {}, "the refused run sent no write")
      -- a dry run takes no lock: it plans beside the running roll-out
      code, text = cli.run(cli.command(false, { "exoscale:db", second_target }, { "--dry-run" }), true)
      t.eq(code, 3, text)
      code, text = first_ends(first)
      t.eq(code, 0, text)
      t.ok(text:find("\n  gcore%s+web%s+converged"), text)
      t.ok(matrix.same(matrix.keyset(assert(gcore:group("web")).rules), matrix.translated("gcore", source.rules)),
        "the group holds the converged run's rules")
      -- the first run's locks went with it
      code, text = cli.run(cli.command(false, { "--yes", "--allow-lossy", "exoscale:db", second_target }), true)
      t.eq(code, 0, text)
    end)
end

t.run()
