-- Taking over the journal a killed run left (claimed, that is locked, by this run). With atomic,
-- every target it had started writing is put back (and this run changes nothing more).
-- Otherwise a re-run drops it and converges from its source, while a standalone recovery
-- (opts.recover: no source) completes the roll-out: every target is brought to the killed run's
-- plan (what it kept plus what it added), a target not yet written only if it still holds its
-- snapshot (a plan made from a changed group is not applied). A standalone recovery that leaves
-- a target failed keeps the journal for a next try.
local apply = require "sg.apply"
local rule = require "sg.rule"
local task = require "sg.task"
local common = require "sg.rollout.common"
local settle = require "sg.rollout.settle"

local bounded, contained, error_text, read = common.bounded, common.contained, common.error_text, common.read

local M = {}

-- sg.rollout requires this module: its fields are looked up when used (a caller may change them)
local function rollout() return require "sg.rollout" end

-- Why a group a killed run had started writing can no longer be the state that run left, or nil.
-- Its writes only added planned rules and removed rules it found, so what it left holds every
-- rule both found and planned, and nothing it neither found nor planned: anything else is a
-- change made since (a later roll-out, a person), which restoring or completing would undo.
-- `target` is the journal's record of the target (before, exists, keep, add).
local function changed_since_killed_run(target, group)
  if target.exists and not group then return "it was deleted" end
  local found, planned = {}, {}
  for _, r in ipairs(target.before or {}) do found[rule.key(rule.normalize(r))] = true end
  for _, list in ipairs({ target.keep, target.add or {} }) do
    for _, r in ipairs(list) do planned[rule.key(rule.normalize(r))] = true end
  end
  local live = {}
  for _, r in ipairs(group and group.rules or {}) do
    local k = rule.key(r)
    live[k] = true
    if not found[k] and not planned[k] then
      return string.format("it holds %s, which that run neither found nor planned", rule.tostring(r))
    end
  end
  for _, r in ipairs(target.keep) do
    local k = rule.key(rule.normalize(r))
    if found[k] and not live[k] then
      return string.format("it lacks %s, which that run found and kept", rule.tostring(rule.normalize(r)))
    end
  end
  return nil
end

-- The killed run's async work may still be running at the provider: it would land after this
-- run read the group and undo what this run does, so it is waited for first: what the journal
-- names, and what the provider lists as running. A target whose account's work cannot be seen to
-- end is left alone, its journal kept. The targets left so, by why.
---@async
local function wait_for_killed_work(run, prior, begun)
  local states = run.states
  local unsettled, settled = {}, {}
  for _, i in ipairs(begun) do
    for _, handle in ipairs(prior.async[i] or {}) do
      if not pcall(states[i].conn.follow, states[i].conn, handle) then
        unsettled[i] = "the journal's record of its provider's work is damaged"
      end
    end
  end
  for _, i in ipairs(begun) do
    local c = states[i].conn
    if settled[c] == nil then
      settled[c] = bounded(run:restore_budget(), "waiting for the killed run's work at the provider", c.settle, c)
    end
    if settled[c] ~= true then unsettled[i] = error_text(settled[c]) end
  end
  return unsettled
end

-- The targets whose killed run's work did not end are reported failed, left as they are.
local function leave_unsettled(run, unsettled)
  for i, why in pairs(unsettled) do
    local t = run.report_targets[i]
    t.status, t.changes, t.added, t.removed = "failed", { add = {}, remove = {} }, 0, 0
    t.error = "left as it is: the killed run's work at the provider could not be seen to end: " .. why
  end
end

-- A re-run (not atomic) takes the killed run's journal over, to replace it with its own: the
-- report if it cannot (a provider is still busy with the killed run's work), else nil.
local function supersede(run, prior, unsettled)
  local report = run.report
  if next(unsettled) then
    -- planning now would read groups that work still running is about to change
    for i, t in ipairs(run.report_targets) do
      if not unsettled[i] then
        t.status, t.error = "unchanged", "not changed: another target's provider is still busy " ..
          "with a killed run's work"
      end
    end
    leave_unsettled(run, unsettled)
    report.recovered = nil -- not taken over: the report names the journal it keeps
    prior:release()
    report.journal_kept = prior.path
    return run:finish()
  end
  -- this run plans every target from the source again, which finishes the killed run's
  -- roll-out; the journal stays until this run's own replaces it (see sg.rollout.run)
  run.superseded = prior
  return nil
end

-- A started target changed since the killed run is left as it is (a journal from an older
-- sgrun, without the kept rules, cannot tell: it is recovered as before). The targets changed
-- since, by how.
---@async
local function changed_since(run, prior, unsettled)
  local changed, checks = {}, {}
  for i, st in ipairs(run.states) do
    local b = prior.begin.targets[i]
    ---@async
    checks[i] = function()
      if unsettled[i] or not (b and prior.started[i] and b.keep) then return end
      changed[i] = changed_since_killed_run(b, read(st.conn, st.group_ref))
    end
  end
  contained(checks, run:remaining(), "reading")
  return changed
end

-- Each target's state as the journal has it, and what is to be done with it: nothing (left as it
-- is, or never started), putting it back (atomic), or completing the killed run's plan.
local function take_targets(run, prior, standalone, unsettled, changed)
  local opts, report_targets = run.opts, run.report_targets
  for i, st in ipairs(run.states) do
    local b = prior.begin.targets[i]
    if unsettled[i] then
      st.touched = false
    elseif changed[i] then
      st.touched = false
      local t = report_targets[i]
      t.status, t.changes, t.added, t.removed = "failed", { add = {}, remove = {} }, 0, 0
      t.error = string.format("left as it is: the group changed since the killed run (%s), and %s " ..
        "would undo that change; check the group, then run the roll-out again", changed[i],
        opts.atomic and "putting back its snapshot" or "completing its plan")
    elseif b and (prior.started[i] or not opts.atomic) then
      local rules = {}
      for j, r in ipairs(b.before or {}) do rules[j] = rule.normalize(r) end
      st.before = b.exists and { rules = rules, raw = b.raw, provider = st.conn.provider,
        group = { id = b.group_id } } or nil
      st.touched = true
      if opts.atomic then
        st.failed = true
        -- a standalone recovery's report names the journal once, above its targets
        report_targets[i].error = "undoing the interrupted atomic roll-out" ..
          (standalone and "" or " found in " .. prior.path)
      elseif b.keep == nil then
        -- without the kept rules, the additions alone would remove everything else
        st.skip = "not written: its journal (from an older sgrun) does not record the rules the " ..
          "plan kept; run the roll-out again to complete it"
      else
        st.complete, st.unwritten = {}, not prior.started[i]
        for _, list in ipairs({ b.keep, b.add or {} }) do
          for _, r in ipairs(list) do st.complete[#st.complete + 1] = rule.normalize(r) end
        end
      end
    else
      report_targets[i].status = "unchanged"
    end
  end
end

-- Brings target i to the killed run's plan (st.complete), unless it is not to be.
---@async
local function complete_target(run, i, st)
  if not st.complete then return end
  task.context({ guard = run:noting_guard(i) })
  run:progress(i, "reading")
  local group = read(st.conn, st.group_ref)
  if st.unwritten and rollout().fingerprint(group and group.rules) ~= rollout().fingerprint(st.before and st.before.rules) then
    st.skip = "not written: the group changed since the killed run read it, so its plan is " ..
      "stale; run the roll-out again to plan it anew"
    return
  end
  local p = apply.plan_group(st.conn, st.group_ref, group, nil, st.complete,
    { mode = "authoritative", lossy = "allow", create = true, description = run.opts.description })
  run:progress(i, "applying", { done = 0, total = #p.add + #p.remove })
  local r = apply.apply(p)
  -- reading back judges the group against the killed run's plan, not this catch-up plan
  st.plan = { keep = st.complete, add = {} }
  if not r.ok then error(r.error, 0) end
end

-- Completes the killed run's plan on every target that is to be (not atomic).
---@async
local function complete_plans(run)
  local completes = {}
  for i, st in ipairs(run.states) do
    ---@async
    completes[i] = function() complete_target(run, i, st) end
  end
  local done = contained(completes, run:remaining(), "completing")
  for i, st in ipairs(run.states) do
    if st.skip then
      -- left as it is: putting back the snapshot could undo whoever changed it since
      st.touched = false
      local t = run.report_targets[i]
      t.status, t.error, t.changes, t.added, t.removed = "failed", st.skip, { add = {}, remove = {} }, 0, 0
    elseif done[i] ~= true then
      st.failed = true
      run.report_targets[i].error = done[i]
    end
  end
end

---Takes over `prior`, the journal of a killed run of this roll-out.
---@async
---@param run sg.RolloutRun
---@param prior sg.ClaimedJournal
---@param standalone boolean? a recovery (opts.recover), not a re-run of the roll-out
---@return sg.RolloutReport? report nil: the re-run goes on, planning from its source
function M.take_over(run, prior, standalone)
  local opts = run.opts
  local begun = {}
  for i in pairs(prior.started) do begun[#begun + 1] = i end
  table.sort(begun)
  if not standalone and #begun == 0 then
    -- killed before its first write: nothing of it to finish
    prior:remove()
    return nil
  end
  run.report.recovered = { journal = prior.path, targets = begun,
    action = opts.atomic and "undone" or standalone and "completed" or "superseded",
    plan_file = opts.plan_file ~= nil or nil }
  local unsettled = wait_for_killed_work(run, prior, begun)
  if not standalone and not opts.atomic then return supersede(run, prior, unsettled) end
  run.recovering = prior
  local changed = changed_since(run, prior, unsettled)
  take_targets(run, prior, standalone, unsettled, changed)
  if not opts.atomic then complete_plans(run) end
  local rep = settle.put_back_and_read(run, opts.atomic)
  leave_unsettled(run, unsettled)
  -- a target changed since is no longer the journal's to finish: it does not keep the journal
  local all_done = true
  for i, t in ipairs(rep.targets) do
    if t.status == "failed" and not changed[i] then all_done = false end
  end
  rep.ok = rep.ok and all_done
  if all_done then
    prior:remove()
  else
    -- the only record of the snapshots to put back: kept for a next try
    prior:release()
    rep.journal_kept = prior.path
  end
  return rep
end

return M
