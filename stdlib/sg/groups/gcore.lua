--- Gcore security groups through a connection (list_groups, get_group, create_group, apply,
-- delete_group); the rule translation is stdlib/sg/codec/gcore.lua.
--
-- The groups of the connection's project and region, by name or id. Names are not unique on
-- Gcore: an ambiguous name raises.
-- * create_group sends "rules": [] so that the group starts empty: with "rules" omitted Gcore
--   applies a default template, and which one has changed over time (reference/gcore.md §8).
-- * apply is one v2 PATCH with the full rule list. Rules that stay are sent back as read (same
--   fields), so that Gcore keeps them as they are instead of replacing them.
local rule = require "sg.rule"
local C = require "sg.codec.gcore"
local common = require "sg.groups.common"
local json = require "sg.json"

local M = { name = "gcore" }

-- The fields of CreateSecurityGroupRuleSerializerV2: what a rule in the PATCH list may carry.
local REQUEST_FIELDS = { "direction", "ethertype", "protocol", "port_range_min", "port_range_max",
  "remote_ip_prefix", "remote_group_id", "description" }

---A rule as read (SecurityGroupRule), in the shape of the PATCH list. Only fields that hold a
---value are sent: responses say null where the request schema has plain strings
---(remote_group_id, description), and an absent field takes the schema's default. The protocol
---is sent by its name in the request enum whatever spelling the response used (older responses
---say "0" for any protocol and "50" for esp); "any" is left out (default null).
---@param raw table
---@return table
local function as_request(raw)
  local out = {}
  for _, f in ipairs(REQUEST_FIELDS) do
    if not rule.absent(raw[f]) then out[f] = raw[f] end
  end
  local p = out.protocol
  if p == "0" or p == 0 then p = nil end -- the legacy SDK's "any", as decode reads it
  out.protocol = C.wire_protocol(rule.protocol(p, "gcore rule " .. tostring(raw.id)))
  return out
end

-- Every group of the project and region as listed (the list carries the rules).
---@async
local function list_raw(conn)
  local groups = conn:list_security_groups().results
  if type(groups) ~= "table" then error("gcore: list_security_groups answered without a results list", 0) end
  return groups
end

---@async
---@param raw table a SecurityGroup
---@param maps table? id <-> name maps of the region's groups
---@param conn sg.Connection
---@return sg.Group
local function to_group(raw, maps, conn)
  local rules = common.listed_rules("gcore", raw, "security_group_rules",
    ---@async
    function() return conn:get_security_group(raw.id) end)
  return common.group(C, { id = raw.id, name = raw.name, description = raw.description, raw = raw,
    ref = raw.id }, rules, maps)
end

-- list_groups(conn): every security group of the connection's project and region (one list request).
-- get_group(conn, ref): one group by name or id; nil and a message when there is none; raises when several groups
--   have the name.
M.list_groups, M.get_group, M.group_reader = common.listing("gcore", list_raw, to_group)

-- CreateSecurityGroupSerializerV2 name: ^[a-zA-Z0-9][a-zA-Z 0-9._\-]{1,61}[a-zA-Z0-9._]$, so 3 to
-- 63 ASCII characters, starting with a letter or digit and ending with a letter, digit, '.' or '_'.
local NAME_PATTERN = "^[a-zA-Z0-9][a-zA-Z 0-9._%-]*[a-zA-Z0-9._]$"

---Why Gcore's create-group schema refuses this name, or nil (its description has no documented
---limit).
---@param name string
---@param _description string?
---@return string? why
function M.name_problem(name, _description)
  if #name >= 3 and #name <= 63 and name:match(NAME_PATTERN) then return nil end
  return string.format("Gcore takes a group name (name) of 3 to 63 characters matching " ..
    "^[a-zA-Z0-9][a-zA-Z 0-9._\\-]{1,61}[a-zA-Z0-9._]$ (letters, digits, spaces, '.', '_' and '-'; " ..
    "a letter or digit first, no space or '-' last), and %q is not one: choose such a name", name)
end

---Creates an empty group (no default rules), waits for its task and returns it as re-read.
---@async
---@param conn sg.Connection
---@param name string
---@param description string?
---@return sg.Group
function M.create_group(conn, name, description)
  common.check_name("gcore", name, description)
  local tasks, created = conn:wait(conn:create_security_group({ name = name, description = description,
    rules = json.array() }))
  if not created then
    -- the wait finds the group by the id its task names; read it by that id ourselves otherwise
    local made = tasks[1] and tasks[1].created_resources
    local id = type(made) == "table" and type(made.security_groups) == "table" and made.security_groups[1]
    if not id then
      error(string.format("gcore: the task creating group %q finished without naming the group; list the " ..
        "groups before creating it again (names are not unique)", name), 0)
    end
    created = conn:get_security_group(id)
  end
  return to_group(created, nil, conn)
end

---One PATCH with the full rule list (kept rules as read, added rules encoded), its tasks waited
---for. Nothing is sent when there is nothing to change.
---@async
---@param conn sg.Connection
---@param group sg.Group
---@param changes sg.GroupChanges
---@return {added: integer, removed: integer}
function M.apply(conn, group, changes)
  common.check_changes("gcore", group, changes)
  local final = common.final_rules("gcore", group, changes)
  if #changes.add == 0 and #changes.remove == 0 then return { added = 0, removed = 0 } end
  local max = C.capabilities.max_rules
  if #final > max then
    error(string.format("gcore: group %s would hold %d rules; Gcore allows at most %d per group " ..
      "(ingress and egress together)", group.name, #final, max), 0)
  end
  local ctx = { group = { id = group.id, name = group.name } }
  if common.references_others(group, changes.add) then
    local maps, shared = common.maps(list_raw(conn))
    common.check_shared("gcore", changes.add, shared)
    ctx.group_names, ctx.group_ids = maps.group_names, maps.group_ids
  end
  local list = json.array()
  for i, f in ipairs(final) do
    list[i] = f.raw and as_request(f.raw) or C.encode(f.rule, ctx)
  end
  conn:wait(conn:update_security_group(group.id, { rules = list }))
  return { added = #changes.add, removed = #changes.remove }
end

---Deletes a group (and its rules), waiting for the provider to finish; the rollout removes a group it
---created when the roll-out fails.
---@async
---@param conn sg.Connection
---@param group sg.Group from get_group/create_group
function M.delete_group(conn, group)
  common.check_group("gcore", group, "delete_group")
  conn:delete_security_group(group.id)
end

return M
