-- One roll-out as it runs: its targets' state, its report, its journal and locks, and what every
-- phase uses (the deadline, progress, the guards of writes). sg.rollout.rollout checks its
-- arguments and makes one; its phases: taking over a killed run's journal (sg.rollout.recover),
-- reading and planning every target, writing, then putting back what must be and reading every
-- touched target back (sg.rollout.settle).
local apply = require "sg.apply"
local journal = require "sg.journal"
local retry = require "sg.retry"
local rule = require "sg.rule"
local snapshot = require "sg.snapshot"
local task = require "sg.task"
local common = require "sg.rollout.common"
local interrupt = require "sg.rollout.interrupt"
local recover = require "sg.rollout.recover"
local settle = require "sg.rollout.settle"

local contained, read, findings_once = common.contained, common.read, common.findings_once
local account_key, account_id, rules_array = common.account_key, common.account_id, common.rules_array
local keyset, same_keys = common.keyset, common.same_keys

-- sg.rollout requires this module: its fields are looked up when used (a caller may change them)
local function rollout() return require "sg.rollout" end

---One target's state while the roll-out runs (what the report says of it is its sg.RolloutTarget).
---@class sg.RolloutTargetState
---@field conn sg.Connection
---@field group_ref any the group reference given
---@field before table? the group as read, snapshot-shaped (nil: it does not exist)
---@field ident {id: any, name: any}? the group's id and name as read (the names it is locked by)
---@field plan sg.Plan|{keep: sg.Rule[], add: sg.Rule[]}? what it is brought to (a recovery's: the killed run's)
---@field fingerprint string? its rules as read (sg.rollout.fingerprint)
---@field interrupted boolean? left untouched: the run was interrupted before its first write
---@field touched boolean? its writes started (recovering: the killed run's had)
---@field applied boolean? its writes went through
---@field failed boolean? it is put back to its snapshot
---@field restoring boolean? putting it back started
---@field restored boolean? it was put back
---@field restore_error any? why the last attempt at putting it back failed
---@field unknown string? why its state is unknown (this run's work still running at the provider)
---@field final sg.Rule[]|false|nil its rules as read back (false: the group does not exist)
---@field complete sg.Rule[]? recovering: the rules of the killed run's plan
---@field unwritten boolean? recovering: the killed run had not started writing it
---@field skip string? recovering: why it is left as it is

---@class sg.RolloutRun
---@field source sg.Snapshot|sg.Rule[]|nil
---@field targets {[1]: sg.Connection, [2]: any}[]
---@field opts sg.RolloutOptions
---@field plan_opts sg.PlanOptions
---@field dry_run boolean
---@field started number task.now() when it started: opts.deadline counts from here
---@field states sg.RolloutTargetState[] per target
---@field report sg.RolloutReport
---@field report_targets sg.RolloutTarget[] report.targets
---@field held table<string, userdata> the target locks held, by lock file name (see Run:lock_targets)
---@field jpath string where the journal of this roll-out lives
---@field jnl sg.Journal? this run's journal, once written
---@field recovering sg.ClaimedJournal? the killed run's journal a recovery (or atomic re-run) finishes
---@field superseded sg.ClaimedJournal? a killed run's journal this run takes over (non-atomic re-run)
---@field on_signal fun(count: integer) this roll-out's part of a signal (see sg.rollout.interrupt)
local Run = {}
Run.__index = Run

local function new_target(conn, ref)
  return { provider = conn.provider, group = ref, status = "failed", added = 0, removed = 0,
    changes = { add = {}, remove = {} }, create_group = false, findings = {} }
end

-- A planned target's status as a dry run reports it.
local function planned_status(t)
  return t.plan:empty() and "unchanged" or "planned"
end

-- The report as the confirmation question shows it: each planned target "planned" or
-- "unchanged" (the report itself keeps "failed" until a target's writes have run, so that a
-- target that dies on the way is reported as such).
local function as_planned(report)
  local view = setmetatable({ targets = {} }, { __index = report })
  for i, t in ipairs(report.targets) do
    view.targets[i] = setmetatable({ status = (t.error == nil and t.plan) and planned_status(t) or t.status },
      { __index = t })
  end
  return view
end

-- The plan of a plan file's target, checked against the live group.
local function plan_from_file(st, entry, group, plan_opts)
  if entry.provider ~= st.conn.provider or snapshot.group_text(entry.group) ~= snapshot.group_text(st.group_ref) then
    error(string.format("the plan file's target is %s %s, not %s %s; make the plan again with the same targets",
      tostring(entry.provider), snapshot.group_text(entry.group), st.conn.provider,
      snapshot.group_text(st.group_ref)), 0)
  end
  -- the same group in another account may hold the same rules: the fingerprint would match
  if entry.account ~= account_id(st.conn) then
    error(string.format("the plan was made for another %s account (or other credentials for it) than the " ..
      "ones sgrun connects with now; set that account's credentials (or --profile), or make the plan again",
      st.conn.provider), 0)
  end
  if rollout().fingerprint(group and group.rules) ~= entry.fingerprint then
    error(string.format("%s %s changed since the plan was made; make the plan again", st.conn.provider,
      snapshot.group_text(st.group_ref)), 0)
  end
  local removing = keyset(entry.remove)
  local desired = {}
  for _, r in ipairs(group and group.rules or {}) do
    if not removing[rule.key(r)] then desired[#desired + 1] = r end
  end
  for _, r in ipairs(entry.add) do desired[#desired + 1] = r end
  local p = apply.plan_group(st.conn, st.group_ref, group, nil, desired,
    { mode = "authoritative", lossy = "allow", create = true, description = plan_opts.description })
  if not same_keys(keyset(p.add), keyset(entry.add)) or not same_keys(keyset(p.remove), removing) then
    error(string.format("%s %s: the plan cannot be applied exactly as written; make the plan again",
      st.conn.provider, snapshot.group_text(st.group_ref)), 0)
  end
  p.findings = entry.findings or {}
  return p
end

---A roll-out of `source` to `targets`, as sg.rollout.rollout checked them; it fills `report`.
---@param source sg.Snapshot|sg.Rule[]|nil
---@param targets {[1]: sg.Connection, [2]: any}[]
---@param opts sg.RolloutOptions
---@param report sg.RolloutReport with no targets yet
---@return sg.RolloutRun
function Run.new(source, targets, opts, report)
  local self = setmetatable({ source = source, targets = targets, opts = opts, report = report,
    report_targets = report.targets, states = {}, held = {} }, Run)
  self.plan_opts = { mode = opts.mode, lossy = opts.lossy, create = opts.create ~= false,
    description = opts.description }
  local options = package.loaded["sg.options"]
  local dry_run = opts.dry_run
  if dry_run == nil then dry_run = options and options.dry_run or false end
  self.dry_run = dry_run
  self.started = task.now()
  for i, pair in ipairs(targets) do
    local conn, ref = pair[1], pair[2]
    self.states[i] = { conn = conn, group_ref = ref }
    self.report_targets[i] = new_target(conn, ref)
  end
  -- the same roll-out (same targets, mode and atomicity) finds the journal of a killed run
  self.jpath = opts.recover and opts.recover.path or rollout().journal_path(targets, opts)
  -- one function per run: sg.rollout.interrupt knows a roll-out by it
  self.on_signal = function(count) self:signalled(count) end
  return self
end

---Seconds left of opts.deadline (math.huge without one).
---@return number
function Run:remaining()
  local opts = self.opts
  if not opts.deadline then return math.huge end
  return math.max(0, opts.deadline - (task.now() - self.started))
end

---Seconds that putting one target back, or waiting for a provider's work to end, may take:
---opts.restore_deadline (default sg.rollout.RESTORE_DEADLINE), within the roll-out's deadline.
---@return number
function Run:restore_budget()
  return math.min(self.opts.restore_deadline or rollout().RESTORE_DEADLINE, self:remaining())
end

-- Each target group's locks (sg.rollout.lock_targets), held from before anything of it is read
-- until the roll-out ends, so that no other roll-out writes to it meanwhile (its rollback would
-- undo this run's change) and nothing this run writes was planned from a read another run made
-- stale. The references given are locked first; the names a group turns out to go by (its id,
-- its name, as read or as a journal records them) before the first write. A dry run locks nothing.
---Takes the locks of every target not held yet.
---@param idents table[]? per target, its identity as read or journaled ({id, name})
function Run:lock_targets(idents)
  local list = {}
  for i, st in ipairs(self.states) do list[i] = { st.conn, st.group_ref, idents and idents[i] } end
  rollout().lock_targets(self.held, list)
end

-- The identities of the targets as journal `j` records them.
local function journaled_idents(j)
  local out = {}
  for i, b in ipairs(j.begin.targets) do out[i] = { id = b.group_id, name = b.group_name } end
  return out
end

---Journals the async work a write of target i started at the provider: in this run's journal,
---or the claimed one of the killed run a recovery finishes (neither in a dry run).
---@param i integer
---@param handle any
function Run:note_async(i, handle)
  local j = self.jnl or self.recovering
  if j then j:note({ ev = "async", target = i, handle = handle }) end
end

---The guard of a target's writes that are not refused once interrupted (restores, a
---recovery's): it only journals the async work they start, so that a kill leaves its handle.
---@param i integer
---@return table guard
function Run:noting_guard(i)
  return { enter = function() end, leave = function() end,
    started = function(handle) self:note_async(i, handle) end }
end

---Tells opts.on_progress that target i reached `step`.
---@param i integer
---@param step string
---@param extra table? more fields of the event
function Run:progress(i, step, extra)
  local opts = self.opts
  if not opts.on_progress then return end
  local ev = { target = i, provider = self.states[i].conn.provider, group = self.states[i].group_ref, step = step }
  for k, v in pairs(extra or {}) do ev[k] = v end
  pcall(opts.on_progress, ev)
end

---The guard of one target's writes (sg.task.guarded), with its progress: once the roll-out is
---interrupted no new write starts, and the refused one first lets the writes and waits in
---flight end, so that restoring reads a group nothing is still changing.
---@param i integer
---@param total integer the writes planned
---@return table guard
function Run:write_guard(i, total)
  local busy, done = 0, 0
  local guard = {}
  ---@async
  function guard.enter(kind, what)
    if kind == "write" then
      local sig = interrupt.signal()
      if sig then
        while busy > 0 do task.sleep(0.05) end
        error(string.format("stopped by %s in the middle of its changes: %s and the writes after it " ..
          "were not sent", sig, what), 0)
      end
    else
      self:progress(i, "waiting", { done = done, total = math.max(total, done) })
    end
    busy = busy + 1
  end
  function guard.leave(kind, ok)
    busy = busy - 1
    if kind == "write" and ok then
      done = done + 1
      self:progress(i, "applying", { done = done, total = math.max(total, done) })
    end
  end
  -- a kill from here on leaves work running at the provider: whoever takes over waits for it
  function guard.started(handle) self:note_async(i, handle) end
  return guard
end

---The report, completed: the signal if any, each target's "done" progress, the findings.
---@return sg.RolloutReport
function Run:finish()
  local report = self.report
  report.interrupted = interrupt.signal()
  for i, t in ipairs(self.report_targets) do self:progress(i, "done", { status = t.status }) end
  report.findings_once = findings_once(self.report_targets)
  return report
end

---The roll-out's phases, in order; the report.
---@async
---@return sg.RolloutReport
function Run:roll_out()
  local opts, states, report, report_targets = self.opts, self.states, self.report, self.report_targets
  if not self.dry_run then self:lock_targets() end
  if opts.recover then
    self:lock_targets(journaled_idents(opts.recover))
    return recover.take_over(self, opts.recover, true)
  end
  if self.dry_run then
    -- previewed, not claimed: the real run deals with it first (see sg.rollout.recover)
    local left = journal.read(self.jpath)
    if left and next(left.started) then report.unfinished = { journal = self.jpath, atomic = opts.atomic == true } end
  else
    local prior, busy = journal.claim(self.jpath)
    -- the same roll-out running elsewhere: skipped, as a playbook whose lock is taken (75)
    if prior == false then require("sg.errors").raise_user(busy, 75) end
    if prior then
      -- an atomic re-run undoes the killed run's writes first
      self:lock_targets(journaled_idents(prior))
      local rep = recover.take_over(self, prior)
      if rep then return rep end
    end
  end
  -- 1. read and plan every target; nothing changes yet
  local planned = {}
  for i, st in ipairs(states) do
    ---@async
    planned[i] = function()
      self:progress(i, "reading")
      local group, absent = read(st.conn, st.group_ref)
      -- snapshot-shaped, so that restoring puts back the provider's own form of each rule
      st.before = group and { rules = group.rules, raw = group.raw_rules, provider = st.conn.provider,
        group = { id = group.id, name = group.name } } -- nil: the roll-out creates the group
      st.ident = group and { id = group.id, name = group.name }
      self:progress(i, "planning")
      if opts.plan_file then
        st.plan = plan_from_file(st, opts.plan_file.targets[i], group, self.plan_opts)
      else
        st.plan = apply.plan_group(st.conn, st.group_ref, group, absent, self.source, self.plan_opts)
      end
      st.fingerprint = rollout().fingerprint(group and group.rules)
    end
  end
  local plan_failed = false
  local outcomes = contained(planned, self:remaining(), "reading and planning")
  -- one group named twice (by name and by id): planned twice from one read, its second apply
  -- would undo or repeat the first; only the first is kept
  local by_group = {}
  for i, st in ipairs(states) do
    -- read, even if its planning failed: a plan file's copy of a target may fail its checks
    local id = st.before and st.before.group.id
    if id then
      local key = account_key(st.conn) .. "\0" .. tostring(id)
      local first = by_group[key]
      if first and opts.plan_file then
        require("sg.errors").raise_user(string.format("the plan file names one group twice: targets %d (%s %s) " ..
          "and %d (%s) are the same group, id %s; it is damaged or hand-edited: make the plan again with " ..
          "--plan-out", first, st.conn.provider, snapshot.group_text(states[first].group_ref), i,
          snapshot.group_text(st.group_ref), tostring(id)))
      elseif first then
        if outcomes[i] == true then
          st.plan = nil
          outcomes[i] = string.format("not changed: %s %s is the group target %d (%s) names, id %s; give " ..
            "each group once", st.conn.provider, snapshot.group_text(st.group_ref), first,
            snapshot.group_text(states[first].group_ref), tostring(id))
        end
      else
        by_group[key] = i
      end
    end
  end
  for i, st in ipairs(states) do
    local t, ok_err = report_targets[i], outcomes[i]
    if st.plan then
      t.plan = st.plan
      t.findings = st.plan.findings
      t.create_group = st.plan.create_group ~= nil
      t.changes = { add = st.plan.add, remove = st.plan.remove }
      t.added, t.removed = #st.plan.add, #st.plan.remove
    end
    if ok_err ~= true then
      plan_failed = true
      st.plan = nil
      t.error = ok_err
      if type(ok_err) == "table" and ok_err.findings then t.findings = ok_err.findings end
    end
  end
  report.ok = not plan_failed
  if self.dry_run then
    for i, t in ipairs(report_targets) do
      if t.error == nil then
        t.status = planned_status(t)
        t.fingerprint = states[i].fingerprint
        t.account = account_id(states[i].conn)
      end
    end
    return self:finish()
  end

  local function untouched(why)
    for i, t in ipairs(report_targets) do
      if states[i].plan then
        t.status, t.error = "unchanged", why
        t.changes, t.added, t.removed, t.create_group = { add = {}, remove = {} }, 0, 0, false
      end
    end
  end
  if plan_failed and opts.atomic then
    untouched("not changed: another target could not be planned, so the atomic roll-out stopped " ..
      "before touching any")
    return self:finish()
  end
  if plan_failed and opts.plan_file then
    -- a plan was reviewed whole: a part of it is a change nobody looked at
    untouched("not changed: another target of the plan file cannot be applied as planned, and a plan " ..
      "is applied whole or not at all")
    return self:finish()
  end
  if plan_failed and self.superseded then
    -- the killed run's journal is all that records what it left half-done on the target that
    -- could not be planned: it is kept, so nothing is written that would replace it
    untouched(string.format("not changed: a killed run left this roll-out unfinished (journal %s) " ..
      "and not every target could be planned now; fix the error above and run again, or finish " ..
      "the killed run's plan with `sgrun scripts/rollout.lua --recover`", self.superseded.path))
    return self:finish()
  end
  local removes = false
  for _, st in ipairs(states) do
    if st.plan and #st.plan.remove > 0 then removes = true end
  end
  local confirmed = not (removes and opts.confirm) or opts.confirm(as_planned(report))
  -- a signal while planning, or while the question waited for an answer (it ends the wait
  -- with no answer): an interruption, however the question took it
  if interrupt.signal() then
    report.ok = false
    for i, t in ipairs(report_targets) do
      local plan = states[i].plan
      if plan then
        t.status = plan:empty() and "unchanged" or "interrupted"
        t.error = not plan:empty() and "interrupted before any write: nothing was changed" or nil
        t.changes, t.added, t.removed, t.create_group = { add = {}, remove = {} }, 0, 0, false
      end
    end
    return self:finish()
  end
  if not confirmed then
    -- each target as the question showed it: the changes it has are not made, not absent
    report.aborted, report.ok = true, false
    for i, t in ipairs(report_targets) do
      if states[i].plan then t.status = planned_status(t) end
    end
    return self:finish()
  end

  local idents = {}
  for i, st in ipairs(states) do idents[i] = st.ident end
  self:lock_targets(idents)

  -- every target's snapshot and plan go to the journal before the first write
  local json = require "sg.json"
  local jtargets = json.array()
  for i, st in ipairs(states) do
    jtargets[i] = { provider = st.conn.provider, account = account_id(st.conn), group = st.group_ref,
      exists = st.before ~= nil,
      before = rules_array(st.before and st.before.rules),
      -- raw rules and group id: recovery restores the provider's own form as restore does
      raw = st.before and json.array({ table.unpack(st.before.raw or {}) }),
      group_id = st.before and st.before.group.id, group_name = st.before and st.before.group.name,
      -- what completing needs without the source: the plan's kept rules and additions
      keep = rules_array(st.plan and st.plan.keep),
      add = rules_array(st.plan and st.plan.add), remove = rules_array(st.plan and st.plan.remove) }
  end
  local begin = { targets = jtargets, atomic = opts.atomic or false, mode = opts.mode or "authoritative" }
  -- a killed run's journal is replaced only once this one is written: a journal that cannot be
  -- written leaves that record whole
  self.jnl = self.superseded and journal.replace(self.superseded, begin) or journal.start(self.jpath, begin)

  -- 2. apply every non-empty plan concurrently; keep a third of the deadline for putting back
  local applies = {}
  for i, st in ipairs(states) do
    ---@async
    applies[i] = function()
      if not st.plan or st.plan:empty() then return end
      if interrupt.signal() then
        st.interrupted = true
        return
      end
      st.touched = true
      self.jnl:record({ ev = "write", target = i })
      local total = apply.write_count(st.plan)
      task.context({ guard = self:write_guard(i, total) })
      self:progress(i, "applying", { done = 0, total = total })
      local r = apply.apply(st.plan)
      self.jnl:record({ ev = "written", target = i })
      if not r.ok then error(r.error, 0) end
      st.applied = true
      self:progress(i, "verifying")
    end
  end
  local apply_budget = opts.deadline and self:remaining() * 2 / 3 or math.huge
  local applied = contained(applies, apply_budget, "applying")
  local any_failed = plan_failed or (opts.atomic and interrupt.signal() ~= nil)
  for i, st in ipairs(states) do
    if applied[i] ~= true then
      st.failed = true
      any_failed = true
      report_targets[i].error = applied[i]
    end
  end

  local rep = settle.put_back_and_read(self, any_failed)
  -- a target left neither as planned nor as it was (its restore failed, or its state is
  -- unknown) is what a journal is for: kept, a later --recover or re-run finishes it
  local left = false
  for i, t in ipairs(report_targets) do
    if states[i].touched and t.status == "failed" then left = true end
  end
  if left then
    self.jnl:keep()
    rep.journal_kept = self.jpath
  else
    self.jnl:finish()
  end
  return rep
end

-- What is known when a second signal ends the run at once: each target says what it had
-- reached, unverified.
function Run:known_now()
  local opts, states, report, report_targets = self.opts, self.states, self.report, self.report_targets
  local again = "run the same roll-out again: it finds the journal and completes it (with --atomic, undoes it)"
  for i, st in ipairs(states) do
    local t = report_targets[i]
    if st.restored then
      t.status, t.changes, t.added, t.removed = "rolled_back", { add = {}, remove = {} }, 0, 0
    elseif st.restoring or (st.touched and not st.applied) then
      t.status = "unknown"
      t.error = string.format("interrupted again %s; %s",
        st.restoring and "while restoring its snapshot" or "in the middle of its changes", again)
      t.changes, t.added, t.removed, t.create_group = { add = {}, remove = {} }, 0, 0, false
    elseif st.applied then
      t.status = "converged"
    else
      -- not touched: planned or not (a failed plan keeps its error)
      if st.plan and st.plan:empty() then
        t.status = "unchanged"
      else
        t.status, t.error = "interrupted", t.error or "left untouched: the run stopped before its first write"
      end
      t.changes, t.added, t.removed, t.create_group = { add = {}, remove = {} }, 0, 0, false
    end
  end
  report.ok, report.abandoned, report.interrupted = false, true, interrupt.signal()
  report.findings_once = findings_once(report_targets)
  opts.on_abandon(report)
end

---This roll-out's part of a signal (see sg.rollout.interrupt): called outside any task.
---@param count integer the signals so far
function Run:signalled(count)
  local opts = self.opts
  if count == 1 then
    if opts.on_progress then pcall(opts.on_progress, nil) end -- a line below the progress block
  elseif opts.on_abandon then
    self:known_now()
  end
end

---Runs the roll-out (its signals handled, its locks and journal released at the end): the report.
---@async
---@return sg.RolloutReport
function Run:run()
  if not self.dry_run then interrupt.start(self.on_signal) end
  local ok, res = pcall(retry.with_call_timeout, self.opts.timeout,
    ---@async
    function() return self:roll_out() end)
  -- not replaced by this run's journal (it stopped before writing): kept for the next
  if self.superseded then self.superseded:release() end
  for _, lock in pairs(self.held) do lock:release() end
  if not self.dry_run then
    local sig = interrupt.stop(self.on_signal)
    if ok and sig then
      res.interrupted, res.ok = sig, false
    end
  end
  if not ok then error(res, 0) end
  return res
end

return Run
