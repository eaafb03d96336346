-- From a planned roll-out to its writes: whether to write at all (a target that could not be
-- planned, the confirmation, a signal meanwhile), the journal every write is recorded in, and
-- 2. the writes themselves.
local apply = require "sg.apply"
local journal = require "sg.journal"
local task = require "sg.task"
local common = require "sg.rollout.common"
local interrupt = require "sg.rollout.interrupt"
local planning = require "sg.rollout.planning"

local contained, account_id, rules_array = common.contained, common.account_id, common.rules_array

local M = {}

-- The report as the confirmation question shows it: each planned target "planned" or
-- "unchanged" (the report itself keeps "failed" until a target's writes have run, so that a
-- target that dies on the way is reported as such).
local function as_planned(report)
  local view = setmetatable({ targets = {} }, { __index = report })
  for i, t in ipairs(report.targets) do
    view.targets[i] = setmetatable({ status = (t.error == nil and t.plan) and planning.planned_status(t) or t.status },
      { __index = t })
  end
  return view
end

-- Every target that was planned is reported "unchanged", for `why`.
local function untouched(run, why)
  for i, t in ipairs(run.report_targets) do
    if run.states[i].plan then
      t.status, t.error = "unchanged", why
      t.changes, t.added, t.removed, t.create_group = { add = {}, remove = {} }, 0, 0, false
    end
  end
end

-- A target could not be planned: the report if that stops the roll-out before any write, else nil.
local function stop_for_unplanned(run)
  local opts = run.opts
  if opts.atomic then
    untouched(run, "not changed: another target could not be planned, so the atomic roll-out stopped " ..
      "before touching any")
    return run:finish()
  end
  if opts.plan_file then
    -- a plan was reviewed whole: a part of it is a change nobody looked at
    untouched(run, "not changed: another target of the plan file cannot be applied as planned, and a plan " ..
      "is applied whole or not at all")
    return run:finish()
  end
  if run.superseded then
    -- the killed run's journal is all that records what it left half-done on the target that
    -- could not be planned: it is kept, so nothing is written that would replace it
    untouched(run, string.format("not changed: a killed run left this roll-out unfinished (journal %s) " ..
      "and not every target could be planned now; fix the error above and run again, or finish " ..
      "the killed run's plan with `sgrun scripts/rollout.lua --recover`", run.superseded.path))
    return run:finish()
  end
  return nil
end

-- Asks opts.confirm when a target would lose rules: the report if the answer (or a signal)
-- stops the roll-out, else nil.
local function stop_unconfirmed(run)
  local opts, states, report, report_targets = run.opts, run.states, run.report, run.report_targets
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
    return run:finish()
  end
  if not confirmed then
    -- each target as the question showed it: the changes it has are not made, not absent
    report.aborted, report.ok = true, false
    for i, t in ipairs(report_targets) do
      if states[i].plan then t.status = planning.planned_status(t) end
    end
    return run:finish()
  end
  return nil
end

---The report if the roll-out stops before its first write, else nil: it goes on writing.
---@param run sg.RolloutRun
---@param plan_failed boolean a target could not be planned
---@return sg.RolloutReport?
function M.stop_before_writing(run, plan_failed)
  if plan_failed then
    local rep = stop_for_unplanned(run)
    if rep then return rep end
  end
  return stop_unconfirmed(run)
end

---Every target's snapshot and plan go to the journal (run.jnl) before the first write.
---@param run sg.RolloutRun
function M.start_journal(run)
  local opts = run.opts
  local json = require "sg.json"
  local jtargets = json.array()
  for i, st in ipairs(run.states) do
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
  run.jnl = run.superseded and journal.replace(run.superseded, begin) or journal.start(run.jpath, begin)
end

-- Applies target i's plan, unless it is empty or the roll-out was interrupted first.
---@async
local function apply_target(run, i, st)
  if not st.plan or st.plan:empty() then return end
  if interrupt.signal() then
    st.interrupted = true
    return
  end
  st.touched = true
  run.jnl:record({ ev = "write", target = i })
  local total = apply.write_count(st.plan)
  task.context({ guard = run:write_guard(i, total) })
  run:progress(i, "applying", { done = 0, total = total })
  local r = apply.apply(st.plan)
  st.created = r.created
  run.jnl:record({ ev = "written", target = i })
  if not r.ok then error(r.error, 0) end
  st.applied = true
  run:progress(i, "verifying")
end

---2. apply every non-empty plan concurrently; keep a third of the deadline for putting back.
---@async
---@param run sg.RolloutRun
---@param plan_failed boolean a target could not be planned
---@return boolean? any_failed a target failed (or could not be planned, or an atomic run was interrupted)
function M.apply_all(run, plan_failed)
  local opts = run.opts
  local applies = {}
  for i, st in ipairs(run.states) do
    ---@async
    applies[i] = function() apply_target(run, i, st) end
  end
  local apply_budget = opts.deadline and run:remaining() * 2 / 3 or math.huge
  local applied = contained(applies, apply_budget, "applying")
  local any_failed = plan_failed or (opts.atomic and interrupt.signal() ~= nil)
  for i, st in ipairs(run.states) do
    if applied[i] ~= true then
      st.failed = true
      any_failed = true
      run.report_targets[i].error = applied[i]
    end
  end
  return any_failed
end

return M
