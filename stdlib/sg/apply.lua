-- sg.plan and sg.apply on live groups: read the target, compute what would change (nothing is
-- sent), then carry it out through the provider's adapter, wait for the provider's async work,
-- re-read the group and fail loudly if it is not what the plan promised.
local codec = require "sg.codec"
local common = require "sg.groups.common"
local groups = require "sg.groups"
local plan_lib = require "sg.plan"
local rule = require "sg.rule"
local snapshot = require "sg.snapshot"

local M = {}

-- plan -> {conn, group (nil when it is to be created), ref}: a plan stays a plain value, and only
-- plans made here can be applied.
local bound = setmetatable({}, { __mode = "k" })

---@class sg.PlanOptions
---@field mode ("authoritative"|"additive")? default "authoritative"
---@field lossy ("error"|"allow")? default "error": lossy or inexpressible rules raise
---@field create boolean? plan the creation of a missing group (by name) instead of raising
---@field description string? for a group that gets created

M.PLAN_OPTIONS = { "mode", "lossy", "create", "description" }
-- what each plan option may be (sg.optcheck.check_values)
M.PLAN_OPTION_KINDS = { mode = { "authoritative", "additive" }, lossy = { "error", "allow" },
  create = "boolean", description = "string" }

-- Both checks of a plan's options, before anything is read.
local function check_plan_options(opts, level)
  local optcheck = require "sg.optcheck"
  optcheck.check("sg.plan", opts, M.PLAN_OPTIONS, level + 1)
  optcheck.check_values("sg.plan", opts, M.PLAN_OPTION_KINDS, level + 1)
end

local function rules_of(source)
  if type(source) ~= "table" then
    error("sg.plan: the desired rules must be a snapshot or a list of rules, not " .. type(source), 3)
  end
  return source.rules or source
end

---Plans bringing a live group to the desired rules. Reads the group; changes nothing.
---@async
---@param conn sg.Connection
---@param ref any the target group
---@param source sg.Snapshot|sg.Rule[] the desired rules
---@param opts sg.PlanOptions?
---@return sg.Plan
function M.plan(conn, ref, source, opts)
  require("sg.connect").check_connection("sg.plan", conn, 2)
  check_plan_options(opts, 2) -- before the group is read
  local group, err = groups.get(conn.provider).get_group(conn, ref)
  return M.plan_group(conn, ref, group, err, source, opts)
end

---sg.plan for a group already read (nil and err when get_group found none).
---@param conn sg.Connection
---@param ref any
---@param group sg.Group?
---@param err string?
---@param source sg.Snapshot|sg.Rule[]
---@param opts sg.PlanOptions?
---@return sg.Plan
function M.plan_group(conn, ref, group, err, source, opts)
  check_plan_options(opts, 2)
  opts = opts or {}
  local desired = rules_of(source)
  if not group and not (opts.create and type(ref) == "string") then
    require("sg.errors").raise_user(string.format("sg.plan: %s has no group %s%s%s", conn.provider,
      snapshot.group_text(ref), err and (": " .. tostring(err)) or "",
      type(ref) == "string" and "; pass {create = true} to create it" or
        "; sgrun cannot create one of this kind: check the reference"))
  end
  local refused = not group and groups.name_problem(conn.provider, ref, opts.description)
  if refused then
    require("sg.errors").raise_user(string.format("sg.plan: %s has no group %s to change, and %s",
      conn.provider, snapshot.group_text(ref), refused))
  end
  local target_codec = codec.get(conn.provider)
  local adapter = groups.get(conn.provider)
  -- A group to be created is planned from what the provider gives a new empty group (Exoscale:
  -- the implicit open egress), so that the plan says what the group will read back as. The
  -- authoritative mode then treats those rules as on an existing empty group: removed when the
  -- desired rules say otherwise, and a provider that cannot remove them refuses in
  -- check_plan before the group is created, not after.
  local current = group and group.rules or adapter.new_group_rules and adapter.new_group_rules() or {}
  local origin, raw_order
  if group then origin, raw_order = common.origin(target_codec, group, source) end
  local p = plan_lib.compute {
    target = { provider = conn.provider, group = group and group.name or ref },
    current = current,
    desired = desired,
    codec = target_codec,
    -- rules read from this very group (a restore) go back in the provider's own form
    origin = origin,
    repair = group and adapter.leftovers and adapter.leftovers(group) or 0,
    mode = opts.mode,
    lossy = opts.lossy,
    create_group = not group and ref or nil,
  }
  if not group and adapter.check_plan then adapter.check_plan(ref, p) end
  bound[p] = { conn = conn, group = group, description = opts.description, raw_order = raw_order }
  return p
end

-- Compares the group as re-read with what the plan promised; returns nil or the difference.
local function verify(p, after)
  local want = {}
  for _, r in ipairs(p.keep) do want[rule.key(r)] = r end
  for _, r in ipairs(p.add) do want[rule.key(r)] = r end
  local have, missing, unexpected = {}, {}, {}
  for _, r in ipairs(after.rules) do
    local k = rule.key(r)
    have[k] = true
    if not want[k] and p.mode == "authoritative" then unexpected[#unexpected + 1] = rule.tostring(r) end
  end
  for k, r in pairs(want) do
    if not have[k] then missing[#missing + 1] = rule.tostring(r) end
  end
  if p.mode == "additive" then
    for _, r in ipairs(p.remove) do
      if have[rule.key(r)] then unexpected[#unexpected + 1] = rule.tostring(r) end
    end
  end
  if #missing == 0 and #unexpected == 0 then return nil end
  table.sort(missing)
  table.sort(unexpected)
  return string.format("after applying, %s %s differs from the plan: missing [%s], unexpected [%s]",
    p.target.provider, after.name, table.concat(missing, "; "), table.concat(unexpected, "; "))
end

---How many provider writes applying p takes, for progress ("applying 3/7 writes"): creating the
---group, then one per rule change where the provider changes rules one by one
---(adapter.per_rule_writes), else one for the whole list. An estimate: a retried or repairing
---write is not foreseen.
---@param p sg.Plan
---@return integer
function M.write_count(p)
  local b = bound[p]
  local changes = #p.add + #p.remove
  local per_rule = b and groups.get(b.conn.provider).per_rule_writes
  return (p.create_group and 1 or 0) + (per_rule and changes or math.min(changes, 1))
end

---@class sg.ApplyResult
---@field ok boolean
---@field added integer rules added; when the adapter failed part-way, those whose write is known to
---have landed (adapters that write rule by rule count them: Exoscale, Barrack, HostUp; Gcore and
---Genesis send the whole list in one request, so 0)
---@field removed integer rules removed, counted the same way
---@field created boolean? the group was created
---@field repaired integer? leftovers of failed writes cleared (adapter.repair) when nothing else changed
---@field group sg.Group? the group as re-read after applying
---@field error any? what went wrong (an sg error object or a message)

---Carries a plan out: creates the group if the plan says so, adds before removes (or the
---provider's one full-list update), waits for the provider's async work, re-reads the group and
---fails if it differs from the plan. Never raises for a remote failure: see result.ok/error.
---@async
---@param p sg.Plan a plan made by sg.plan
---@return sg.ApplyResult
function M.apply(p)
  local b = bound[p]
  if not b then error("sg.apply: this plan was not made by sg.plan, so it has no connection to apply to", 2) end
  local result = { ok = false, added = 0, removed = 0 }
  -- what the adapter has done so far (sg.GroupChanges.done), reported when it raises part-way
  local done, applying = { added = 0, removed = 0 }, false
  local ok, err = pcall(
  ---@async
  function()
    local adapter = groups.get(b.conn.provider)
    local group = b.group
    if p.create_group then
      group = adapter.create_group(b.conn, p.create_group, b.description)
      result.created = true
    end
    if #p.add > 0 or #p.remove > 0 then
      local desired = {}
      for _, r in ipairs(p.keep) do desired[#desired + 1] = r end
      for _, r in ipairs(p.add) do desired[#desired + 1] = r end
      applying = true
      local counts = adapter.apply(b.conn, group, { add = p.add, remove = p.remove, desired = desired,
        raw = p.raw_add, raw_order = b.raw_order, done = done })
      applying = false
      result.added, result.removed = counts.added, counts.removed
    elseif p.repair > 0 then
      -- nothing else to write, but a failed write left something (a restore after it)
      result.repaired = adapter.repair(b.conn, group)
    end
    local after = snapshot.read_group(b.conn, group.ref)
    result.group = after
    local difference = verify(p, after)
    if difference then error("sg.apply: " .. difference, 0) end
  end)
  result.ok = ok
  if not ok then
    result.error = err
    if applying then result.added, result.removed = done.added, done.removed end
  end
  return result
end

return M
