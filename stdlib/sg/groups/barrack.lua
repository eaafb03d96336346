--- Barrack firewalls, and a legacy instance's own rules, through a connection (list_groups,
-- get_group, create_group, apply, delete_group); the rule translation is
-- stdlib/sg/codec/barrack.lua. Waits go through sg.wait.
local rule = require "sg.rule"
local C = require "sg.codec.barrack"
local common = require "sg.groups.common"
local errors = require "sg.errors"
local json = require "sg.json"
local task = require "sg.task"
local wait = require "sg.wait"

local M = { name = "barrack" }

-- A legacy instance's own rules: {instance = "BRK-100001A"}, barrack:instance=BRK-100001A.
M.ref_form = { key = "instance", type = "string", example = "BRK-100001A", names = "a Barrack instance" }

-- one provider write per rule added or removed (sg.apply.write_count)
M.per_rule_writes = true
--
-- INFERRED, like the codec: a rule object carries `status` (CREATING until it is
-- effective, then ACTIVE or ERROR; the same states as bindings/barrack.c's async table); a
-- firewall may carry a status too (pending while CREATING); firewalls are created in a region.
-- A group is either a firewall (ref = its integer id) or an instance ({instance = "BRK-..."}).

local PENDING, ACTIVE, FAILED = "CREATING", "ACTIVE", "ERROR"
local LEGACY_TIER = "legacy"
-- Adds and removes are independent requests (rules have ids, not positions): a few at once.
local CONCURRENCY = 8

---Seconds apply waits for added rules to read ACTIVE (Barrack: "wait up to 10 minutes").
M.activation_timeout = 600

-- Ids arrive as JSON numbers (floats) on firewalls and strings on instances; compare as text.
local function id_text(id)
  return tostring(math.tointeger(id) or id)
end

local function list_of(v)
  return type(v) == "table" and v or {}
end

-- The rules of a firewall (`rules`) or legacy instance (`security_rules`) as read, `holder` named
-- by `what`. null, an object or anything else that is not a list of rule objects says nothing
-- about the rules: taken for none, a snapshot would hold no rule, a roll-out from the group would
-- remove every rule of its targets, and an apply would not see the rules there. A missing field
-- is no rules [inferred: a create response may leave the list out; a listing that does is read
-- alone, see list_groups].
local function rules_of(holder, field, what)
  local v = holder[field]
  if v == nil then return {} end
  local bad
  if not json.is_array(v) then
    bad = v == json.null and "'" .. field .. "': null" or string.format("a '%s' that is not a list (%s)", field,
      type(v) == "table" and "an object" or type(v))
  else
    for i, r in ipairs(v) do
      if type(r) ~= "table" or json.is_array(r) then
        bad = string.format("something that is not a rule object at %s[%d]", field, i - 1)
        break
      end
    end
  end
  if not bad then return v end
  error(errors.new({ provider = "barrack", op = "read", code = "bad_response",
    message = string.format("%s was read with %s, which says nothing about its rules: sgrun does not " ..
      "take it for an empty group (a snapshot would keep no rule, and a roll-out or apply would act on " ..
      "none). Read it again; if it persists, check that SGRUN_BARRACK_URL (or base_url) points at " ..
      "Barrack's API", what, bad) }), 0)
end

local function not_found(err)
  return errors.is(err) and err.status == 404
end

local function group_of(kind, id, name, description, raw, raw_rules, ref)
  local rules, source = {}, {}
  for i, r in ipairs(raw_rules) do
    -- a rule that ended in ERROR filters nothing: it is not part of the rule set (apply replaces
    -- it when the same rule is added again)
    if r.status ~= FAILED then
      local ok, c = pcall(C.decode, r)
      if not ok then
        error(string.format("barrack %s %s: rule %d (id %s): %s", kind, tostring(name), i,
          id_text(r.id), tostring(c)), 0)
      end
      rules[#rules + 1] = c
      source[c] = r
    end
  end
  return common.remember("barrack", { id = id, name = name, description = description, rules = rules,
    raw = raw, raw_rules = raw_rules, source = source, ref = ref })
end

local function firewall_group(fw)
  local id = math.tointeger(fw.id) or fw.id
  local description = fw.description
  if rule.absent(description) or description == "" then description = nil end
  return group_of("firewall", id, fw.name, description, fw,
    rules_of(fw, "rules", string.format("firewall %s (id %s)", tostring(fw.name), id_text(fw.id))), id)
end

local function instance_group(inst)
  local id = inst.instance_id
  local name = inst.name
  if rule.absent(name) or name == "" then name = id end
  return group_of("instance", id, name, nil, inst, rules_of(inst, "security_rules", "instance " .. tostring(id)),
    { instance = id })
end

-- What differs between the two kinds of group: the calls that read, add and remove rules.
local KINDS = {
  firewall = {
    ---@async
    read = function(conn, id) return rules_of(conn:get_firewall(id).firewall, "rules", "firewall " .. id_text(id)) end,
    ---@async
    add = function(conn, id, body) return conn:add_firewall_rule(id, body) end,
    added_id = "firewall_rule.id",
    ---@async
    remove = function(conn, id, rule_id) return conn:remove_firewall_rule(id, rule_id) end,
  },
  instance = {
    ---@async
    read = function(conn, id)
      return rules_of(conn:get_instance(id).instance, "security_rules", "instance " .. tostring(id))
    end,
    ---@async
    add = function(conn, id, body) return conn:add_instance_security_rule(id, body) end,
    added_id = "security_rule.id",
    ---@async
    remove = function(conn, id, rule_id) return conn:remove_instance_security_rule(id, rule_id) end,
  },
}

local function kind_of(group)
  if type(group.ref) == "table" then return KINDS.instance, "instance " .. group.id end
  return KINDS.firewall, "firewall " .. id_text(group.id)
end

---Why ref cannot name a Barrack firewall or legacy instance, or nil when it can.
---@param ref any
---@return string? why
function M.ref_problem(ref)
  local ok
  if type(ref) == "table" then
    ok = type(ref.instance) == "string" and ref.instance ~= "" and next(ref, next(ref)) == nil
  else
    ok = (type(ref) == "string" and ref ~= "") or (type(ref) == "number" and math.tointeger(ref) ~= nil)
  end
  if ok then return nil end
  return string.format("barrack: group reference %s is not a firewall name or id, nor {instance = \"BRK-...\"} " ..
    "(a legacy instance's own rules; barrack:instance=BRK-... on a command line)", common.ref_shown(ref))
end

local function bad_ref(ref)
  error(M.ref_problem(ref), 3)
end

---@async
local function firewall_by_id(conn, id)
  local ok, resp = pcall(conn.get_firewall, conn, id)
  if ok then return firewall_group(resp.firewall) end
  if not_found(resp) then return nil end
  error(resp, 0)
end

---Every firewall of the account, with its rules.
---@async
---@param conn sg.Connection
---@return sg.Group[]
function M.list_groups(conn)
  local out = {}
  for _, fw in ipairs(list_of(conn:list_firewalls().firewalls)) do
    -- a list that leaves the rules out (Hyperstack's may) costs one read per firewall
    out[#out + 1] = type(fw.rules) == "table" and firewall_group(fw) or firewall_by_id(conn, fw.id)
  end
  return out
end

---@async
local function firewall_by_name(conn, name, listed)
  local found, names = {}, {}
  for _, fw in ipairs(listed or list_of(conn:list_firewalls().firewalls)) do
    names[#names + 1] = tostring(fw.name)
    if fw.name == name then found[#found + 1] = fw end
  end
  if #found > 1 then
    local ids = {}
    for i, fw in ipairs(found) do ids[i] = id_text(fw.id) end
    error(string.format("barrack: %d firewalls are named %q (ids %s): reference one by its id",
      #found, name, table.concat(ids, ", ")), 0)
  end
  local fw = found[1]
  if not fw then
    table.sort(names)
    return nil, string.format("no Barrack firewall is named %q (firewalls: %s)", name,
      #names > 0 and table.concat(names, ", ") or "none")
  end
  if type(fw.rules) == "table" then return firewall_group(fw) end
  local g = firewall_by_id(conn, fw.id)
  if g then return g end
  return nil, string.format("firewall %q was deleted while it was being read", name)
end

---@async
local function legacy_instance(conn, id)
  local ok, resp = pcall(conn.get_instance, conn, id)
  if not ok then
    if not_found(resp) then return nil, "no Barrack instance " .. id end
    error(resp, 0)
  end
  local inst = resp.instance
  if type(inst.tier) == "string" and inst.tier ~= LEGACY_TIER then
    return nil, string.format("instance %s is a %s tier instance: only legacy tier instances have " ..
      "their own rules; reference the firewall attached to it by name or id " ..
      "(conn:get_instance_firewalls(%q) lists them)", id, inst.tier, id)
  end
  return instance_group(inst)
end

-- A firewall by id: from `listed` (the account's firewalls, read earlier) when given, else read.
---@async
local function firewall_with_id(conn, id, listed)
  if not listed then return firewall_by_id(conn, id) end
  for _, fw in ipairs(listed) do
    if id_text(fw.id) == id_text(id) then
      return type(fw.rules) == "table" and firewall_group(fw) or firewall_by_id(conn, fw.id)
    end
  end
  return nil
end

-- get_group, finding firewalls in `listed` when given. Called in tail position, so that a bad
-- reference is blamed on get_group's caller.
---@async
local function find_group(conn, ref, listed)
  if type(ref) == "table" then
    local id = ref.instance
    if type(id) ~= "string" or id == "" or next(ref, next(ref)) ~= nil then bad_ref(ref) end
    return legacy_instance(conn, id)
  end
  if type(ref) == "number" then
    local id = math.tointeger(ref)
    if not id then bad_ref(ref) end
    local g = firewall_with_id(conn, id, listed)
    if g then return g end
    return nil, "no Barrack firewall has id " .. id
  end
  if type(ref) ~= "string" or ref == "" then bad_ref(ref) end
  if ref:match("^%d+$") then
    local g = firewall_with_id(conn, math.tointeger(tonumber(ref)), listed)
    if g then return g end
  end
  return firewall_by_name(conn, ref, listed)
end

---One group: a firewall by name or id, or {instance = "BRK-..."} for a legacy instance's rules.
---A string of digits is tried as an id first, then as a name.
---@async
---@param conn sg.Connection
---@param ref string|integer|{instance: string}
---@return sg.Group|nil group
---@return string? why there is none
function M.get_group(conn, ref)
  return find_group(conn, ref)
end

---The function returned finds groups as get_group does, from one listing of the account's
---firewalls, made when a firewall is first asked for (a legacy instance, {instance = ...}, is
---read on its own, so an account of legacy instances only is never listed).
---@param conn sg.Connection
---@return fun(ref: any): sg.Group|nil, string?
function M.group_reader(conn)
  local listing
  ---@async
  return function(ref)
    if type(ref) == "table" then return find_group(conn, ref) end
    listing = listing or task.spawn(
      ---@async
      function() return list_of(conn:list_firewalls().firewalls) end)
    local ok, listed = task.wait(listing)
    if not ok then error(listed, 0) end
    return find_group(conn, ref, listed)
  end
end

-- Firewalls are created in a region (INFERRED: Hyperstack's environment). The neutral interface
-- carries none, so take the one region the account uses; several regions is a question only the
-- caller can answer.
---@async
local function account_region(conn, name)
  local seen, regions = {}, {}
  local function note(region)
    if type(region) == "string" and not seen[region] then
      seen[region] = true
      regions[#regions + 1] = region
    end
  end
  for _, fw in ipairs(list_of(conn:list_firewalls().firewalls)) do note(fw.region) end
  for _, inst in ipairs(list_of(conn:list_instances().instances)) do
    if inst.tier ~= LEGACY_TIER then note(inst.region) end
  end
  if #regions == 1 then return regions[1] end
  table.sort(regions)
  error(string.format("barrack: cannot tell which region firewall %q belongs in (%s); create it " ..
    "with conn:create_firewall{name = ..., description = ..., region = ...} and reference it by name",
    name, #regions == 0 and "the account has no firewall and no standard tier instance to go by"
    or ("the account uses " .. table.concat(regions, ", "))), 0)
end

-- Waits through sg.wait until step() returns true, result (or false, state), or raises a timeout
-- naming `what`.
---@async
local function poll(what, step)
  return wait.poll("barrack", what, { timeout = M.activation_timeout }, "Barrack may still apply it: " ..
    "re-read the group later, or raise require(\"sg.groups.barrack\").activation_timeout", step)
end

---Creates a firewall in the account's region and waits until it is usable.
---@async
---@param conn sg.Connection
---@param name string
---@param description string?
---@return sg.Group
function M.create_group(conn, name, description)
  if type(name) ~= "string" or name == "" then
    error("barrack: create_group needs a firewall name (a non-empty string)", 2)
  end
  local resp = conn:create_firewall({ name = name, description = description or "",
    region = account_region(conn, name) })
  -- a create recovered after a lost response carries the listed item instead (sg.connect)
  local fw = resp.firewall or resp.item
  if fw.status ~= PENDING then return firewall_group(fw) end
  return poll("firewall " .. id_text(fw.id),
  ---@async
  function()
    local now = conn:get_firewall(fw.id).firewall
    if now.status == FAILED then
      error(errors.new({ provider = "barrack", op = "create_group", code = FAILED, detail = now,
        message = string.format("firewall %q (id %s) ended in state ERROR; delete it with " ..
          "conn:delete_firewall(%s) and try again", name, id_text(fw.id), id_text(fw.id)) }), 0)
    end
    if now.status ~= PENDING then return true, firewall_group(now) end
    return false, now.status
  end)
end

-- Adds one rule; returns the new rule's id. An add the provider refuses as a duplicate (409 on
-- firewalls, 400 on instances) is fine when the rule is there now: someone else added it since
-- the group was read, and the goal is the rule set, not the request.
---@async
local function add_one(conn, k, id, r)
  local ok, resp = pcall(k.add, conn, id, C.encode(r))
  if ok then
    local new_id = errors.dig(resp, k.added_id)
    if new_id == nil then
      error(errors.new({ provider = "barrack", op = "apply", code = "bad_response",
        message = "the add-rule response has no " .. k.added_id }), 0)
    end
    return id_text(new_id)
  end
  if errors.is(resp) and resp.status and resp.status >= 400 and resp.status < 500 then
    local key = rule.key(r)
    for _, raw in ipairs(k.read(conn, id)) do
      local good, c = pcall(C.decode, raw)
      if good and raw.status ~= FAILED and rule.key(c) == key then return id_text(raw.id) end
    end
  end
  error(resp, 0)
end

---@async
local function remove_one(conn, k, id, rule_id)
  local ok, err = pcall(k.remove, conn, id, rule_id)
  -- already gone is what a remove wants
  if not ok and not not_found(err) then error(err, 0) end
end

-- Re-reads the group until every added rule reads ACTIVE: one read per poll, whatever the number
-- of rules. A rule that ends in ERROR is removed again (it filters nothing, and a rule left behind
-- would make the next add of the same rule a duplicate), then the error is raised.
---@async
local function await_active(conn, k, id, what, ids, by_id, done)
  poll(what .. ": added rules",
  ---@async
  function()
    local current = {}
    for _, raw in ipairs(k.read(conn, id)) do current[id_text(raw.id)] = raw end
    local pending, failed = nil, {}
    for _, rid in ipairs(ids) do
      local raw = current[rid]
      if not raw then
        error(errors.new({ provider = "barrack", op = "apply", code = "not_found", status = 404,
          message = string.format("%s: rule %s (%s) disappeared while it was being activated; " ..
            "someone else is changing this group: re-read it and plan again", what, rid,
            rule.tostring(by_id[rid])) }), 0)
      end
      if raw.status == FAILED then
        failed[#failed + 1] = rid
      elseif not rule.absent(raw.status) and raw.status ~= ACTIVE then
        pending = raw.status
      end
    end
    if #failed > 0 then
      local lines = {}
      for i, rid in ipairs(failed) do
        lines[i] = rule.tostring(by_id[rid])
        if pcall(remove_one, conn, k, id, rid) then done.added = done.added - 1 end
      end
      error(errors.new({ provider = "barrack", op = "apply", code = FAILED,
        message = string.format("%s: %d rule(s) ended in state ERROR and were removed again: %s; " ..
          "check the rules against the instance's state and try again", what, #failed,
          table.concat(lines, "; ")) }), 0)
    end
    if pending then return false, pending end
    return true, true
  end)
end

---How many rules of the group ended in ERROR (read as they were listed; no request).
---@param group sg.Group
---@return integer
function M.leftovers(group)
  local n = 0
  for _, raw in ipairs(group.raw_rules) do
    if raw.status == FAILED then n = n + 1 end
  end
  return n
end

---Removes the rules of the group that ended in ERROR (a failed add leaves them): they filter
---nothing, and one left behind makes the next add of the same rule a refused duplicate. apply
---does this first; sg.apply calls it when leftovers() found some and there is nothing else to
---write (a restore).
---@async
---@param conn sg.Connection
---@param group sg.Group from get_group/create_group
---@return integer removed how many rules were removed
function M.repair(conn, group)
  local k = kind_of(group)
  local fns = {}
  for _, raw in ipairs(group.raw_rules) do
    if raw.status == FAILED then
      ---@async
      fns[#fns + 1] = function() remove_one(conn, k, group.id, id_text(raw.id)) end
    end
  end
  common.writes(fns, CONCURRENCY)
  return #fns
end

---Adds, waits until every added rule is ACTIVE, then removes (so that nothing the desired set
---allows is ever closed on the way). Raises the provider's error object on failure.
---@async
---@param conn sg.Connection
---@param group sg.Group from get_group/create_group
---@param changes {add: sg.Rule[]?, remove: sg.Rule[]?, desired: sg.Rule[]?}
---@return {added: integer, removed: integer}
function M.apply(conn, group, changes)
  local adds, removes = changes.add or {}, changes.remove or {}
  local k, what = kind_of(group)
  local remove_ids, seen = {}, {}
  for _, r in ipairs(removes) do
    local raw = group.source[r]
    if not raw then
      error("barrack apply: a rule to remove (" .. rule.tostring(r) .. ") is not one of group.rules", 2)
    end
    local rid = id_text(raw.id)
    if not seen[rid] then seen[rid], remove_ids[#remove_ids + 1] = true, rid end
  end
  if #adds == 0 and #removes == 0 then return { added = 0, removed = 0 } end
  M.repair(conn, group)

  -- each rule counted once its write has returned, an add taken back when its rule ends in ERROR
  -- and is removed again (changes.done: what a failure part-way leaves done)
  local done = changes.done or { added = 0, removed = 0 }
  local fns = {}
  for i, r in ipairs(adds) do
    ---@async
    fns[i] = function() return add_one(conn, k, group.id, r) end
  end
  local ids = common.writes(fns, CONCURRENCY, function() done.added = done.added + 1 end)
  local by_id = {}
  for i, rid in ipairs(ids) do by_id[rid] = adds[i] end
  if #ids > 0 then await_active(conn, k, group.id, what, ids, by_id, done) end

  fns = {}
  for i, rid in ipairs(remove_ids) do
    ---@async
    fns[i] = function() remove_one(conn, k, group.id, rid) end
  end
  common.writes(fns, CONCURRENCY, function() done.removed = done.removed + 1 end)
  return { added = #adds, removed = #removes }
end

---Deletes a group (a firewall; a legacy instance's rules go with the instance), waiting for the provider to finish; the rollout removes a group it
---created when the roll-out fails.
---@async
---@param conn sg.Connection
---@param group sg.Group from get_group/create_group
function M.delete_group(conn, group)
  common.check_group("barrack", group, "delete_group")
  if type(group.ref) == "table" then
    error(string.format("barrack: instance %s is not a firewall: its own rules cannot be deleted as a " ..
      "group (remove them with apply, or delete the instance)", tostring(group.id)), 2)
  end
  conn:delete_firewall(group.id)
end

return M
