-- One roll-out as it runs: its targets' state, its report, its journal and locks, and what every
-- phase uses (the deadline, progress, the guards of writes). sg.rollout.rollout checks its
-- arguments and makes one; its phases (Run:roll_out): taking over a killed run's journal
-- (sg.rollout.recover), reading and planning every target (sg.rollout.planning), writing
-- (sg.rollout.writing), then putting back what must be and reading every touched target back
-- (sg.rollout.settle).
local journal = require "sg.journal"
local retry = require "sg.retry"
local task = require "sg.task"
local common = require "sg.rollout.common"
local interrupt = require "sg.rollout.interrupt"
local planning = require "sg.rollout.planning"
local recover = require "sg.rollout.recover"
local settle = require "sg.rollout.settle"
local writing = require "sg.rollout.writing"

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
---@field created boolean? the group it was to create was created
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

---Takes the locks of every target not held yet (sg.rollout.lock_targets). Each target group's
---locks are held from before anything of it is read until the roll-out ends, so that no other
---roll-out writes to it meanwhile (its rollback would undo this run's change) and nothing this
---run writes was planned from a read another run made stale. The references given are locked
---first; the names a group turns out to go by (its id, its name, as read or as a journal records
---them) before the first write. A dry run locks nothing.
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
  report.findings_once = common.findings_once(self.report_targets)
  return report
end

-- Another roll-out (other targets, another order or mode) that a killed run left unfinished
-- names one of this one's targets in the same account: this run would write over what that run
-- left half-done, and that journal's --recover would later undo this run's success. Nothing is
-- written until --recover has dealt with it (a dry run says so too). The report then, else nil.
local function stop_for_other_journal(self)
  local only = {}
  for i, st in ipairs(self.states) do only[i] = { st.conn.provider, st.group_ref, common.account_id(st.conn) } end
  local others = {}
  for _, path in ipairs(rollout().unfinished(only)) do
    -- a live run's journal is not a killed run's: its targets' locks keep this run off them (a
    -- dry run plans beside it)
    local claimed = path ~= self.jpath and journal.claim(path)
    if claimed then
      claimed:release()
      others[#others + 1] = path
    end
  end
  if #others == 0 then return nil end
  local recover_args = {}
  for _, st in ipairs(self.states) do
    recover_args[#recover_args + 1] = st.conn.provider .. ":" .. require("sg.snapshot").group_text(st.group_ref)
  end
  for _, t in ipairs(self.report_targets) do
    t.status = "unchanged"
    t.error = string.format("not changed: a killed run left another roll-out of these groups unfinished " ..
      "(journal %s); finish or undo it first with `sgrun scripts/rollout.lua --recover %s`, then run " ..
      "this roll-out again", table.concat(others, ", "), table.concat(recover_args, " "))
  end
  self.report.ok = false
  return self:finish()
end

---The roll-out's phases, in order; the report.
---@async
---@return sg.RolloutReport
function Run:roll_out()
  local opts = self.opts
  if not self.dry_run then self:lock_targets() end
  if opts.recover then
    self:lock_targets(journaled_idents(opts.recover))
    return recover.take_over(self, opts.recover, true)
  end
  local blocked = stop_for_other_journal(self)
  if blocked then return blocked end
  if self.dry_run then
    -- previewed, not claimed: the real run deals with it first (see sg.rollout.recover)
    local left = journal.read(self.jpath)
    if left and next(left.started) then self.report.unfinished = { journal = self.jpath, atomic = opts.atomic == true } end
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
  local plan_failed = planning.read_and_plan(self)
  if self.dry_run then return planning.dry_run_report(self) end
  local stopped = writing.stop_before_writing(self, plan_failed)
  if stopped then return stopped end

  local idents = {}
  for i, st in ipairs(self.states) do idents[i] = st.ident end
  self:lock_targets(idents)
  writing.start_journal(self)
  local any_failed = writing.apply_all(self, plan_failed)

  local rep = settle.put_back_and_read(self, any_failed)
  -- a target left neither as planned nor as it was (its restore failed, or its state is
  -- unknown) is what a journal is for: kept, a later --recover or re-run finishes it
  local left = false
  for i, t in ipairs(self.report_targets) do
    if self.states[i].touched and t.status == "failed" then left = true end
  end
  if left then
    self.jnl:keep()
    rep.journal_kept = self.jpath
  else
    self.jnl:finish()
  end
  return rep
end

---What is known when a second signal ends the run at once: each target says what it had
---reached, unverified; opts.on_abandon gets that report.
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
  report.findings_once = common.findings_once(report_targets)
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
