-- A run taking over from a killed one (its journal): the killed run's async work still running at
-- the provider is waited for before anything is read, whether the journal names it (Exoscale's
-- operations, which no endpoint lists) or the provider lists it (Gcore's tasks); and a journal
-- whose targets could not be put right is kept, never dropped. The killed runs are made here:
-- their journal written as sg.rollout writes it, their writes sent, their tasks held by the
-- emulator (hold_tasks) until the run taking over has shown what it reads first.
local t = require "testlib"
local sg = require "sg"
local rule = require "sg.rule"
local journal = require "sg.journal"
local rollout = require "sg.rollout"
local wire = require "sim_wire"
local json = sg.json

local SSH = rule.normalize { direction = "ingress", protocol = "tcp", port = 22, cidr = "198.51.100.0/24" }
local EXTRA = rule.normalize { direction = "ingress", protocol = "tcp", port = 8125, cidr = "203.0.113.0/24" }

local function reset()
  wire.reset()
  wire.control("DELETE", "/_sim/log")
  wire.knobs({ task_duration_ms = 100, task_error_rate = 0, error_rate = 0, hold_tasks = false })
end

-- The journal of a run killed after its first write to one target (its lock dropped, as the
-- kernel drops it): begin (snapshot and plan), write, and what `extra` adds (async records).
local function killed_journal(jpath, atomic, target, extra)
  local jnl = journal.start(jpath, { atomic = atomic, mode = "authoritative", targets = json.array { target } })
  jnl:record({ ev = "write", target = 1 })
  for _, rec in ipairs(extra or {}) do jnl:note(rec) end
  jnl.file:close()
  jnl.lock:close()
end

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

-- Runs fn() while the emulator holds every task, letting them go once the emulator's log shows a
-- request that `seen(entry)` picks out: what the run taking over asks first. Returns fn's result.
---@async
local function held_until(seen, fn)
  local log = wire.control("GET", "/_sim/log").requests
  local since = #log > 0 and log[#log].seq or 0
  wire.knobs({ hold_tasks = true })
  local out
  sg.all({
    function() out = fn() end,
    function()
      for _ = 1, 600 do
        for _, e in ipairs(wire.control("GET", "/_sim/log?since=" .. since).requests) do
          if seen(e) then
            wire.knobs({ hold_tasks = false })
            return
          end
        end
        sg.sleep(0.05)
      end
      wire.knobs({ hold_tasks = false })
    end,
  })
  return out
end

-- A fresh emulator, Exoscale's "web" and its snapshot, and the journal target record of a killed
-- run that was adding EXTRA to it (`keep`: with the rules its plan kept, as a non-atomic run's).
local function exoscale_web(keep)
  reset()
  local exo = sg.connect("exoscale")
  local snap = sg.snapshot(exo, "web")
  return exo, snap, { provider = "exoscale", group = "web", exists = true, before = json.array(snap.rules),
    raw = json.array(snap.raw), group_id = snap.group.id, keep = keep and json.array(snap.rules) or nil,
    add = json.array { EXTRA }, remove = json.array() }
end

t.test("a re-run whose undo of a killed atomic run fails keeps the journal, and the next one undoes it", function()
  local exo, snap, target = exoscale_web(false)
  local refs = function(c) return { { c, "web" } } end
  local jpath = rollout.journal_path(refs(exo), { atomic = true })
  killed_journal(jpath, true, target)
  -- what the killed run wrote
  local with_extra = { EXTRA }
  for _, r in ipairs(snap.rules) do with_extra[#with_extra + 1] = r end
  t.ok(sg.apply(sg.plan(exo, "web", with_extra, { lossy = "allow" })).ok)
  -- the re-run cannot write: its undo fails
  local refused = sg.connect("exoscale", { retry = { attempts = 1 }, transport = function(req)
    if req.method ~= "GET" then return { status = 400, headers = {}, body = '{"message":"refused by the test"}' } end
    return sg.http.request(req)
  end })
  local report = rollout.rollout({ SSH }, refs(refused), { atomic = true, lossy = "allow", restore_deadline = 1 })
  t.eq(report.ok, false)
  t.eq(report.targets[1].status, "failed", tostring(report))
  t.eq(report.journal_kept, jpath, "the report names the journal it keeps")
  t.ok(exists(jpath), "the only record of the snapshot to put back is kept")
  t.ok(tostring(report):find("is kept", 1, true), tostring(report))
  -- the next run can write: it undoes the killed run, and only then is the journal gone
  report = rollout.rollout({ SSH }, refs(exo), { atomic = true, lossy = "allow" })
  t.eq(report.recovered and report.recovered.action, "undone", tostring(report))
  t.eq(report.targets[1].status, "rolled_back", tostring(report))
  t.eq(wire.keys(assert(exo:group("web")).rules), wire.keys(snap.rules), "the snapshot is back")
  t.ok(not exists(jpath), "a journal dealt with is removed")
end)

t.test("a re-run taking over from a run killed while Gcore created a group waits for that task", function()
  -- Gcore's names are not unique: reading before the killed run's create lands finds no group,
  -- and the re-run would make a second one that breaks every later run
  reset()
  local gc = sg.connect("gcore")
  local refs = { { gc, "takeover" } }
  local jpath = rollout.journal_path(refs, {})
  local report = held_until(function(e) return e.provider == "gcore" and e.method == "GET" end, function()
    killed_journal(jpath, false, { provider = "gcore", group = "takeover", exists = false,
      before = json.array(), keep = json.array(), add = json.array { SSH }, remove = json.array() })
    gc:create_security_group({ name = "takeover", rules = json.array() }) -- its task held
    return rollout.rollout({ SSH }, refs, { lossy = "allow" })
  end)
  t.ok(report.ok, tostring(report))
  local named = 0
  for _, g in ipairs(gc:groups()) do
    if g.name == "takeover" then named = named + 1 end
  end
  t.eq(named, 1, "one group of that name")
  t.eq(wire.keys(assert(gc:group("takeover")).rules), wire.keys({ SSH }))
  t.ok(not exists(jpath))
end)

t.test("an Exoscale operation the killed run journaled is waited for before --recover reads", function()
  local exo, snap, target = exoscale_web(false)
  local refs = { { exo, "web" } }
  local jpath = rollout.journal_path(refs, { atomic = true })
  local rec = held_until(function(e) return e.method == "GET" and e.path:find("/operation/", 1, true) end, function()
    -- the killed run's add, answered (its operation pending) and journaled before the kill
    local handle
    sg.all({ function()
      require("sg.task").context({ guard = { enter = function() end, leave = function() end,
        started = function(h) handle = h end } })
      exo:add_rule_to_security_group(snap.group.id, { ["flow-direction"] = "ingress", protocol = "tcp",
        ["start-port"] = 8125, ["end-port"] = 8125, network = "203.0.113.0/24" })
    end })
    t.ok(handle, "the write announced its operation")
    killed_journal(jpath, true, target, { { ev = "async", target = 1, handle = json.decode(json.encode(handle)) } })
    local prior = assert(journal.claim(jpath))
    return rollout.rollout(nil, refs, { atomic = true, recover = prior })
  end)
  t.eq(rec.targets[1].status, "rolled_back", tostring(rec))
  wire.knobs({ task_duration_ms = 0 })
  t.eq(wire.keys(assert(exo:group("web")).rules), wire.keys(snap.rules),
    "the add landed before the recovery read, and was undone")
  t.ok(not exists(jpath))
end)

t.test("work a journal names that cannot be seen to end leaves the target alone and keeps the journal", function()
  local exo, snap, target = exoscale_web(true)
  local refs = { { exo, "web" } }
  local jpath = rollout.journal_path(refs, {})
  -- an operation that cannot be read (the provider keeps failing): still running, for all one knows
  local unreadable = sg.connect("exoscale", { retry = { attempts = 1 }, transport = function(req)
    if req.url:find("/operation/", 1, true) then
      return { status = 503, headers = {}, body = '{"message":"unavailable, said the test"}' }
    end
    return sg.http.request(req)
  end })
  for _, case in ipairs({
    { what = "a damaged handle", conn = exo,
      handle = { endpoint = "no_such_endpoint", args = json.array(), value = {} } },
    { what = "an operation that cannot be read", conn = unreadable,
      handle = { endpoint = "add_rule_to_security_group", args = json.array { snap.group.id },
        value = { id = "00000000-0000-4000-8000-000000000000", state = "pending" } } },
  }) do
    refs = { { case.conn, "web" } }
    killed_journal(jpath, false, target, { { ev = "async", target = 1, handle = case.handle } })
    local report = rollout.rollout({ SSH }, refs, { lossy = "allow" })
    t.eq(report.ok, false, case.what)
    t.eq(report.targets[1].status, "failed", case.what .. ": " .. tostring(report))
    t.ok(tostring(report.targets[1].error):find("could not be seen to end", 1, true), tostring(report))
    t.eq(report.journal_kept, jpath, case.what)
    t.ok(not tostring(report):find("took over", 1, true), case.what .. ": " .. tostring(report))
    t.eq(wire.keys(assert(exo:group("web")).rules), wire.keys(snap.rules), case.what .. ": nothing written")
    os.remove(jpath)
  end
end)

-- Calls fn() with every handle sg.task.started announces checked, as it is announced, against
-- the journal at jpath: the list of {endpoint, whether the journal already held its id}.
local function announced(jpath, fn)
  local task = require "sg.task"
  local original, seen = task.started, {}
  task.started = function(handle)
    original(handle)
    local f = io.open(jpath, "rb")
    local text = f and f:read("a") or ""
    if f then f:close() end
    seen[#seen + 1] = { handle.endpoint, text:find(tostring(handle.value.id), 1, true) ~= nil }
  end
  local ok, err = pcall(fn)
  task.started = original
  if not ok then error(err, 0) end
  return seen
end

t.test("a restore's and a recovery's async work is journaled as it starts", function()
  -- a restore: the add of 8125 is undone after the add of 8126 is refused
  local exo = exoscale_web(false)
  local refused = sg.connect("exoscale", { transport = wire.refusing_add(8126) })
  local refs = { { refused, "web" } }
  local adds = { EXTRA, rule.normalize { direction = "ingress", protocol = "tcp", port = 8126 } }
  local report
  local seen = announced(rollout.journal_path(refs, { mode = "additive" }), function()
    report = rollout.rollout(adds, refs, { mode = "additive" })
  end)
  t.eq(report.targets[1].status, "rolled_back", tostring(report))
  t.eq(seen, { { "add_rule_to_security_group", true }, { "delete_rule_from_security_group", true } })
  -- a recovery completing a killed run's plan: its add goes into the claimed journal
  local _, _, target = exoscale_web(true)
  refs = { { exo, "web" } }
  local jpath = rollout.journal_path(refs, {})
  killed_journal(jpath, false, target)
  seen = announced(jpath, function()
    report = rollout.rollout(nil, refs, { recover = assert(journal.claim(jpath)) })
  end)
  t.eq(report.targets[1].status, "converged", tostring(report))
  t.eq(seen, { { "add_rule_to_security_group", true } })
end)

t.test("the wait for a killed run's work is bounded by the roll-out's deadline", function()
  local exo, _, target = exoscale_web(true)
  local refs = { { exo, "web" } }
  local jpath = rollout.journal_path(refs, {})
  -- an operation the provider keeps pending: held until the run taking over has given up on it
  wire.knobs({ hold_tasks = true })
  local op = exo:add_rule_to_security_group(target.group_id, { ["flow-direction"] = "ingress", protocol = "tcp",
    ["start-port"] = 8125, ["end-port"] = 8125, network = "203.0.113.0/24" })
  killed_journal(jpath, false, target, { { ev = "async", target = 1,
    handle = { endpoint = "add_rule_to_security_group", args = json.array { target.group_id }, value = op } } })
  local report = rollout.rollout({ SSH }, refs, { lossy = "allow", deadline = 1 })
  wire.knobs({ hold_tasks = false })
  t.eq(report.targets[1].status, "failed", tostring(report))
  t.ok(tostring(report.targets[1].error):find("could not be seen to end", 1, true), tostring(report))
  t.eq(report.journal_kept, jpath)
  os.remove(jpath)
end)

t.test("a write in flight when its sibling fails runs to its end, so the restore undoes it", function()
  -- the add of 8125 reaches the provider, and its reply is slow; the add of 8126 is refused
  -- meanwhile. Cancelled mid-request, the first add would leave an operation nobody waits for:
  -- the restore would read the group before it landed and find nothing to undo.
  local exo, snap = exoscale_web(false)
  wire.knobs({ task_duration_ms = 1000 })
  local conn = sg.connect("exoscale", { transport = wire.refusing_add(8126, {
    -- refused once the other add has reached the provider, whose reply is slow to come back
    first = function() while #wire.mutations("exoscale") == 0 do sg.sleep(0.02) end end,
    slow_reply = 0.5 }) })
  local adds = { EXTRA, rule.normalize { direction = "ingress", protocol = "tcp", port = 8126 } }
  local report = rollout.rollout(adds, { { conn, "web" } }, { mode = "additive" })
  t.eq(report.targets[1].status, "rolled_back", tostring(report))
  wire.knobs({ task_duration_ms = 0 })
  sg.sleep(1.2) -- an operation left running (1 s) has landed by now
  t.eq(wire.keys(assert(exo:group("web")).rules), wire.keys(snap.rules), "the snapshot holds")
end)

t.test("a roll-out naming a target of another killed run's journal writes nothing until --recover", function()
  -- an atomic run killed mid-way, then the same groups rolled out in another order or mode: that
  -- run converged and exited 0, and a later --recover undid it from the old journal
  local exo, snap, target = exoscale_web(false)
  target.account = require("sg.rollout.common").account_id(exo)
  local jpath = rollout.journal_path({ { exo, "web" } }, { atomic = true })
  killed_journal(jpath, true, target)
  wire.control("DELETE", "/_sim/log")
  local gcore = sg.connect("gcore")
  local desired = { SSH, EXTRA }
  for _, opts in ipairs { {}, { dry_run = true } } do
    local report = rollout.rollout(desired, { { gcore, "web" }, { exo, "web" } }, opts)
    t.eq(report.ok, false, tostring(report))
    for _, tr in ipairs(report.targets) do
      t.ok(tostring(tr.error):find(jpath, 1, true) and tostring(tr.error):find("--recover", 1, true), tostring(tr.error))
    end
  end
  t.eq(#wire.mutations("exoscale") + #wire.mutations("gcore"), 0, "nothing written")
  t.ok(exists(jpath), "the journal stays for --recover")
  -- another account's journal of a group of the same name is not this one's
  local other = sg.connect("exoscale", { key = "EXOother00000000000000000000", secret = "another-secret" })
  target.account = require("sg.rollout.common").account_id(other)
  os.remove(jpath)
  killed_journal(jpath, true, target)
  local report = rollout.rollout(desired, { { gcore, "web" }, { exo, "web" } }, { dry_run = true })
  t.ok(not tostring(report.targets[2].error):find(jpath, 1, true), tostring(report))
  os.remove(jpath)
  t.ok(snap)
end)

t.test("--apply-plan after a run of the same plan was killed mid-way says to --recover", function()
  -- the plan was made before the killed run wrote part of it: applying it anew fails the target
  -- as changed since; what finishes the job is --recover, which completes the killed run's plan
  local exo, _, target = exoscale_web(true)
  local dir = os.tmpname()
  local preview = rollout.rollout({ EXTRA }, { { exo, "web" } }, { mode = "additive", dry_run = true })
  rollout.write_plan(preview, dir)
  local plan = rollout.read_plan(dir)
  os.remove(dir)
  -- the killed run's write that landed
  t.ok(rollout.rollout({ EXTRA }, { { exo, "web" } }, { mode = "additive" }).ok)
  local jpath = rollout.journal_path({ { exo, "web" } }, {})
  target.account = require("sg.rollout.common").account_id(exo)
  killed_journal(jpath, false, target)
  wire.control("DELETE", "/_sim/log")
  local report = rollout.rollout(nil, { { exo, "web" } }, { plan_file = plan })
  t.eq(report.ok, false, tostring(report))
  local err = tostring(report.targets[1].error)
  t.ok(err:find(jpath, 1, true) and err:find("--recover", 1, true), err)
  t.ok(not tostring(report):find("from the source", 1, true), tostring(report))
  t.eq(#wire.mutations("exoscale"), 0, "nothing written")
  t.ok(exists(jpath), "the journal stays for --recover")
  os.remove(jpath)
end)

t.test("conn:follow refuses what is not a handle of the provider's async work", function()
  local exo = sg.connect("exoscale")
  t.raises(function() exo:follow({ endpoint = "list_security_groups", args = {}, value = {} }) end,
    "not the handle of exoscale async work")
  t.raises(function() exo:follow("op-1") end, "not the handle")
end)

t.run()
