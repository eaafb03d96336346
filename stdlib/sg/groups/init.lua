--- Group adapters: lookup by provider name. Every caller that reads or writes a provider's
-- groups (sg.apply, sg.snapshot, sg.rollout, conn:groups(), conn:group()) goes through get().
--
-- An adapter is the module `sg.groups.<provider>`; it talks to the provider through a
-- connection (the rule translation is the codec's, `sg.codec.<provider>`) and waits only through
-- sg.wait. Each adapter module has:
--   name                                    provider name
--   list_groups(conn) -> sg.Group[]         every group of the connection's scope
--   get_group(conn, ref) -> sg.Group | nil, why
--   create_group(conn, name, description) -> sg.Group   an empty group, waited for
--   apply(conn, group, changes) -> {added, removed}     see sg.GroupChanges
--   delete_group(conn, group)               where the provider can delete a group
--   group_reader(conn) -> fun(ref): sg.Group | nil, why   where one listing holds every group:
--                                           the function finds groups in that one listing as
--                                           get_group would (sg.fleet reads many groups of one
--                                           account with it)
--   name_problem(name, description) -> why | nil   where the provider limits a new group's name
--                                           or description (Exoscale, Gcore: schema limits;
--                                           Genesis: reserved names)
--   ref_problem(ref) -> why | nil           where a group is named other than by a name or id
--                                           (HostUp {vm = N}, Barrack {instance = ID}): why ref
--                                           names none of the provider's groups
--   ref_form = {key, type, example, names}  that other way, as {KEY = VALUE} and KEY=VALUE on a
--                                           command line: type "integer" or "string", an
--                                           example value, what such a reference names, and
--                                           `only` when groups go by no name or id
--   leftovers(group) -> integer             where a failed write leaves something behind (rules
--   repair(conn, group) -> integer          in ERROR, a group in status error): counts it (no
--                                           request), clears it
-- A provider that cannot list or create groups still has the function, raising a message that
-- says how to name its groups.

---@class sg.GroupAdapter
---@field name string
---@field list_groups fun(conn: sg.Connection): sg.Group[]
---@field get_group fun(conn: sg.Connection, ref: any): sg.Group|nil, string?
---@field create_group fun(conn: sg.Connection, name: string, description: string?): sg.Group
---@field apply fun(conn: sg.Connection, group: sg.Group, changes: sg.GroupChanges): {added: integer, removed: integer}
---@field delete_group (fun(conn: sg.Connection, group: sg.Group))?
---@field group_reader (fun(conn: sg.Connection): fun(ref: any): sg.Group|nil, string?)?
---@field leftovers (fun(group: sg.Group): integer)?
---@field repair (fun(conn: sg.Connection, group: sg.Group): integer)?
---@field new_group_rules (fun(): sg.Rule[])? the rules a just-created group reads back with (default none)
---@field check_plan (fun(name: any, p: sg.Plan))? raises when a plan cannot be carried out (what apply
---would refuse), so that a plan, a dry run and an atomic roll-out say so before anything is sent
---@field name_problem (fun(name: string, description: string?): string?)? why the provider's schema
---refuses a new group's name or description (see name_problem)
---@field ref_problem (fun(ref: any): string?)? why ref cannot name a group (default: a name or id)
---@field ref_form sg.RefForm? a group reference that is not a name or id

---@class sg.RefForm
---@field key string the reference's one key ("vm")
---@field type "integer"|"string" what its value is
---@field example string a value to show in messages
---@field names string what the reference names ("a HostUp VM")
---@field only boolean? the provider's groups are named this way only, never by a name or id

local M = {}

-- The operations every adapter has (delete_group is optional).
M.OPERATIONS = { "list_groups", "get_group", "create_group", "apply" }

local providers = require "_sg.providers"
local loaded = {}

---Returns the group adapter of a provider.
---@param name string provider name, e.g. "gcore"
---@return sg.GroupAdapter
function M.get(name)
  local adapter = loaded[name]
  if adapter then return adapter end
  local known = false
  for _, p in ipairs(providers) do known = known or p == name end
  if not known then
    error(string.format("groups: %s is not a provider (known: %s)", tostring(name),
      table.concat(providers, ", ")), 2)
  end
  local ok, mod = pcall(require, "sg.groups." .. name)
  if not ok then
    if tostring(mod):find("module 'sg.groups." .. name .. "' not found", 1, true) then
      error(string.format("groups: provider %q has no group adapter (write stdlib/sg/groups/%s.lua)",
        name, name), 2)
    end
    error(mod, 0)
  end
  loaded[name] = mod
  return mod
end

---The group references that are not a name or id, by their key, each with its provider:
---{vm = {provider = "hostup", form = {...}}}. The command line and the messages learn them here.
---@return table<string, {provider: string, form: sg.RefForm}>
function M.ref_forms()
  local forms = {}
  for _, name in ipairs(providers) do
    local form = M.get(name).ref_form
    if form then forms[form.key] = { provider = name, form = form } end
  end
  return forms
end

---Why `ref` cannot name a group of `provider`, or nil when it can: said when a target or an
---inventory is read, not once the account's turn comes.
---@param provider string
---@param ref any
---@return string? why
function M.ref_problem(provider, ref)
  local adapter = M.get(provider)
  if adapter.ref_problem then return adapter.ref_problem(ref) end
  return require("sg.groups.common").ref_problem(provider, ref)
end

---Why a provider refuses `name` (and `description`) for a new group, or nil: a reserved name, or
---one past the limits of the provider's create-group schema (its adapter's name_problem). Said
---before anything is sent (sg.plan, create_group), not as the provider's 400 once a roll-out is
---under way.
---@param provider string
---@param name string
---@param description string?
---@return string? why
function M.name_problem(provider, name, description)
  local check = M.get(provider).name_problem
  return check and check(name, description) or nil
end

return M
