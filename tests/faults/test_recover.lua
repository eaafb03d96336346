-- scripts/rollout.lua --recover: its report per target, its exit status, a journal whose run is
-- still alive left alone, and nothing to do said as such. Killed runs come from the emulator
-- (/_sim/kill), at fixed points.
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local t = require "testlib"
local sg = require "sg"
local journal = require "sg.journal"
local matrix = require "matrix"
local cli = require "rollout_cli"
local wire = require "sim_wire"

local KNOBS = { task_duration_ms = 20 }

local function fresh()
  wire.reset()
  wire.knobs(KNOBS)
  for _, path in ipairs(journal.list()) do os.remove(path) end
end

-- "  PROVIDER GROUP  outcome" lines of a --recover report, by target argument order
local function outcomes(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do
    local what = line:match("^  %S+%s+%S+%s+(%a[%a ]*:.*)$")
    if what then out[#out + 1] = what end
  end
  return out
end

t.test("--recover with nothing to recover says so and exits 0", function()
  fresh()
  local code, text = cli.run(cli.command(false, { "--recover" }))
  t.eq(code, 0, text)
  t.ok(text:find("no unfinished roll-out in " .. journal.dir() .. "; nothing to do", 1, true), text)
  code, text = cli.run(cli.command(false, { "--recover", "gcore:web" }))
  t.eq(code, 0, text)
  t.ok(text:find("no unfinished roll-out for these targets in " .. journal.dir() .. "; nothing to do", 1, true), text)
end)

t.test("--recover takes no mode of its own", function()
  local code, text = cli.run(cli.command(true, { "--recover" }), true)
  t.eq(code, 2, text)
  t.ok(text:find("--recover takes no --atomic", 1, true), text)
end)

t.test("--recover completes a killed per-target roll-out: every target recovered: converged", function()
  fresh()
  local source = sg.snapshot(sg.connect("exoscale"), "web")
  t.ok(cli.run_killed(false, 3, "after"), "killed at its third write")
  t.eq(#journal.list(), 1, "the killed run left its journal")
  -- a target it does not name: left for later
  local code, text = cli.run(cli.command(false, { "--recover", "exoscale:other" }))
  t.eq(code, 0, text)
  t.ok(text:find("nothing to do", 1, true), text)
  -- a target given by its group's id finds the journal that names the group by name
  local gcore_web = assert(sg.connect("gcore"):group("web"))
  code, text = cli.run(cli.command(false, { "--recover", "gcore:" .. gcore_web.id }))
  t.eq(code, 0, text)
  local want = {}
  for i in ipairs(matrix.TARGETS) do want[i] = "recovered: converged" end
  t.eq(outcomes(text), want, text)
  t.ok(text:find("(per-target roll-out)", 1, true), text)
  local after = cli.state()
  for i, tg in ipairs(matrix.TARGETS) do
    t.ok(after[i] and matrix.same(after[i], matrix.translated(tg[1], source.rules)), matrix.TARGET_ARGS[i])
  end
  t.eq(journal.list(), {}, "no journal left")
end)

t.test("--recover undoes a killed atomic roll-out: targets it wrote to recovered: restored", function()
  fresh()
  local before = cli.state()
  t.ok(cli.run_killed(true, 1, "after"), "killed at its first write")
  local code, text = cli.run(cli.command(false, { "--recover" }))
  t.eq(code, 0, text)
  t.ok(text:find("(atomic roll-out)", 1, true), text)
  local lines = outcomes(text)
  t.eq(#lines, #matrix.TARGETS, text)
  -- the target of that first write was restored; the others either were too, or had not yet
  -- announced a write when the kill came (the write goes out on a transport thread while the
  -- playbook goes on announcing the next targets')
  local restored = 0
  for _, what in ipairs(lines) do
    if what == "recovered: restored" then restored = restored + 1
    else t.eq(what, "untouched: the killed run had not written to it", text) end
  end
  t.ok(restored >= 1, "no target restored\n" .. text)
  local after = cli.state()
  for i in ipairs(matrix.TARGETS) do
    t.ok(after[i] == before[i] or matrix.same(after[i], before[i]), matrix.TARGET_ARGS[i])
  end
  t.eq(journal.list(), {}, "no journal left")
end)

-- A group changed after the killed run (by a later roll-out, or a person) is no longer what that
-- run left: putting back its snapshot, or completing its plan, would silently undo the change.
for _, atomic in ipairs({ true, false }) do
  t.test(string.format("--recover leaves alone a group changed since the killed %s roll-out",
    atomic and "atomic" or "per-target"), function()
    fresh()
    t.ok(cli.run_killed(atomic, 1, "after"), "killed at its first write")
    local gc = sg.connect("gcore")
    -- the killed run's work still running at Gcore lands first, so that what is compared below is
    -- only what recovering does
    gc:settle()
    local later = { direction = "ingress", protocol = "tcp", port_min = 5432, port_max = 5432,
      cidr = "10.9.0.0/16", ethertype = "IPv4", action = "accept" }
    local r = sg.apply(sg.plan(gc, "web", { rules = { later } }, { mode = "additive" }))
    t.ok(r.ok, "a later change to gcore web")
    local changed = cli.state()
    local code, text = cli.run(cli.command(false, { "--recover" }))
    t.eq(code, 1, text)
    t.ok(text:find("gcore%s+web%s+not recovered: left as it is: the group changed since the killed run " ..
      "%(it holds ingress tcp 5432"), text)
    local after = cli.state()
    for i, tg in ipairs(matrix.TARGETS) do
      if tg[1] == "gcore" and tg[2] == "web" then
        t.ok(matrix.same(after[i], changed[i]), "gcore web keeps the later change")
      end
    end
    t.eq(journal.list(), {}, "the journal is done: nothing left for it to finish")
  end)
end

-- A dry run of a roll-out whose killed run left a journal: the real run would first deal with
-- it, so the preview says so instead of "ok (unchanged)", and writes nothing.
t.test("a dry run names the unfinished journal the real run would undo first, and exits 3", function()
  fresh()
  t.ok(cli.run_killed(true, 1, "after"), "killed at its first write")
  local left = journal.list()
  t.eq(#left, 1, "the killed run left its journal")
  -- (the groups themselves may still change: the killed run's async work lands on its own)
  wire.control("DELETE", "/_sim/log")
  local code, text = cli.run(cli.command(true, cli.roll_args(), { "--dry-run" }))
  t.eq(code, 3, text)
  t.ok(text:find("a killed run left this roll-out unfinished (journal " .. left[1] .. "): the real run would " ..
    "first undo it", 1, true), text)
  for _, e in ipairs(wire.control("GET", "/_sim/log").requests) do
    t.ok(e.method == "GET" or e.method == "HEAD", "a dry run sends no write: " .. tostring(e.method))
  end
  t.eq(journal.list(), left, "the journal is left for the real run")
  code, text = cli.run(cli.command(true, cli.roll_args(), { "--dry-run", "--json" }))
  t.eq(code, 3, text)
  t.eq(sg.json.decode(text).unfinished.journal, left[1], text)
end)

t.test("a journal that cannot be recovered: exit 1, the report says why, the journal is kept", function()
  fresh()
  local total = cli.writes_of_a_run(true)
  fresh()
  t.ok(cli.run_killed(true, total, "after"), "killed at its last write")
  -- every provider call fails while recovering
  wire.knobs({ error_rate = 1 })
  local code, text = cli.run(cli.command(false, { "--recover", "--timeout", "1", "--deadline", "2" }))
  wire.knobs({ error_rate = 0 })
  t.eq(code, 1, text)
  t.ok(text:find("gcore%s+web%s+not recovered: "), text)
  t.ok(text:find("run --recover again", 1, true), text)
  t.eq(#journal.list(), 1, "the journal is kept for another try")
  -- the provider back: the same journal recovers (the report as JSON this time)
  code, text = cli.run(cli.command(false, { "--recover" }, { "--json" }))
  t.eq(code, 0, text)
  local doc = sg.json.decode(text)
  t.eq(doc.ok, true, text)
  t.eq(#doc.journals, 1, text)
  t.eq(doc.journals[1].atomic, true, text)
  for _, target in ipairs(doc.journals[1].targets) do
    t.eq({ target.status, target.outcome }, { "rolled_back", "recovered: restored" }, text)
  end
  t.eq(journal.list(), {}, "recovered: no journal left")
end)

t.test("a per-target journal without the kept rules (an older sgrun's) is not completed", function()
  fresh()
  local before = cli.state()
  local path = journal.path("test_recover older journal")
  local old = journal.start(path, { atomic = false, targets = sg.json.array {
    { provider = "gcore", group = "web", exists = true, before = sg.json.array(), add = sg.json.array(),
      remove = sg.json.array() } } })
  old:record({ ev = "write", target = 1 })
  -- killed: the kernel closes its files, and with them drops its lock
  old.file:close()
  old.lock:close()
  local code, text = cli.run(cli.command(false, { "--recover" }))
  t.eq(code, 1, text)
  t.ok(text:find("gcore%s+web%s+not recovered: not written: its journal %(from an older sgrun%)"), text)
  t.eq(cli.state(), before, "nothing written")
  t.eq(journal.list(), { path }, "the journal is kept")
end)

t.test("a journal written for another account is not recovered with this one's credentials", function()
  fresh()
  local before = cli.state()
  local path = journal.path("test_recover other account")
  local other = journal.start(path, { atomic = true, mode = "authoritative", targets = sg.json.array {
    { provider = "gcore", account = "0000000000000000", group = "web", exists = true, before = sg.json.array(),
      keep = sg.json.array(), add = sg.json.array(), remove = sg.json.array() } } })
  other:record({ ev = "write", target = 1 })
  other.file:close()
  other.lock:close()
  local code, text = cli.run(cli.command(false, { "--recover" }))
  t.eq(code, 1, text)
  t.ok(text:find("not recovered: it was written for another gcore account", 1, true), text)
  t.eq(cli.state(), before, "nothing written")
  t.eq(journal.list(), { path }, "the journal is kept")
end)

t.test("a journal whose run is alive is left alone, and --recover says so", function()
  fresh()
  -- this process plays the live run: it holds the journal's lock as a writing run does
  local path = journal.path("test_recover live run")
  local live = journal.start(path, { atomic = false, mode = "authoritative", targets = sg.json.array {
    { provider = "gcore", group = "web", exists = true, before = sg.json.array(), keep = sg.json.array(),
      add = sg.json.array(), remove = sg.json.array() } } })
  live:record({ ev = "write", target = 1 })
  local before = cli.state()
  local code, text = cli.run(cli.command(false, { "--recover" }))
  t.eq(code, 0, text)
  t.ok(text:find("left alone: roll-out journal " .. path, 1, true), text)
  t.ok(text:find("still going", 1, true), text)
  t.eq(cli.state(), before, "nothing written")
  t.eq(journal.list(), { path }, "the live run's journal is still there")
  -- a re-run of that roll-out refuses too rather than touch it
  live:finish()
  t.eq(journal.list(), {}, "a finished run removes its journal")
end)

t.run()
