--- Genesis Cloud security groups through a connection (list_groups, get_group, create_group,
-- apply, delete_group); the rule translation is stdlib/sg/codec/genesis.lua.
--
-- Every group of the account, all regions (a connection carries no region today), by name or
-- id; an ambiguous name raises.
-- * create_group needs a region: conn.region when set, else the one region all existing groups
--   are in; it sends "rules": [] so that the group starts empty [whether the API accepts an
--   empty list is unknown: the Terraform provider requires at least one rule].
-- * apply is one PATCH with the full rule list, waited for until the group reads "created" again.
--   Right after a PATCH a group may still read "created" with its old rules before it turns
--   "updating" [inferred, reference §1.4], so apply also waits until the rules read back are the
--   ones sent.
local rule = require "sg.rule"
local C = require "sg.codec.genesis"
local common = require "sg.groups.common"
local errors = require "sg.errors"
local json = require "sg.json"
local task = require "sg.task"

local M = { name = "genesis" }

-- "default and standard are not allowed names (reserved words)" (reference §1.2): the API refuses
-- to create a group so named (400). An existing group of that name (the standard group instances
-- get by default) is still read and planned.
-- [inferred] Whether the API's check ignores letter case is not documented. Refused in any case
-- here: a name the API might take costs a rename before anything is written, while one it refuses
-- would fail a roll-out part-way. sim/sgsim/genesis.lua refuses the same names.
local RESERVED_NAMES = { default = true, standard = true }

---Why Genesis Cloud refuses this name for a new group, or nil (its name and description have no
---documented length limit).
---@param name string
---@param _description string?
---@return string? why
function M.name_problem(name, _description)
  if not RESERVED_NAMES[name:lower()] then return nil end
  return string.format("genesis reserves the group name %q (default and standard are not allowed, " ..
    "in any letter case: sgrun does not know whether Genesis Cloud ignores case, so it refuses " ..
    "before writing): choose another name", name)
end

-- How long apply keeps re-reading a group that reads "created" with its old rules after a PATCH
-- (see the header): pauses of 1, 2, 4 and 8 s.
local SETTLE_PAUSES = { 1, 2, 4, 8 }

-- The fields of a rule in the PATCH list.
local REQUEST_FIELDS = { "protocol", "direction", "port_range_min", "port_range_max" }

---A rule as read, in the shape of the PATCH list, unchanged.
---@param raw table
---@return table
local function as_request(raw)
  local out = {}
  for _, f in ipairs(REQUEST_FIELDS) do
    local v = raw[f]
    if v == nil then v = rule.NULL end
    out[f] = v
  end
  return out
end

---@async
local function list_raw(conn)
  local groups = conn:list_security_groups().security_groups
  if type(groups) ~= "table" then
    error("genesis: list_security_groups answered without a security_groups list", 0)
  end
  return groups
end

-- The rules of a SecurityGroup as read (listed, created or after a PATCH). The schema always
-- carries a `rules` list: null, an object or no `rules` says nothing about the rules, and taken
-- for an empty group it would make a snapshot hold no rule and an apply, which sends the full
-- list (even an additive one), delete every rule there is.
---@param raw table a SecurityGroup
---@param after string? the write sgrun sent before this read ("create", "update"), if any
---@return table[]
local function rules_of(raw, after)
  local rules = raw.rules
  local what
  if not json.is_array(rules) then
    what = rules == nil and "has no 'rules'" or rules == json.null and "has 'rules': null"
      or "has a 'rules' that is not a list (" .. (type(rules) == "table" and "an object" or type(rules)) .. ")"
  else
    for i, r in ipairs(rules) do
      if type(r) ~= "table" or json.is_array(r) then
        what = string.format("holds something that is not a rule object at rules[%d]", i - 1)
        break
      end
    end
  end
  if not what then return rules end
  local why = after and " after the " .. after .. " sgrun sent, so sgrun cannot tell what the group " ..
    "holds now: read it again before anything else" or "; sgrun does not take that for an empty group (a " ..
    "snapshot of it would hold no rule, and any apply to it, additive too, sends the full list and " ..
    "would delete every rule). Nothing was sent: try again"
  local op = after == "create" and "create_group" or after and "apply" or "read"
  error(errors.new({ provider = "genesis", op = op, code = "bad_response",
    message = string.format("group %s (id %s) %s%s. If it persists, check that SGRUN_GENESIS_URL (or " ..
      "base_url) points at Genesis Cloud's API", tostring(raw.name), tostring(raw.id), what, why) }), 0)
end

---@param raw table a SecurityGroup
---@return sg.Group
local function to_group(raw)
  return common.group(C, { id = raw.id, name = raw.name, description = raw.description, raw = raw,
    ref = raw.id }, rules_of(raw))
end

-- list_groups(conn): every security group of the account (every page of the list).
-- get_group(conn, ref): one group by name or id; nil and a message when there is none; raises
--   when several groups have the name.
M.list_groups, M.get_group, M.group_reader = common.listing("genesis", list_raw, to_group)

-- The region a new group goes to (see the header).
---@async
local function region_for(conn, name)
  local region = rawget(conn, "region")
  if region ~= nil then return region end
  local seen, list = {}, {}
  for _, g in ipairs(list_raw(conn)) do
    if type(g.region) == "string" and not seen[g.region] then
      seen[g.region] = true
      list[#list + 1] = g.region
    end
  end
  if #list == 1 then return list[1] end
  table.sort(list)
  error(string.format("genesis: cannot tell which region to create group %q in (%s); set conn.region = " ..
    "\"NORD-NO-KRS-1\" (or another region) on the connection first", name,
    #list == 0 and "the account has no group to take it from" or ("groups exist in " .. table.concat(list, ", "))), 0)
end

---Creates an empty group, waits until it reads "created" and returns it.
---@async
---@param conn sg.Connection
---@param name string
---@param description string?
---@return sg.Group
function M.create_group(conn, name, description)
  common.check_name("genesis", name, description)
  local resp = conn:create_security_group({ name = name, description = description,
    region = region_for(conn, name), rules = json.array() })
  local ok, final = pcall(conn.wait, conn, resp)
  if ok then
    rules_of(final.security_group, "create") -- refused as read after the create, not before a write
    return to_group(final.security_group)
  end
  -- a group whose creation failed (status error) is ours and useless: remove it, so that a
  -- retry does not meet it under the same name
  local id = type(resp) == "table" and type(resp.security_group) == "table" and resp.security_group.id
  if id and errors.is(final) and final.code == "error" then
    local gone, derr = pcall(
      ---@async
      function() conn:wait(conn:delete_security_group(id)) end)
    final.message = string.format("%s; group %q (id %s) %s", tostring(final.message), name, tostring(id),
      gone and "was deleted again: try again" or ("could not be deleted (" .. tostring(derr) ..
        "): delete it with conn:delete_security_group(\"" .. tostring(id) .. "\") and try again"))
  end
  error(final, 0)
end

-- The identity keys of a rule list, counted, for comparing what was sent with what reads back.
local function key_counts(raws)
  local counts = {}
  for _, raw in ipairs(raws) do
    local k = rule.key(C.decode(raw))
    counts[k] = (counts[k] or 0) + 1
  end
  return counts
end

local function same_counts(a, b)
  for k, n in pairs(a) do
    if b[k] ~= n then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

---One PATCH with the full rule list (kept rules as read, added rules encoded), waited for until
---the group reads "created" with the rules sent. Nothing is sent when there is nothing to change.
---@async
---@param conn sg.Connection
---@param group sg.Group
---@param changes sg.GroupChanges
---@return {added: integer, removed: integer}
function M.apply(conn, group, changes)
  common.check_changes("genesis", group, changes)
  local final = common.final_rules("genesis", group, changes)
  if #changes.add == 0 and #changes.remove == 0 then return { added = 0, removed = 0 } end
  local list = json.array()
  for i, f in ipairs(final) do list[i] = f.raw and as_request(f.raw) or C.encode(f.rule) end
  local sent = key_counts(list)
  local resp = conn:update_security_group(group.id, { rules = list })
  local after = conn:wait(resp)
  for _, pause in ipairs(SETTLE_PAUSES) do
    if same_counts(key_counts(rules_of(after.security_group, "update")), sent) then break end
    task.sleep(pause)
    after = conn:wait(resp)
  end
  if not same_counts(key_counts(rules_of(after.security_group, "update")), sent) then
    local waited = 0
    for _, pause in ipairs(SETTLE_PAUSES) do waited = waited + pause end
    error(string.format("genesis: group %s reads \"%s\" but not with the %d rules sent, %d s after the " ..
      "update finished; re-read the group and apply again", group.name, tostring(after.security_group.status),
      #list, waited), 0)
  end
  return { added = #changes.add, removed = #changes.remove }
end

---1 when the group read status "error" (a failed create or update), else 0; no request.
---@param group sg.Group
---@return integer
function M.leftovers(group)
  return type(group.raw) == "table" and group.raw.status == "error" and 1 or 0
end

---Brings a group that reads status "error" (a failed update) back to "created" by sending its
---rule list again; sg.apply calls it when leftovers() found it and there is nothing else to write
---(a restore), apply's own PATCH does the same otherwise.
---@async
---@param conn sg.Connection
---@param group sg.Group from get_group
---@return integer repaired 1 when the group was in status error, else 0
function M.repair(conn, group)
  common.check_group("genesis", group, "repair")
  if M.leftovers(group) == 0 then return 0 end
  local list = json.array()
  for i, raw in ipairs(group.raw_rules) do list[i] = as_request(raw) end
  conn:wait(conn:update_security_group(group.id, { rules = list }))
  return 1
end

---Deletes a group (and its rules), waiting for the provider to finish; the rollout removes a group it
---created when the roll-out fails.
---@async
---@param conn sg.Connection
---@param group sg.Group from get_group/create_group
function M.delete_group(conn, group)
  common.check_group("genesis", group, "delete_group")
  conn:wait(conn:delete_security_group(group.id))
end

return M
