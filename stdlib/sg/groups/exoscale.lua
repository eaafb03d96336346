--- Exoscale security groups through a connection (list_groups, get_group, create_group, apply,
-- delete_group); the rule translation is stdlib/sg/codec/exoscale.lua.
--
-- A group is a private security group of the organisation, by name or id (names are unique per
-- organisation). Rules have no update: a change is add-then-delete, one operation per rule, each
-- waited for.
-- * A group's external sources (CIDRs that count as members of the group when another rule
--   references it) are not rules: they are left alone and are not part of the canonical rules.
-- * With no egress rule at all, Exoscale allows all egress; that implicit rule is not listed.
local rule = require "sg.rule"
local C = require "sg.codec.exoscale"
local common = require "sg.groups.common"

local M = { name = "exoscale" }

-- one provider write per rule added or removed (sg.apply.write_count)
M.per_rule_writes = true

-- Rule operations in flight at once during apply: enough to hide the latency of each
-- operation, few enough not to trip the API's rate limit with a large rule set.
local CONCURRENCY = 8

-- The organisation's private groups as listed (public groups are Exoscale's, not the user's).
---@async
local function list_raw(conn)
  local groups = conn:list_security_groups()["security-groups"]
  if type(groups) ~= "table" then
    error("exoscale: list_security_groups answered without a security-groups list", 0)
  end
  return groups
end

-- An Exoscale group without egress rules lets all egress out; clouds that deny by default (Gcore,
-- OpenStack) need that written as rules. So reading such a group yields the two rules that say it,
-- marked implicit (they have no provider rule behind them): a snapshot carries "egress allowed"
-- to other clouds instead of silently cutting it, and a plan against Exoscale sees them as there.
local IMPLICIT_WHY = "implicit: an Exoscale group without egress rules lets all egress out"

---@param group sg.Group
local function add_implicit_egress(group)
  for _, r in ipairs(group.rules) do
    if r.direction == "egress" then return end
  end
  group.implicit = {}
  for _, cidr in ipairs({ rule.ANY_V4, rule.ANY_V6 }) do
    local r = rule.normalize({ direction = "egress", protocol = "any", cidr = cidr, description = IMPLICIT_WHY })
    group.rules[#group.rules + 1] = r
    group.implicit[r] = true
  end
end

---The rules a group just created reads back with: the implicit open egress. sg.apply plans a
---group that does not exist yet from these, so that the plan says what the new group will hold.
---@return sg.Rule[]
function M.new_group_rules()
  local group = { rules = {} }
  add_implicit_egress(group)
  return group.rules
end

-- Raises when the changes would leave the group with no egress rule: Exoscale would then let all
-- egress out, the opposite of a desired set without egress rules.
local function refuse_open_egress(name, remove, desired)
  local egress_removed, egress_left = false, false
  for _, r in ipairs(remove) do egress_removed = egress_removed or r.direction == "egress" end
  if not egress_removed then return end
  for _, r in ipairs(desired) do egress_left = egress_left or r.direction == "egress" end
  if not egress_left then
    error(string.format("exoscale: group %s would end with no egress rule, and an Exoscale group " ..
      "without egress rules lets all egress out: to block egress, list the egress rules that may " ..
      "pass; to allow all egress, include egress any to 0.0.0.0/0 and ::/0", name), 0)
  end
end

---Refuses, before anything is sent, a plan that would leave a group with no egress rule (an
---authoritative set without egress rules): the refusal apply makes, made early so that a dry run
---says so, an atomic roll-out stops before touching any target, and no group is created only to
---be deleted again.
---@param name any the group
---@param p sg.Plan
function M.check_plan(name, p)
  local desired = {}
  for _, r in ipairs(p.keep) do desired[#desired + 1] = r end
  for _, r in ipairs(p.add) do desired[#desired + 1] = r end
  refuse_open_egress(name, p.remove, desired)
end

---@async
---@param raw table an Exoscale security group
---@param maps table? id <-> name maps of the organisation's groups
---@param conn sg.Connection
---@return sg.Group
local function to_group(raw, maps, conn)
  local rules = common.listed_rules("exoscale", raw, "rules",
    ---@async
    function() return conn:get_security_group(raw.id) end)
  local group = common.group(C, { id = raw.id, name = raw.name, description = raw.description, raw = raw,
    ref = raw.id }, rules, maps)
  add_implicit_egress(group)
  return group
end

-- list_groups(conn): every private security group of the organisation (one list request carries
--   the rules too).
-- get_group(conn, ref): one group by name or id; nil and a message when there is none.
M.list_groups, M.get_group, M.group_reader = common.listing("exoscale", list_raw, to_group)

-- create-security-group (OpenAPI): name minLength 1 maxLength 255, description maxLength 255;
-- the schema's lengths count characters.
local NAME_MAX, DESCRIPTION_MAX = 255, 255

---Why Exoscale's create-group schema refuses this name or description, or nil (an empty name is
---common.check_name's own refusal).
---@param name string
---@param description string?
---@return string? why
function M.name_problem(name, description)
  local n = utf8.len(name) or #name
  if n > NAME_MAX then
    return string.format("Exoscale takes a group name (name) of at most %d characters, and this one " ..
      "has %d: choose a shorter name", NAME_MAX, n)
  end
  if type(description) == "string" then
    local d = utf8.len(description) or #description
    if d > DESCRIPTION_MAX then
      return string.format("Exoscale takes a group description (description) of at most %d characters, " ..
        "and this one has %d: shorten the description", DESCRIPTION_MAX, d)
    end
  end
  return nil
end

---Creates an empty group and waits for the operation; returns it as re-read.
---@async
---@param conn sg.Connection
---@param name string
---@param description string?
---@return sg.Group
function M.create_group(conn, name, description)
  common.check_name("exoscale", name, description)
  local final, created = conn:wait(conn:create_security_group({ name = name, description = description }))
  -- the wait finds the group by re-listing; the operation's reference names it too
  return to_group(created or conn:get_security_group(final.reference.id), nil, conn)
end

-- The rules to add: the changes' additions and, when the group is to hold an explicit egress rule
-- (one is added, or an implicit one is to go), every desired rule the plan kept because it
-- matched an implicit rule (`implicit`: their keys): the implicit rules go once an explicit
-- egress rule is there, and such a rule would go with them.
local function with_implicit_kept(changes, implicit, implicit_removed)
  if not next(implicit) then return changes.add end
  local explicit_egress, adding = implicit_removed, {}
  for _, r in ipairs(changes.add) do
    explicit_egress = explicit_egress or r.direction == "egress"
    adding[rule.key(r)] = true
  end
  if not explicit_egress then return changes.add end
  local add = table.move(changes.add, 1, #changes.add, 1, {})
  for _, r in ipairs(changes.desired or {}) do
    local k = rule.key(r)
    if implicit[k] and not adding[k] then
      add[#add + 1] = r
      adding[k] = true
    end
  end
  return add
end

---Adds the new rules (concurrently, each operation waited for), then deletes the old ones the
---same way. Raises the first failure; rules added before it stay (the caller restores).
---@async
---@param conn sg.Connection
---@param group sg.Group
---@param changes sg.GroupChanges
---@return {added: integer, removed: integer}
function M.apply(conn, group, changes)
  common.check_changes("exoscale", group, changes)
  -- Implicit rules go away by themselves once the group has an egress rule; they are matched by
  -- key, as the plan of a group created on the way holds new_group_rules(), not this group's
  -- tables. A group left with no egress rule is refused before anything is sent.
  local implicit = {}
  for r in pairs(group.implicit or {}) do implicit[rule.key(r)] = true end
  local remove, implicit_removed = {}, 0
  for _, r in ipairs(changes.remove) do
    if implicit[rule.key(r)] then
      implicit_removed = implicit_removed + 1
    else
      remove[#remove + 1] = r
    end
  end
  refuse_open_egress(group.name, changes.remove, changes.desired or changes.add)
  local add = with_implicit_kept(changes, implicit, implicit_removed > 0)
  local raws = common.removals("exoscale", group, remove)
  local ctx = { group = { id = group.id, name = group.name } }
  if common.references_others(group, changes.add) then
    local maps, shared = common.maps(list_raw(conn))
    common.check_shared("exoscale", changes.add, shared)
    ctx.group_names, ctx.group_ids = maps.group_names, maps.group_ids
  else
    -- the group's own name is all a self-reference needs
    ctx.group_ids = { [group.name] = group.id }
  end
  -- every body is encoded before the first request, so a rule that cannot be sent fails early
  local steps = {}
  for i, r in ipairs(add) do
    local body = C.encode(r, ctx)
    ---@async
    steps[i] = function() return conn:wait(conn:add_rule_to_security_group(group.id, body)) end
  end
  -- each rule counted once its operation has succeeded (changes.done: what a failure part-way
  -- leaves done); the implicit rules are gone once the adds, an explicit egress among them, are in
  local done = changes.done or { added = 0, removed = 0 }
  common.writes(steps, CONCURRENCY, function() done.added = done.added + 1 end)
  done.removed = done.removed + implicit_removed
  steps = {}
  for i, raw in ipairs(raws) do
    ---@async
    steps[i] = function() return conn:wait(conn:delete_rule_from_security_group(group.id, raw.id)) end
  end
  common.writes(steps, CONCURRENCY, function() done.removed = done.removed + 1 end)
  return { added = #add, removed = #raws + implicit_removed }
end

---Deletes a group (and its rules), waiting for the provider to finish; the rollout removes a group it
---created when the roll-out fails.
---@async
---@param conn sg.Connection
---@param group sg.Group from get_group/create_group
function M.delete_group(conn, group)
  common.check_group("exoscale", group, "delete_group")
  conn:wait(conn:delete_security_group(group.id))
end

return M
