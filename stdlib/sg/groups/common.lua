--- What the group adapters (stdlib/sg/groups/<provider>.lua) share: building an sg.Group from a
-- provider's group and rules, finding a group by reference, the id <-> name maps that
-- remote-group rules need, and mapping a change set back to the provider's raw rules. Nothing
-- here knows a provider; each adapter passes its own pieces (and its codec) in.
local rule = require "sg.rule"
local errors = require "sg.errors"
local json = require "sg.json"

local M = {}

---@class sg.Group
---@field id string|integer provider id
---@field name string
---@field description string?
---@field rules sg.Rule[] canonical, normalised
---@field raw table the provider's group object as returned
---@field raw_rules table[] the provider's rule objects
---@field source table<sg.Rule, table> canonical rule table -> the raw rule it came from (identity)
---@field ref any what get_group needs to re-read exactly this group

---@class sg.GroupChanges
---@field add sg.Rule[] rules to create, already translated for the provider
---@field remove sg.Rule[] rules to delete, tables taken from group.rules
---@field desired sg.Rule[]? the full final rule set
---@field raw sg.RawAdd[]? added rules that were read from this group before, with the raw rule
---each came from: an adapter that can sends that raw rule instead of encoding them again
---@field raw_order table[]? with `raw`: every raw rule of that earlier read, in its order, so that
---an adapter whose rules are ordered (first match wins) can put each back where it stood
---@field done {added: integer, removed: integer}? a counter the adapter advances as each rule's
---write is known to have landed (adapters that write rule by rule: Exoscale, Barrack, HostUp), so that
---when apply raises part-way sg.apply reports what was done, not 0

-- Ids arrive as strings or as numbers (cjson floats such as 5.0): compare them as text of the
-- integer where there is one, so that 5, 5.0 and "5" are the same id.
local function id_text(v)
  if type(v) == "number" then return tostring(math.tointeger(v) or v) end
  return tostring(v)
end

-- group.rules list -> {provider, id, source} for every group an adapter built, so that a list of
-- rules handed back to sg.plan (a roll-out restoring what it read) still knows the raw rules it
-- came from. Weak: the entry lives as long as the list.
local origins = setmetatable({}, { __mode = "k" })

---Records where a group's rules came from (every adapter calls it on the groups it builds).
---@param provider string
---@param group sg.Group
---@return sg.Group group
function M.remember(provider, group)
  origins[group.rules] = { provider = provider, id = id_text(group.id), source = group.source,
    raw_rules = group.raw_rules }
  return group
end

---The desired rule -> raw rule map (sg.PlanArgs.origin) for bringing `group` back to `source`:
---a rule list an adapter read from this very group, or a snapshot of it (same provider, same
---group id; a loaded snapshot's raw rules are decoded again and matched to its rules by identity
---key). nil when source is anything else: raw rules of another group or provider are never sent.
---@param codec sg.Codec the target provider's codec
---@param group sg.Group the target as read
---@param source table a snapshot or a list of rules
---@return table<table, table>? origin
---@return table[]? raw_order the raw rules of that read or snapshot, in their order (the values of
---origin are among them)
function M.origin(codec, group, source)
  local list = source.rules or source
  local known = origins[list]
  if known then
    if known.provider == codec.name and known.id == id_text(group.id) then return known.source, known.raw_rules end
    return nil
  end
  if source.provider ~= codec.name or type(source.raw) ~= "table" or type(source.group) ~= "table"
    or id_text(source.group.id) ~= id_text(group.id) then
    return nil
  end
  local free = {}
  for _, r in ipairs(list) do
    if rule.is_normalized(r) then
      local k = rule.key(r)
      free[k] = free[k] or {}
      table.insert(free[k], r)
    end
  end
  local ctx = { group = { id = group.id, name = group.name } }
  local out = {}
  for _, raw in ipairs(source.raw) do
    local ok, parts = pcall(codec.decode, raw, ctx)
    if ok then
      if rule.is_normalized(parts) then parts = { parts } end
      for _, one in ipairs(parts) do
        local r = table.remove(free[rule.key(one)] or {}, 1)
        if r then out[r] = raw end
      end
    end
  end
  return out, source.raw
end

---Builds an sg.Group. Rules are decoded one by one (not with decode_all) so that each canonical
---rule can point back at the raw rule it came from; a raw rule that decodes to several canonical
---rules (HostUp) is the source of each. A rule that cannot be decoded raises, naming the group:
---dropping it would make an authoritative apply delete it unseen.
---@param codec sg.Codec
---@param g {id: any, name: string, description: string?, raw: table, ref: any}
---@param raw_rules table[]
---@param maps {group_names: table<string, string>?, group_ids: table<string, string>?}?
---@return sg.Group
function M.group(codec, g, raw_rules, maps)
  local ctx = { group = { id = g.id, name = g.name },
    group_names = maps and maps.group_names, group_ids = maps and maps.group_ids }
  local rules, source = {}, {}
  for i = 1, #raw_rules do
    local raw = raw_rules[i]
    local ok, r = pcall(codec.decode, raw, ctx)
    if not ok then
      -- what the provider sent, not a bug of sgrun's: an error object, printed without traceback
      error(errors.new({ provider = codec.name, op = "read", code = "unreadable_rule",
        message = string.format("group %s (%s): rule %d cannot be read: %s", tostring(g.name),
          id_text(g.id), i, tostring(r)) }), 0)
    end
    if rule.is_normalized(r) then r = { r } end
    for _, one in ipairs(r) do
      rules[#rules + 1] = one
      source[one] = raw
    end
  end
  local description = g.description
  if description == rule.NULL or description == "" then description = nil end
  return M.remember(codec.name, { id = g.id, name = g.name, description = description, rules = rules,
    raw = g.raw, raw_rules = raw_rules, source = source, ref = g.ref })
end

---Runs a group's writes concurrently (at most `limit` at once) and returns their results in
---order. After the first failure no new write starts, but those in flight run to their end
---before it is raised: cancelled mid-request, a write the provider received would leave work
---running there that no one knows of (no async handle to wait for, none journaled), and a
---restore reading the group would miss it.
---@async
---@param fns (fun(): any)[]
---@param limit integer
---@param landed fun(i: integer)? called as each write returns (a write that raised is not counted)
---@return any[]
function M.writes(fns, limit, landed)
  local failed, first = false, nil
  local guarded = {}
  for i, fn in ipairs(fns) do
    ---@async
    guarded[i] = function()
      if failed then return nil end
      local ok, value = pcall(fn)
      if ok then
        if landed then landed(i) end
        return value
      end
      if not failed then failed, first = true, value end
    end
  end
  local results = #guarded > 0 and require("sg.task").all(guarded, { limit = limit }) or {}
  if failed then error(first, 0) end
  return results
end

---A group reference as messages show it: "web", 10000, {vm = 10000}.
---@param ref any
---@return string
function M.ref_shown(ref)
  if type(ref) == "string" then return ref == "" and "an empty string" or string.format("%q", ref) end
  if type(ref) == "table" then
    local parts = {}
    for k, v in pairs(ref) do
      parts[#parts + 1] = string.format("%s = %s", tostring(k), type(v) == "string" and string.format("%q", v) or tostring(v))
    end
    table.sort(parts)
    return #parts == 0 and "an empty table" or "{" .. table.concat(parts, ", ") .. "}"
  end
  return tostring(ref)
end

---Why ref cannot name a group of a provider whose groups go by name or id (a non-empty string or
---an integer), or nil when it can.
---@param provider string
---@param ref any
---@return string? why
function M.ref_problem(provider, ref)
  if (type(ref) == "string" and ref ~= "") or math.type(ref) == "integer" then return nil end
  local key = type(ref) == "table" and next(ref)
  local other = key and next(ref, key) == nil and require("sg.groups").ref_forms()[key]
  return string.format("%s: a group reference is a name or an id (a non-empty string or an integer), not %s%s",
    provider, M.ref_shown(ref), other and string.format(" (that form names %s)", other.form.names) or "")
end

---Raises unless ref can name a group (a non-empty string or an integer): misuse fails before any
---request is sent.
---@param provider string
---@param ref any
function M.check_ref(provider, ref)
  local why = M.ref_problem(provider, ref)
  if why then error(why, 3) end
end

---Raises unless name can name a new group (a non-empty string the provider does not reserve and
---its schema takes: sg.groups.name_problem) and description is a string or nil.
---@param provider string
---@param name any
---@param description any
function M.check_name(provider, name, description)
  if type(name) ~= "string" or name == "" then
    error(string.format("%s: a new group needs a name (a non-empty string), not %s", provider,
      type(name) == "string" and "an empty string" or type(name)), 3)
  end
  if description ~= nil and type(description) ~= "string" then
    error(string.format("%s: a group description must be a string, not %s", provider, type(description)), 3)
  end
  local why = require("sg.groups").name_problem(provider, name, description)
  if why then error(provider .. ": " .. why, 3) end
end

---Finds the group a reference names among a provider's groups: by id first, then by name.
---Returns nil and a message when there is none; raises when a name is ambiguous, listing the
---ids (guessing would change the wrong group, and "none" would let a caller create a third one).
---@param provider string
---@param items table[] the provider's groups, each with `id` and `name`
---@param ref string|integer
---@return table|nil item
---@return string? message
function M.find(provider, items, ref)
  local want = id_text(ref)
  for _, item in ipairs(items) do
    if id_text(item.id) == want then return item end
  end
  local found = {}
  for _, item in ipairs(items) do
    if item.name == ref then found[#found + 1] = item end
  end
  if #found == 1 then return found[1] end
  if #found == 0 then
    return nil, string.format("%s has no security group with the name or id %q (%d group(s) listed)",
      provider, want, #items)
  end
  local ids = {}
  for i, item in ipairs(found) do ids[i] = id_text(item.id) end
  error(string.format("%s: %d security groups are named %q (ids %s); pass the id of the one you mean",
    provider, #found, want, table.concat(ids, ", ")), 0)
end

---The id <-> name maps of a provider's groups (sg.GroupContext's group_names and group_ids).
---A name several groups share is left out of group_ids and listed in `shared` instead, so that a
---rule referencing it is refused rather than pointed at a guess.
---@param items table[] the provider's groups, each with `id` and `name`
---@return {group_names: table<string, string>, group_ids: table<string, string>} maps
---@return table<string, string[]> shared name -> the ids that carry it
function M.maps(items)
  local names, ids, count = {}, {}, {}
  for _, item in ipairs(items) do
    local id = id_text(item.id)
    if type(item.name) == "string" then
      names[id] = item.name
      count[item.name] = count[item.name] or {}
      table.insert(count[item.name], id)
    end
  end
  local shared = {}
  for name, list in pairs(count) do
    if #list == 1 then ids[name] = list[1] else shared[name] = list end
  end
  return { group_names = names, group_ids = ids }, shared
end

---Raises when an added rule references a group name that several groups carry (see maps).
---@param provider string
---@param add sg.Rule[]
---@param shared table<string, string[]>
function M.check_shared(provider, add, shared)
  for _, r in ipairs(add) do
    local ids = r.remote_group and shared[r.remote_group]
    if ids then
      error(string.format("%s: the rule %q references group %q, but %d groups carry that name (ids %s); " ..
        "rename one of them", provider, rule.tostring(r), r.remote_group, #ids, table.concat(ids, ", ")), 0)
    end
  end
end

---True when some added rule references a group other than the target itself.
---@param group sg.Group
---@param add sg.Rule[]
---@return boolean
function M.references_others(group, add)
  for _, r in ipairs(add) do
    if r.remote_group and r.remote_group ~= group.name then return true end
  end
  return false
end

---Raises unless group is a group as get_group or create_group returned it.
---@param provider string
---@param group any
---@param op string the operation that needs it, for the message
function M.check_group(provider, group, op)
  if type(group) ~= "table" or group.id == nil or type(group.rules) ~= "table" then
    error(string.format("%s: %s needs a group as get_group or create_group returned it", provider, op), 4)
  end
end

---Checks a change set's shape; raises on misuse before any request.
---@param provider string
---@param group sg.Group
---@param changes sg.GroupChanges
function M.check_changes(provider, group, changes)
  M.check_group(provider, group, "apply")
  if type(changes) ~= "table" or type(changes.add) ~= "table" or type(changes.remove) ~= "table" then
    error(provider .. ": apply needs changes = {add = rules, remove = rules, desired = rules}", 3)
  end
  if changes.desired ~= nil and type(changes.desired) ~= "table" then
    error(provider .. ": changes.desired must be a list of rules", 3)
  end
end

-- A caller's rule as a normalised rule (plan hands over normalised ones; hand-made lists work too).
local function norm(r, where)
  if rule.is_normalized(r) then return r end
  return rule.normalize(r, { where = where })
end

---The raw rules behind the rules to remove. A rule is matched by table identity (group.source)
---and, when the caller built its own tables, by identity key among the group's rules not yet
---claimed. Raises when a rule is not in the group: deleting something else would be worse.
---@param provider string
---@param group sg.Group
---@param remove sg.Rule[]
---@return table[] raws one per rule removed, in order
---@return table<table, boolean> gone the group's canonical rules that are being removed
function M.removals(provider, group, remove)
  local gone, raws = {}, {}
  local by_key
  for i, r in ipairs(remove) do
    local mine = group.source[r] and not gone[r] and r
    if not mine then
      if not by_key then
        by_key = {}
        for _, have in ipairs(group.rules) do
          local k = rule.key(have)
          by_key[k] = by_key[k] or {}
          table.insert(by_key[k], have)
        end
      end
      r = norm(r, provider .. ": remove[" .. i .. "]")
      for _, have in ipairs(by_key[rule.key(r)] or {}) do
        if not gone[have] then
          mine = have
          break
        end
      end
    end
    if not mine then
      error(string.format("%s: remove[%d] (%s) is not a rule of group %s; re-read the group and plan again",
        provider, i, rule.tostring(r), tostring(group.name)), 0)
    end
    gone[mine] = true
    raws[i] = group.source[mine]
  end
  return raws, gone
end

---The final rule list of a full-list update (for providers whose raw rules decode to one
---canonical rule each): the group's rules that stay, with the raw rule each came from so that
---it can be sent back unchanged, then the added rules (raw: the one changes.raw names for it, else
---nil). When changes.desired is given
---it must be exactly that set (by identity key): a caller whose desired list disagrees with its
---add/remove lists would otherwise delete rules it meant to keep, or keep rules it meant to drop.
---@param provider string
---@param group sg.Group
---@param changes sg.GroupChanges
---@return {rule: sg.Rule, raw: table?}[]
function M.final_rules(provider, group, changes)
  local _, gone = M.removals(provider, group, changes.remove)
  local out, have = {}, {}
  for _, r in ipairs(group.rules) do
    if not gone[r] then
      out[#out + 1] = { rule = r, raw = group.source[r] }
      have[rule.key(r)] = r
    end
  end
  local was = {}
  for _, e in ipairs(changes.raw or {}) do
    if #e.rules == 1 and #(e.keep or {}) == 0 then was[e.rules[1]] = e.raw end
  end
  for i, r in ipairs(changes.add) do
    local raw = was[r]
    r = norm(r, provider .. ": add[" .. i .. "]")
    out[#out + 1] = { rule = r, raw = raw }
    have[rule.key(r)] = r
  end
  if changes.desired then
    local want = {}
    for i, r in ipairs(changes.desired) do
      r = norm(r, provider .. ": desired[" .. i .. "]")
      want[rule.key(r)] = true
      if not have[rule.key(r)] then
        error(string.format("%s: changes.desired has %s, which is neither kept nor added; pass add/remove " ..
          "lists that lead to the desired rules (sg.plan makes them)", provider, rule.tostring(r)), 0)
      end
    end
    for k, r in pairs(have) do
      if not want[k] then
        error(string.format("%s: the group would keep or gain %s, which changes.desired leaves out; pass " ..
          "add/remove lists that lead to the desired rules (sg.plan makes them)", provider, rule.tostring(r)), 0)
      end
    end
  end
  return out
end

-- The rules field of a group is not a list of rule objects: a bad response, never an empty group.
local function bad_rule_list(provider, raw, what)
  return errors.new({ provider = provider, op = "read", code = "bad_response",
    message = string.format("group %s (%s): the rule list %s; sgrun reads no group from such a list " ..
      "(taken for an empty group, a snapshot of it would hold no rule, and restoring or applying it " ..
      "would delete every rule). Try again; if it persists, check that SGRUN_%s_URL (or base_url) points at the " ..
      "provider's API", tostring(raw.name), id_text(raw.id), what, provider:upper()) })
end

---The raw rules of a listed group. A listing that leaves the rules field out says nothing about
---them (neither vendor lists it among the required fields; Exoscale's OpenAPI marks it write-only),
---so the group is then read alone, and only a group read alone without rules has none: taken for
---empty, a group would lose every rule to an authoritative apply. For the same reason a rules
---field that is not a list of objects (null, an object, a list holding something else) raises a
---bad_response error: both schemas say a list of rule objects.
---@async
---@param provider string
---@param raw table the listed group
---@param field string where the rules are
---@param read_alone fun(): table the group as its own read returns it
---@return table[]
function M.listed_rules(provider, raw, field, read_alone)
  local rules, source = raw[field], "listed"
  if rules == nil then
    local alone = read_alone()
    source = "read alone"
    if type(alone) ~= "table" then
      error(bad_rule_list(provider, raw, "cannot be found: the group read alone is not an object"), 0)
    end
    rules = alone[field]
    if rules == nil then return {} end
  end
  if not json.is_array(rules) then
    error(bad_rule_list(provider, raw, string.format("(%s, as %s) is %s, not a list", field, source,
      rules == json.null and "null" or type(rules) == "table" and "an object" or type(rules))), 0)
  end
  for i, r in ipairs(rules) do
    if type(r) ~= "table" or json.is_array(r) then
      error(bad_rule_list(provider, raw, string.format("(%s, as %s) holds something that is not a " ..
        "rule object at index %d", field, source, i - 1)), 0)
    end
  end
  return rules
end

---list_groups, get_group and group_reader for a provider whose one list request returns every
---group of the connection's scope with its rules: to_group(raw, maps, conn) turns a listed group
---into an sg.Group (it may read the group alone when the listing left something out).
---@param provider string
---@param list_raw fun(conn: sg.Connection): table[]
---@param to_group fun(raw: table, maps: table?, conn: sg.Connection): sg.Group
---@return fun(conn: sg.Connection): sg.Group[] list_groups
---@return fun(conn: sg.Connection, ref: any): sg.Group|nil, string? get_group
---@return fun(conn: sg.Connection): fun(ref: any): sg.Group|nil, string? group_reader
function M.listing(provider, list_raw, to_group)
  ---@async
  local function list_groups(conn)
    local raws = list_raw(conn)
    local maps = M.maps(raws)
    local out = {}
    for i, raw in ipairs(raws) do out[i] = to_group(raw, maps, conn) end
    return out
  end
  ---@async
  local function group_reader(conn)
    local raws = list_raw(conn)
    local maps = M.maps(raws)
    ---@async
    return function(ref)
      M.check_ref(provider, ref)
      local raw, err = M.find(provider, raws, ref)
      if not raw then return nil, err end
      return to_group(raw, maps, conn)
    end
  end
  ---@async
  local function get_group(conn, ref)
    M.check_ref(provider, ref) -- before any request
    return group_reader(conn)(ref)
  end
  return list_groups, get_group, group_reader
end

return M
