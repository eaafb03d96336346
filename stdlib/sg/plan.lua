--- Plans: what would change to bring a group from its current rules to the desired ones.
--
-- A plan is a value; computing it touches nothing. Rules are compared by identity (rule.key), so
-- a plan is O(n) in the number of rules. The add/remove/keep lists keep the caller's tables and
-- input order (current order for remove and keep, desired order for add) so that the apply side
-- can map a rule back to the provider rule it came from by table identity; printing and the
-- JSON form sort, so that output is stable from run to run.
local rule = require "sg.rule"

local M = {}

---@class sg.Finding
---@field rule sg.Rule the desired rule as given
---@field kind "lossy"|"inexpressible"
---@field why string

---@class sg.Plan
---@field target {provider: string, group: any}
---@field mode "authoritative"|"additive"
---@field add sg.Rule[] rules to create, as translated for the target
---@field remove sg.Rule[] current rules to delete
---@field keep sg.Rule[] current rules that stay
---@field findings sg.Finding[] translation losses and skipped rules
---@field create_group string? the target group does not exist yet: apply creates it (this name)
---@field repair integer leftovers of failed writes in the target (rules in ERROR, a group in
---status error) that apply clears: a plan with leftovers is not empty, so a restore clears them
---@field raw_add sg.RawAdd[] added rules the target can take back in its own form (see PlanArgs.origin)
local Plan = {}
Plan.__index = Plan

---@class sg.PlanArgs
---@field target {provider: string, group: any}
---@field current table[] the group's rules now (canonical)
---@field desired table[] the rules wanted (canonical, or rule-like tables to normalise)
---@field codec (sg.Codec|string)? the target's codec (or provider name); nil = no translation
---@field mode ("authoritative"|"additive")? default "authoritative"
---@field lossy ("error"|"allow")? default "error"
---@field created_by_us table<string, boolean>? keys of rules sgrun created (additive mode only
---removes these, and only when they are no longer desired)
---@field create_group string? name of a target group that does not exist yet
---@field repair integer? leftovers of failed writes in the target (the adapter's leftovers(group))
---@field origin table<table, table>? desired rule table -> the raw rule of the target's provider it
---was read from (a snapshot of the target itself): a raw rule whose every canonical part is to be
---added goes into plan.raw_add, so that the adapter can send it as it was read

---@class sg.RawAdd
---@field raw table the provider's rule as it was read
---@field rules sg.Rule[] the added rules it says
---@field keep sg.Rule[] the current rules that say the rest of it (kept: a rule narrowed since)

local function bad(fmt, ...)
  error("plan: " .. string.format(fmt, ...), 3)
end

-- A group reference as the command line writes it: web, vm=10000, instance=BRK-100001A.
-- A name comes from the provider: shown with its control characters escaped.
local function group_text(group)
  local escape = require("sg.printable").escape
  if type(group) ~= "table" then return escape(tostring(group)) end
  local parts = {}
  for k, v in pairs(group) do parts[#parts + 1] = tostring(k) .. "=" .. tostring(v) end
  table.sort(parts)
  return escape(table.concat(parts, ","))
end
M.group_text = group_text

local function target_text(target)
  return tostring(target.provider) .. "/" .. group_text(target.group)
end

local function finding_line(f)
  return f.kind .. ": " .. rule.tostring(f.rule) .. ": " .. f.why
end

-- Sorted copy of findings (by kind, then rule), for messages and output.
local function sorted_findings(findings)
  local out, keys = {}, {}
  for i, f in ipairs(findings) do
    out[i] = f
    keys[f] = f.kind .. "\0" .. rule.key(f.rule) .. "\0" .. (f.rule.description or "")
  end
  table.sort(out, function(a, b) return keys[a] < keys[b] end)
  return out
end

local function untranslatable(target, provider, findings)
  local lines = {}
  for i, f in ipairs(sorted_findings(findings)) do lines[i] = "  " .. finding_line(f) end
  local message = string.format("plan for %s: %d rule(s) cannot be expressed exactly on %s; " ..
    "pass lossy = \"allow\" (rollout.lua: --allow-lossy) to accept the stated losses and skip what " ..
    "cannot be expressed:\n%s",
    target_text(target), #findings, provider, table.concat(lines, "\n"))
  error(setmetatable({ kind = "untranslatable", target = target, findings = findings,
    message = message }, { __tostring = function(e) return e.message end }), 0)
end

-- The raw rules whose parts are all added, or added and kept (a rule narrowed since it was read:
-- `keep` lists the current rules that hold the rest), in order of their first added part; a raw
-- rule with a part dropped (a duplicate) would add more than the plan says, so it is left out.
local function raw_adds(add, keep, raw_of, kept_from, parts)
  local got, kept = {}, {}
  for _, r in ipairs(add) do
    local from = raw_of[r]
    if from then got[from] = (got[from] or 0) + 1 end
  end
  for _, r in ipairs(keep) do
    local from = kept_from[r]
    if from and got[from] then
      kept[from] = kept[from] or {}
      table.insert(kept[from], r)
    end
  end
  local out, entry = {}, {}
  for _, r in ipairs(add) do
    local from = raw_of[r]
    if from and got[from] + #(kept[from] or {}) == parts[from] then
      if not entry[from] then
        entry[from] = { raw = from, rules = {}, keep = kept[from] or {} }
        out[#out + 1] = entry[from]
      end
      table.insert(entry[from].rules, r)
    end
  end
  return out
end

local function rule_list(list, name)
  if type(list) ~= "table" then bad("%s must be a list of rules, got %s", name, type(list)) end
  return list
end

---Computes a plan. Raises on bad arguments or invalid rules, and, unless lossy = "allow", when
---a desired rule cannot be expressed exactly on the target (the error is a table with `findings`
---and a readable `__tostring`).
---@param args sg.PlanArgs
---@return sg.Plan
function M.compute(args)
  if type(args) ~= "table" then bad("expected a table of arguments, got %s", type(args)) end
  local target = args.target
  if type(target) ~= "table" or type(target.provider) ~= "string" or target.group == nil then
    bad("target must be {provider = name, group = ref}")
  end
  local mode = args.mode or "authoritative"
  if mode ~= "authoritative" and mode ~= "additive" then
    bad("mode %q is not authoritative or additive", tostring(mode))
  end
  local lossy = args.lossy or "error"
  if lossy ~= "error" and lossy ~= "allow" then
    bad("lossy %q is not error or allow", tostring(lossy))
  end
  local codec = args.codec
  if type(codec) == "string" then codec = require("sg.codec").get(codec) end
  if codec ~= nil and (type(codec) ~= "table" or type(codec.translate) ~= "function") then
    bad("codec must be a codec (require('sg.codec').get(name)) or a provider name")
  end
  local created = args.created_by_us
  if created ~= nil and type(created) ~= "table" then bad("created_by_us must be a set of keys") end
  local current = rule_list(args.current, "current")
  local desired = rule_list(args.desired, "desired")
  local is_normalized, normalize, key = rule.is_normalized, rule.normalize, rule.key

  -- desired rules as the target will hold them, by identity; later set to true when a current
  -- rule matches, so that one table serves both sides
  local wanted, wanted_order, findings = {}, {}, {}
  -- desired rules the codec does not write as they are, by their own identity: a current rule
  -- equal to one of them is already there as wanted (read back from the target, which can hold
  -- more than its write API can make), so it is kept, and neither its translation nor its
  -- finding stands
  local unwritten, wanted_by = {}, {}
  local origin, raw_of, parts = args.origin, {}, {}
  if origin ~= nil and type(origin) ~= "table" then bad("origin must map desired rules to raw rules") end
  local check = codec and (codec.check or function(r)
    local t = codec.translate(r)
    return t.status, t.rule, t.why
  end)
  for i = 1, #desired do
    local r = desired[i]
    local from = origin and origin[r]
    if from then parts[from] = (parts[from] or 0) + 1 end
    if not is_normalized(r) then r = normalize(r, { where = "plan: desired[" .. i .. "]" }) end
    if check then
      local status, out, why = check(r)
      if status ~= "exact" then
        local finding = { rule = r, kind = status, why = why }
        findings[#findings + 1] = finding
        local k = key(r)
        if not unwritten[k] then unwritten[k] = { finding = finding, out = out and key(out) } end
      end
      r = out
    end
    if r then
      local k = key(r)
      wanted_by[k] = (wanted_by[k] or 0) + 1
      if not wanted[k] then
        wanted[k] = r
        wanted_order[#wanted_order + 1] = k
        if from then raw_of[r] = from end
      end
    end
  end
  local add, remove, keep, kept_from = {}, {}, {}, {}
  for i = 1, #current do
    local r = current[i]
    if not is_normalized(r) then r = normalize(r, { where = "plan: current[" .. i .. "]" }) end
    local k = key(r)
    local w, u = wanted[k], unwritten[k]
    if w and w ~= true then
      wanted[k] = true
      keep[#keep + 1] = r
      kept_from[r] = raw_of[w]
    elseif u and not u.held then
      u.held = true
      keep[#keep + 1] = r
      if u.out then wanted_by[u.out] = wanted_by[u.out] - 1 end
    elseif mode == "authoritative" or (created and created[k] and not w) then
      -- not wanted, or a duplicate of a kept rule
      remove[#remove + 1] = r
    else
      keep[#keep + 1] = r
    end
  end
  for i = 1, #wanted_order do
    local k = wanted_order[i]
    if wanted[k] ~= true and wanted_by[k] > 0 then add[#add + 1] = wanted[k] end
  end
  local standing = {}
  for _, f in ipairs(findings) do
    local u = unwritten[key(f.rule)]
    if not (u and u.held) then standing[#standing + 1] = f end
  end
  findings = standing
  local provider = codec and codec.capabilities and codec.capabilities.provider or target.provider
  if #findings > 0 and lossy ~= "allow" then untranslatable(target, provider, findings) end

  local raw_add = raw_adds(add, keep, raw_of, kept_from, parts)

  local max = codec and codec.capabilities and codec.capabilities.max_rules
  if max and #keep + #add > max then
    error(string.format("plan for %s: the group would hold %d rules; %s allows at most %d per group",
      target_text(target), #keep + #add, provider, max), 2)
  end

  local repair = args.repair or 0
  if math.type(repair) ~= "integer" or repair < 0 then bad("repair must be a count of leftovers") end
  if args.create_group ~= nil and type(args.create_group) ~= "string" then
    bad("create_group must be the new group's name")
  end
  return setmetatable({ target = target, mode = mode, add = add, remove = remove, keep = keep,
    findings = findings, create_group = args.create_group, raw_add = raw_add, repair = repair }, Plan)
end


---True when the plan adds, removes, creates and clears nothing.
---@return boolean
function Plan:empty()
  return #self.add == 0 and #self.remove == 0 and not self.create_group and self.repair == 0
end

local function sorted_rules(list)
  local copy = {}
  for i = 1, #list do copy[i] = list[i] end
  return rule.sort(copy)
end

---A JSON-able table: the plan's fields with every list sorted and marked as a JSON array.
---@return table
function Plan:to_table()
  local json = require "sg.json"
  local findings = json.array()
  for i, f in ipairs(sorted_findings(self.findings)) do
    findings[i] = { rule = f.rule, kind = f.kind, why = f.why }
  end
  return {
    target = { provider = self.target.provider, group = self.target.group },
    mode = self.mode,
    create_group = self.create_group,
    repair = self.repair > 0 and self.repair or nil,
    add = json.array(sorted_rules(self.add)),
    remove = json.array(sorted_rules(self.remove)),
    keep = json.array(sorted_rules(self.keep)),
    findings = findings,
  }
end

---The plan as JSON text (see to_table).
---@return string
function Plan:to_json()
  return require("sg.json").encode(self:to_table())
end

-- The readable diff: a header, then +/- lines sorted by rule, then the findings.
function Plan:__tostring()
  local lines = {
    string.format("plan %s (%s): %d to add, %d to remove, %d unchanged", target_text(self.target),
      self.mode, #self.add, #self.remove, #self.keep),
  }
  if self.create_group then lines[#lines + 1] = "+ create group " .. self.create_group end
  if self.repair > 0 then
    lines[#lines + 1] = string.format("~ clear %d leftover(s) of failed writes", self.repair)
  end
  local changes, keys = {}, {}
  for _, r in ipairs(self.add) do
    local line = "+ " .. rule.tostring(r)
    changes[#changes + 1] = line
    keys[line] = rule.key(r) .. "\0+" .. line
  end
  for _, r in ipairs(self.remove) do
    local line = "- " .. rule.tostring(r)
    changes[#changes + 1] = line
    keys[line] = rule.key(r) .. "\0-" .. line
  end
  table.sort(changes, function(a, b) return keys[a] < keys[b] end)
  for _, line in ipairs(changes) do lines[#lines + 1] = line end
  for _, f in ipairs(sorted_findings(self.findings)) do
    lines[#lines + 1] = (f.kind == "inexpressible" and "! skipped, " or "! ") .. finding_line(f)
  end
  return table.concat(lines, "\n")
end

return M
