-- Settling a roll-out's targets once its writes have run (or a recovery's have): the targets
-- that must be are put back to their snapshots (a group the roll-out created is deleted again),
-- then every touched target is read back, and its status and changes come from what was read,
-- so the report says what the clouds hold, not what was intended.
local apply = require "sg.apply"
local groups = require "sg.groups"
local retry = require "sg.retry"
local rule = require "sg.rule"
local snapshot = require "sg.snapshot"
local task = require "sg.task"
local common = require "sg.rollout.common"
local interrupt = require "sg.rollout.interrupt"

local bounded, contained, error_text, read = common.bounded, common.contained, common.error_text, common.read
local keyset, same_keys, minus = common.keyset, common.same_keys, common.minus

local M = {}

---@async
local function delete_group(conn, group)
  local adapter = groups.get(conn.provider)
  if not adapter.delete_group then
    error(string.format("%s: sgrun cannot delete group %s; delete it by hand", conn.provider,
      snapshot.group_text(group.name or group.id)), 0)
  end
  adapter.delete_group(conn, group)
end

-- One attempt at putting a target back to its snapshot (deleting a group the roll-out created).
---@async
local function restore_once(st)
  local group = read(st.conn, st.group_ref)
  if st.before == nil then
    if group then delete_group(st.conn, group) end
    return
  end
  if not group then
    error(string.format("%s group %s is gone; it cannot be restored", st.conn.provider,
      snapshot.group_text(st.group_ref)), 0)
  end
  local p = apply.plan_group(st.conn, st.group_ref, group, nil, st.before, { lossy = "allow" })
  if p:empty() then return end
  local r = apply.apply(p)
  if not r.ok then error(r.error, 0) end
end

-- 3. put back the targets that failed (with atomic, every touched target); first, the
-- provider's work those targets' writes started must end: a write cut short here (its target
-- failed, a sibling write failed, the deadline came) may still be running there, and would land
-- after the restore read the group. Work that cannot be seen to end leaves the target's state
-- unknown: not restored, and the journal kept for --recover.
-- Whether target i's provider work has ended; `unsettled` (by connection: why its work did not
-- end, or false) is shared by the targets of one settling, so each connection is waited for once.
---@async
local function provider_work_done(run, unsettled, i, st)
  local report_targets = run.report_targets
  local c = st.conn
  if unsettled[c] == nil then
    local budget = run:restore_budget()
    local done = bounded(budget, "waiting for the provider", c.settle, c)
    unsettled[c] = done ~= true and error_text(done) or false
  end
  if unsettled[c] then
    st.unknown = string.format("this run's changes were still running at the provider (%s), so " ..
      "the group's state is unknown; once they end, finish the roll-out with " ..
      "`sgrun scripts/rollout.lua --recover` (or run the same roll-out again)", unsettled[c])
    report_targets[i].error = report_targets[i].error
      and string.format("%s; %s", error_text(report_targets[i].error), st.unknown) or st.unknown
    return false
  end
  return true
end

-- Puts target i back to its snapshot if it must be, retrying with backoff up to its restore
-- deadline; raises the last attempt's error when that comes.
---@async
local function restore(run, unsettled, any_failed, i, st)
  if not st.touched or not (st.failed or (run.opts.atomic and any_failed)) then return end
  if not provider_work_done(run, unsettled, i, st) then return end
  task.context({ guard = run:noting_guard(i) })
  st.restoring = true
  if not st.failed then
    local sig = interrupt.signal()
    run.report_targets[i].error = sig and ("rolled back: the atomic roll-out was interrupted by " .. sig)
      or "rolled back because another target failed"
  end
  local until_ = task.now() + run:restore_budget()
  local policy, attempt = retry.policy(), 0
  while true do
    attempt = attempt + 1
    run:progress(i, "restoring", { done = attempt })
    local err = bounded(math.max(0, until_ - task.now()), "restoring", restore_once, st)
    if err == true then
      st.restored = true
      return
    end
    st.restore_error = err
    local wait = retry.backoff(policy, math.min(attempt, 6))
    if task.now() + wait >= until_ then error(err, 0) end
    task.sleep(wait)
  end
end

-- 4. read every touched target back: its status and changes are what it now holds.
-- Per target: true, or why reading it back failed.
---@async
local function read_back(run, settle_timeout)
  local finals = {}
  for i, st in ipairs(run.states) do
    ---@async
    finals[i] = function()
      if not st.touched then return end
      run:progress(i, "verifying")
      local group = read(st.conn, st.group_ref)
      st.final = group and group.rules or false
    end
  end
  return retry.with_call_timeout(settle_timeout,
  ---@async
  function()
    return contained(finals, math.max(run:remaining(), 30), "reading back")
  end)
end

-- A touched target's status and changes, from the rules it was read back with (st.final).
local function judge_read_back(t, st)
  local before = keyset(st.before and st.before.rules)
  local final = keyset(st.final or nil)
  -- what the plan kept (for a group it created: what the provider gives a new group)
  -- and added; with no plan (a recovered journal), the snapshot
  local expected = keyset(st.plan and st.plan.keep or st.before and st.before.rules)
  for _, r in ipairs(st.plan and st.plan.add or {}) do expected[rule.key(r)] = r end
  local absent_as_before = st.before == nil and st.final == false
  t.changes = { add = minus(final, before), remove = minus(before, final) }
  if st.final == false and st.before ~= nil then t.changes.remove = rule.sort(st.before.rules) end
  t.added, t.removed = #t.changes.add, #t.changes.remove
  if st.restoring then
    if absent_as_before or (st.before and st.final and same_keys(final, before)) then
      t.status = "rolled_back"
      -- a group whose creation was refused was never there to delete again
      if st.before == nil and not st.created then t.create_group = false end
    elseif st.final and same_keys(final, expected) then
      -- putting it back failed, but the failed apply had in fact reached the plan
      t.status = "converged"
      t.error = string.format("%s; restoring failed (%s), and the group holds the planned rules",
        error_text(t.error), error_text(st.restore_error))
    else
      t.status = "failed"
      t.not_restored = minus(before, final)
      local extra = minus(final, before)
      local why = st.restore_error and error_text(st.restore_error) or "the group differs from its snapshot"
      if st.before == nil and st.final then why = "the group the roll-out created is still there: " .. why end
      if #extra > 0 then why = string.format("%s; %d rule(s) left that were not there before", why, #extra) end
      t.error = string.format("%s; restoring the snapshot failed: %s", error_text(t.error), why)
    end
  elseif st.final and same_keys(final, expected) then
    t.status = "converged"
  else
    t.status = "failed"
    t.error = t.error or "after applying, the group differs from the plan"
  end
end

-- A target's status and changes once settled; `read_ok`: true, or why reading it back failed.
local function report_target(t, st, read_ok)
  if st.unknown then
    t.status = "failed"
    t.changes, t.added, t.removed = { add = {}, remove = {} }, 0, 0
  elseif st.touched then
    if read_ok ~= true then
      t.status = "failed"
      t.error = string.format("%s; reading the group back failed, so its state is unknown: %s",
        error_text(t.error) or "applied", error_text(read_ok))
      if st.restoring then t.not_restored = st.before and st.before.rules or {} end
    else
      judge_read_back(t, st)
    end
  elseif st.interrupted then
    t.status, t.error = "interrupted", "left untouched: interrupted before its first write"
    t.changes, t.added, t.removed = { add = {}, remove = {} }, 0, 0
  elseif st.plan then
    t.status = "unchanged"
    if t.error == nil then t.changes, t.added, t.removed = { add = {}, remove = {} }, 0, 0 end
  end
end

---3. and 4.: put back what must be, then read every touched target back.
---@async
---@param run sg.RolloutRun
---@param any_failed boolean? a target failed (or could not be planned, or an atomic run was interrupted)
---@return sg.RolloutReport
function M.put_back_and_read(run, any_failed)
  local unsettled = {}
  local restores = {}
  for i, st in ipairs(run.states) do
    ---@async
    restores[i] = function() restore(run, unsettled, any_failed, i, st) end
  end
  -- putting back and reading back are what make the report true: their calls get longer than
  -- the user's per-call timeout (still within the roll-out's deadline)
  local settle_timeout = run.opts.timeout and math.max(4 * run.opts.timeout, 5)
  retry.with_call_timeout(settle_timeout,
    ---@async
    function() contained(restores, math.huge, "restoring") end)

  local read_ok = read_back(run, settle_timeout)
  for i, st in ipairs(run.states) do report_target(run.report_targets[i], st, read_ok[i]) end
  -- a target can fail after its apply went through (its read-back failed or differs)
  local target_failed = false
  for _, t in ipairs(run.report_targets) do target_failed = target_failed or t.status == "failed" end
  run.report.ok = not any_failed and not target_failed and not interrupt.signal()
  return run:finish()
end

return M
