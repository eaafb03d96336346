-- sg.report: how a roll-out report reads, for people (text: per target a status line and its
-- +/- rule lines, "will create group", then every lossy or inexpressible finding once) and for
-- programs (json_table: the same facts, rules both as canonical tables and as their text form).
-- sg.rollout produces reports; this module only renders them.
local errors = require "sg.errors"
local json = require "sg.json"
local rule = require "sg.rule"

local group_text = require("sg.plan").group_text

local M = {}

local COLORS = { green = "\27[32m", red = "\27[31m", yellow = "\27[33m", bold = "\27[1m", dim = "\27[2m" }
local STATUS_COLOR = { converged = "green", unchanged = "dim", planned = "yellow", rolled_back = "yellow",
  failed = "red", interrupted = "red", unknown = "red" }
-- What an interrupted roll-out did to each target, in the words of its summary.
local ACCOUNT = { converged = "changed", rolled_back = "restored", unchanged = "left untouched",
  interrupted = "left untouched", failed = "failed (see the error)", unknown = "unknown" }

local function painter(enabled)
  return function(color, text)
    if not enabled or not color then return text end
    return COLORS[color] .. text .. "\27[0m"
  end
end

-- What the target changed (or, in a dry run, would change). Reports from an sg.rollout that
-- predates `changes` carry the plan instead.
local function changes_of(t)
  if t.changes then return t.changes.add or {}, t.changes.remove or {} end
  if t.plan and (t.status == "planned" or t.status == "converged") then return t.plan.add, t.plan.remove end
  return {}, {}
end

local function create_group_of(t)
  if t.create_group ~= nil then return t.create_group and true or false end
  return t.plan ~= nil and t.plan.create_group ~= nil and (t.status == "planned" or t.status == "converged")
end

-- +/- lines of a target sorted by rule, so that output is stable from run to run.
local function diff_lines(t)
  local add, remove = changes_of(t)
  local lines, keys = {}, {}
  for sign, list in pairs({ ["+"] = add, ["-"] = remove }) do
    for _, r in ipairs(list) do
      local line = sign .. " " .. rule.tostring(r)
      lines[#lines + 1] = line
      keys[line] = rule.key(r) .. "\0" .. line
    end
  end
  table.sort(lines, function(a, b) return keys[a] < keys[b] end)
  return lines
end

local function finding_key(f)
  return f.kind .. "\0" .. rule.key(f.rule) .. "\0" .. tostring(f.why)
end

-- Findings across targets, each once with the indices of the targets it concerns.
local function findings_once(report)
  if report.findings_once then return report.findings_once end
  -- a report sg.rollout did not finish (made by hand, or read back): the same list, sorted
  local out = require("sg.rollout.common").findings_once(report.targets)
  table.sort(out, function(a, b) return finding_key(a) < finding_key(b) end)
  return out
end

local function target_name(t)
  return t.provider .. ":" .. group_text(t.group)
end

---True when the report plans or made a change on some target (a dry run's "changes pending").
---@param report sg.RolloutReport
---@return boolean
function M.pending(report)
  if report.unfinished and report.unfinished.atomic then return true end
  for _, t in ipairs(report.targets) do
    local add, remove = changes_of(t)
    if t.status == "planned" or #add > 0 or #remove > 0 or create_group_of(t) then return true end
  end
  return false
end

local function headline(report)
  local counts, order = {}, {}
  for _, t in ipairs(report.targets) do
    if not counts[t.status] then order[#order + 1] = t.status end
    counts[t.status] = (counts[t.status] or 0) + 1
  end
  local parts = {}
  for _, status in ipairs(order) do parts[#parts + 1] = counts[status] .. " " .. status:gsub("_", " ") end
  local verdict = report.ok and "ok" or "FAILED"
  if report.abandoned then
    verdict = "INTERRUPTED by " .. report.interrupted .. " twice, stopped at once (what was known then)"
  elseif report.interrupted then verdict = "INTERRUPTED by " .. report.interrupted
  elseif report.aborted then verdict = "not confirmed, nothing changed" end
  return string.format("roll-out: %s (%s)", verdict, table.concat(parts, ", "))
end

---The report as text: a headline, per target a status line with its +/- rule lines, then the
---findings once for all targets.
---@param report sg.RolloutReport
---@param opts {color: boolean?}?
---@return string
function M.text(report, opts)
  local paint = painter(opts and opts.color)
  local lines = { paint("bold", headline(report)) }
  if report.recovered then
    local did = { undone = "first undid", completed = "first completed",
      superseded = report.recovered.plan_file and "took over, applying the plan file anew to" or
        "took over, planning anew from the source," }
    lines[#lines + 1] = string.format("%s the roll-out a killed run left unfinished (journal %s)",
      did[report.recovered.action], report.recovered.journal)
  end
  if report.unfinished then
    lines[#lines + 1] = paint("yellow", string.format("a killed run left this roll-out unfinished (journal %s): %s",
      report.unfinished.journal, report.unfinished.atomic and "the real run would first undo it, restoring every " ..
      "target it had started writing, and stop there, not apply this plan (`sgrun scripts/rollout.lua --recover` " ..
      "undoes it alone)" or "the real run takes it over, planning anew from the source as shown"))
  end
  for _, t in ipairs(report.targets) do
    lines[#lines + 1] = string.format("  %-9s %-22s %s +%d -%d%s", t.provider, group_text(t.group),
      paint(STATUS_COLOR[t.status], string.format("%-12s", t.status)), t.added or 0, t.removed or 0,
      report.interrupted and ("  " .. (ACCOUNT[t.status] or t.status)) or "")
    if create_group_of(t) then
      -- a rolled-back target deleted the group it had created
      lines[#lines + 1] = paint("green", t.status == "planned" and "      will create group " or
        "      created group ") .. group_text(t.group) .. (t.status == "rolled_back" and ", deleted again" or "")
    end
    for _, line in ipairs(diff_lines(t)) do
      lines[#lines + 1] = "      " .. paint(line:sub(1, 1) == "+" and "green" or "red", line)
    end
    for _, r in ipairs(t.not_restored or {}) do
      lines[#lines + 1] = "      " .. paint("red", "not restored: " .. rule.tostring(r))
    end
    if t.error ~= nil then lines[#lines + 1] = "      " .. paint("red", "error: " .. errors.text(t.error)) end
  end
  if report.journal_kept then
    lines[#lines + 1] = paint("red", string.format("the journal %s is kept: once the providers' work has " ..
      "ended, `sgrun scripts/rollout.lua --recover` finishes this roll-out (or run the same roll-out again)",
      report.journal_kept))
  end
  local findings = findings_once(report)
  if #findings > 0 then
    lines[#lines + 1] = "findings:"
    for _, f in ipairs(findings) do
      local names = {}
      for j, i in ipairs(f.targets) do names[j] = target_name(report.targets[i]) end
      lines[#lines + 1] = string.format("  %s: %s: %s (%s)", paint("yellow", f.kind), rule.tostring(f.rule),
        f.why, table.concat(names, ", "))
    end
  end
  return table.concat(lines, "\n")
end

local function rule_array(list)
  local copy = {}
  for i, r in ipairs(list) do copy[i] = r end
  return json.array(rule.sort(copy))
end

---The report as a JSON-able table: ok, interrupted, abandoned, aborted, per target its status,
---counts, changes {add, remove} (canonical rules), diff (the +/- lines), create_group, error,
---not_restored and, when interrupted, account (changed, restored, left untouched, unknown), and the findings once with the targets (1-based indices) they concern;
---journal_kept: the path of the journal kept for --recover, when a target was left failed;
---unfinished {journal, atomic}: a dry run found a killed run's journal the real run would deal with first.
---@param report sg.RolloutReport
---@return table
function M.json_table(report)
  local targets = json.array()
  for i, t in ipairs(report.targets) do
    local add, remove = changes_of(t)
    targets[i] = { provider = t.provider, group = t.group, status = t.status, added = t.added or 0,
      removed = t.removed or 0, create_group = create_group_of(t),
      changes = { add = rule_array(add), remove = rule_array(remove) },
      diff = json.array(diff_lines(t)),
      error = t.error ~= nil and errors.text(t.error) or nil,
      not_restored = t.not_restored and rule_array(t.not_restored) or nil,
      account = report.interrupted and (ACCOUNT[t.status] or t.status) or nil }
  end
  local findings = json.array()
  for i, f in ipairs(findings_once(report)) do
    findings[i] = { rule = f.rule, text = rule.tostring(f.rule), kind = f.kind, why = f.why,
      targets = json.array(f.targets) }
  end
  local recovered = report.recovered and { journal = report.recovered.journal, action = report.recovered.action,
    targets = json.array({ table.unpack(report.recovered.targets) }) }
  return { ok = report.ok, interrupted = report.interrupted, abandoned = report.abandoned or nil,
    aborted = report.aborted or nil, recovered = recovered, journal_kept = report.journal_kept,
    unfinished = report.unfinished,
    targets = targets, findings = findings }
end

-- What recovering did to one target, as the --recover report says it.
local function recovery_outcome(t)
  if t.status == "converged" then return "recovered: converged" end
  if t.status == "rolled_back" then return "recovered: restored" end
  if t.status == "unchanged" then return "untouched: the killed run had not written to it" end
  return "not recovered: " .. (t.error ~= nil and errors.text(t.error) or tostring(t.status))
end

---Whether every journal of a --recover run was recovered (or left alone: its run is alive).
---@param results sg.RecoverResult[]
---@return boolean
function M.recovery_ok(results)
  for _, res in ipairs(results) do
    if res.error then return false end
    for _, t in ipairs(res.report and res.report.targets or {}) do
      if t.status == "failed" or t.status == "interrupted" then return false end
    end
  end
  return true
end

---The report of a --recover run: per journal, what was done to each target.
---@param results sg.RecoverResult[]
---@param where string what was searched ("in DIR", "for these targets in DIR"), for the "nothing to do" line
---@return string
function M.recovery(results, where)
  if #results == 0 then return "recover: no unfinished roll-out " .. where .. "; nothing to do" end
  local lines = {}
  for _, res in ipairs(results) do
    if res.busy then
      lines[#lines + 1] = "left alone: " .. res.busy
    elseif res.error then
      lines[#lines + 1] = string.format("journal %s: not recovered: %s", res.path, res.error)
    else
      local atomic = res.report.recovered and res.report.recovered.action == "undone"
      lines[#lines + 1] = string.format("journal %s (%s roll-out):", res.path, atomic and "atomic" or "per-target")
      for _, t in ipairs(res.report.targets) do
        lines[#lines + 1] = string.format("  %-9s %-22s %s", t.provider, group_text(t.group), recovery_outcome(t))
        for _, r in ipairs(t.not_restored or {}) do lines[#lines + 1] = "      not restored: " .. rule.tostring(r) end
      end
    end
  end
  local verdict = M.recovery_ok(results) and "done" or "some targets could not be recovered; " ..
    "the journals are kept: fix what the errors name and run --recover again"
  lines[#lines + 1] = "recover: " .. verdict
  return table.concat(lines, "\n")
end

---The report of a --recover run as a JSON-able table: per journal its path, and either
---left_alone (why), error (why it could not be dealt with) or the mode and per target its
---status, outcome (the text report's words), error and not_restored.
---@param results sg.RecoverResult[]
---@return table
function M.recovery_json(results)
  local journals = json.array()
  for i, res in ipairs(results) do
    local entry = { journal = res.path, left_alone = res.busy, error = res.error }
    if res.report then
      local full = M.json_table(res.report)
      entry.atomic = res.report.recovered ~= nil and res.report.recovered.action == "undone"
      for j, t in ipairs(full.targets) do t.outcome = recovery_outcome(res.report.targets[j]) end
      entry.targets = full.targets
    end
    journals[i] = entry
  end
  return { ok = M.recovery_ok(results), journals = journals }
end

return M
