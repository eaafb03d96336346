-- 1. of a roll-out: every target is read (its snapshot kept) and planned; nothing changes yet.
local apply = require "sg.apply"
local rule = require "sg.rule"
local snapshot = require "sg.snapshot"
local common = require "sg.rollout.common"

local contained, read, account_key, account_id = common.contained, common.read, common.account_key,
  common.account_id
local keyset, same_keys = common.keyset, common.same_keys

local M = {}

-- sg.rollout requires this module: its fields are looked up when used (a caller may change them)
local function rollout() return require "sg.rollout" end

-- The plan of a plan file's target, checked against the live group. `superseded`: the journal of
-- a killed run of this roll-out this run takes over (its writes are why a group changed since).
local function plan_from_file(st, entry, group, plan_opts, superseded)
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
    error(string.format("%s %s changed since the plan was made; %s", st.conn.provider,
      snapshot.group_text(st.group_ref), superseded and string.format("a killed run of this plan left it " ..
        "half-written (journal %s): `sgrun scripts/rollout.lua --recover` completes that run", superseded.path)
        or "make the plan again"), 0)
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

-- Reads target i and plans it, from the source or from the plan file.
---@async
local function read_and_plan_target(run, i, st)
  local opts = run.opts
  run:progress(i, "reading")
  local group, absent = read(st.conn, st.group_ref)
  -- snapshot-shaped, so that restoring puts back the provider's own form of each rule
  st.before = group and { rules = group.rules, raw = group.raw_rules, provider = st.conn.provider,
    group = { id = group.id, name = group.name } } -- nil: the roll-out creates the group
  st.ident = group and { id = group.id, name = group.name }
  run:progress(i, "planning")
  if opts.plan_file then
    st.plan = plan_from_file(st, opts.plan_file.targets[i], group, run.plan_opts, run.superseded)
  else
    st.plan = apply.plan_group(st.conn, st.group_ref, group, absent, run.source, run.plan_opts)
  end
  -- what apply would refuse fails the plan, before any target is written
  local adapter = require("sg.groups").get(st.conn.provider)
  if group and adapter.check_plan then adapter.check_plan(group.name or st.group_ref, st.plan) end
  st.fingerprint = rollout().fingerprint(group and group.rules)
end

-- One group named twice (by name and by id): planned twice from one read, its second apply
-- would undo or repeat the first; only the first is kept (`outcomes` says why the others are
-- not), and a plan file that does so is refused whole.
local function drop_repeated_groups(run, outcomes)
  local states = run.states
  local by_group = {}
  for i, st in ipairs(states) do
    -- read, even if its planning failed: a plan file's copy of a target may fail its checks
    local id = st.before and st.before.group.id
    if id then
      local key = account_key(st.conn) .. "\0" .. tostring(id)
      local first = by_group[key]
      if first and run.opts.plan_file then
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
end

-- Each target's plan (or why it has none) in the report; whether a target could not be planned.
local function report_plans(run, outcomes)
  local plan_failed = false
  for i, st in ipairs(run.states) do
    local t, ok_err = run.report_targets[i], outcomes[i]
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
  return plan_failed
end

---A planned target's status as a dry run reports it.
---@param t sg.RolloutTarget
---@return "unchanged"|"planned"
function M.planned_status(t)
  return t.plan:empty() and "unchanged" or "planned"
end

---1. read and plan every target; nothing changes yet.
---@async
---@param run sg.RolloutRun
---@return boolean plan_failed a target could not be planned
function M.read_and_plan(run)
  local planned = {}
  for i, st in ipairs(run.states) do
    ---@async
    planned[i] = function() read_and_plan_target(run, i, st) end
  end
  local outcomes = contained(planned, run:remaining(), "reading and planning")
  drop_repeated_groups(run, outcomes)
  local plan_failed = report_plans(run, outcomes)
  run.report.ok = not plan_failed
  return plan_failed
end

---The report of a dry run: each target planned, with what a plan file records of it.
---@param run sg.RolloutRun
---@return sg.RolloutReport
function M.dry_run_report(run)
  for i, t in ipairs(run.report_targets) do
    if t.error == nil then
      t.status = M.planned_status(t)
      t.fingerprint = run.states[i].fingerprint
      t.account = account_id(run.states[i].conn)
    end
  end
  return run:finish()
end

return M
