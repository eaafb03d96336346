-- sg.rollout: one rule set onto several groups on several clouds. Every target is read (its
-- snapshot kept) and planned first, then the targets are changed concurrently. A target that
-- fails is put back to its snapshot, so each one ends converged or restored, never half-changed;
-- with {atomic = true} a failure anywhere puts every touched target back, and a target that
-- cannot be planned stops the roll-out before anything is touched. The report says per target
-- what happened and what could not be expressed.
local apply = require "sg.apply"
local groups = require "sg.groups"
local task = require "sg.task"

local M = {}

---@class sg.RolloutTarget
---@field provider string
---@field group any
---@field status "converged"|"unchanged"|"rolled_back"|"failed"|"planned"
---@field added integer
---@field removed integer
---@field findings sg.Finding[]
---@field error any?
---@field plan sg.Plan?

---@class sg.RolloutReport
---@field ok boolean
---@field targets sg.RolloutTarget[]

local Report = {}
Report.__index = Report

local function error_text(err)
  if err == nil then return nil end
  return tostring(err)
end

---A JSON-able table of the report (sg.report renders it).
---@return table
function Report:to_table()
  return require("sg.report").json_table(self)
end

function Report:to_json()
  return require("sg.json").encode(self:to_table())
end

function Report:__tostring()
  return require("sg.report").text(self)
end

---@class sg.RolloutOptions: sg.PlanOptions
---@field dry_run boolean? plan every target and report, change nothing (default: the --dry-run flag)
---@field atomic boolean? all or nothing across targets (default: each target on its own)

-- Puts a touched target back to the rules it had before the roll-out.
---@async
local function restore(t)
  local before = t.before
  local p = apply.plan(t.conn, t.group_ref, before and before.rules or {}, { lossy = "allow" })
  return apply.apply(p)
end

---Rolls the rules of `source` out to every target: `targets` is a list of {conn, group_ref}.
---@async
---@param source sg.Snapshot|sg.Rule[]
---@param targets {[1]: sg.Connection, [2]: any}[]
---@param opts sg.RolloutOptions?
---@return sg.RolloutReport
function M.rollout(source, targets, opts)
  opts = opts or {}
  if type(targets) ~= "table" or #targets == 0 then
    error("sg.rollout: targets must be a list of {connection, group} pairs", 2)
  end
  local plan_opts = { mode = opts.mode, lossy = opts.lossy, create = opts.create ~= false,
    description = opts.description }
  local options = package.loaded["sg.options"]
  local dry_run = opts.dry_run
  if dry_run == nil then dry_run = options and options.dry_run or false end

  local states, report_targets = {}, {}
  for i, pair in ipairs(targets) do
    local conn, ref = pair[1], pair[2]
    if type(conn) ~= "table" or not conn.provider or ref == nil then
      error(string.format("sg.rollout: target %d must be {connection, group}", i), 2)
    end
    states[i] = { conn = conn, group_ref = ref }
    report_targets[i] = { provider = conn.provider, group = ref, status = "failed", added = 0,
      removed = 0, findings = {} }
  end

  -- 1. read and plan every target; nothing changes yet
  local planned = {}
  for i, st in ipairs(states) do
    planned[i] = function()
      local group, err = groups.get(st.conn.provider).get_group(st.conn, st.group_ref)
      st.before = group and { rules = group.rules } -- nil: the roll-out creates the group
      st.plan = apply.plan_group(st.conn, st.group_ref, group, err, source, plan_opts)
      return true
    end
  end
  local plan_failed = false
  local outcomes = task.all(M.settle(planned))
  for i = 1, #states do
    local t, ok_err = report_targets[i], outcomes[i]
    if states[i].plan then
      t.plan = states[i].plan
      t.findings = states[i].plan.findings
    end
    if ok_err ~= true then
      plan_failed = true
      t.error = ok_err
      if type(ok_err) == "table" and ok_err.findings then t.findings = ok_err.findings end
    end
  end
  if dry_run or (plan_failed and opts.atomic) then
    for _, t in ipairs(report_targets) do
      if t.error == nil then
        if dry_run then
          t.status = t.plan:empty() and "unchanged" or "planned"
          t.added, t.removed = #t.plan.add, #t.plan.remove
        else
          t.error = "not changed: another target could not be planned, so the atomic roll-out " ..
            "stopped before touching any"
        end
      end
    end
    return setmetatable({ ok = not plan_failed, targets = report_targets }, Report)
  end

  -- 2. apply every non-empty plan concurrently
  local applies = {}
  for i, st in ipairs(states) do
    applies[i] = function()
      if not st.plan then return { ok = false, added = 0, removed = 0, unplanned = true } end
      if st.plan:empty() then return { ok = true, added = 0, removed = 0, unchanged = true } end
      st.touched = true
      return apply.apply(st.plan)
    end
  end
  local results = task.all(applies, { limit = #applies })
  local failed = false
  for i, r in ipairs(results) do
    local t = report_targets[i]
    t.added, t.removed = r.added, r.removed
    if r.ok then
      t.status = r.unchanged and "unchanged" or "converged"
    elseif not r.unplanned then
      failed = true
      t.error = r.error
    end
  end
  if not failed then return setmetatable({ ok = not plan_failed, targets = report_targets }, Report) end

  -- 3. put back the targets that failed (with atomic, every touched target)
  local restores = {}
  for i, st in ipairs(states) do
    restores[i] = function()
      if not st.touched or (results[i].ok and not opts.atomic) then return nil end
      return restore(st)
    end
  end
  local restored = task.all(restores, { limit = #restores })
  for i = 1, #states do
    local t, r = report_targets[i], restored[i] -- nil: not touched, left as step 2 reported it
    if r and r.ok then
      t.status = "rolled_back"
      if results[i].ok then t.error = "rolled back because another target failed" end
    elseif r then
      t.status = "failed"
      t.error = string.format("%s; restoring the snapshot also failed: %s", error_text(t.error) or
        "rolled back because another target failed", error_text(r.error))
    end
  end
  return setmetatable({ ok = false, targets = report_targets }, Report)
end

---Wraps functions so that each returns true or its error instead of raising (for task.all).
---@param fns function[]
---@return function[]
function M.settle(fns)
  local out = {}
  for i, fn in ipairs(fns) do
    out[i] = function()
      local ok, err = pcall(fn)
      if ok then return true end
      return err
    end
  end
  return out
end

return M
