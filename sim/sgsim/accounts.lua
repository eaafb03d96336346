-- sgsim.accounts: fleets on the emulator. With the `accounts` knob at N, every provider hosts N
-- accounts besides its demo one, each its own state with its own credentials and `account_groups`
-- copies of the demo group; a request reaches the account whose credentials it presents (the
-- demo account when they are no account's, which then answers as it always did). fleet_files()
-- writes an inventory of them all for scripts/fleet.lua and the profile file it needs.
--
-- A provider module takes part by exporting account(ctx, n, groups) -> state, {key, credentials,
-- groups, source} and account_key(req) -> the key a request presents.
local M = {}

M.LIMITS = { accounts = { 0, 100000 }, account_groups = { 1, 50 } }

---(Re)creates every provider's accounts from the core's knobs.
---@param core table the emulator core
function M.create(core)
  core.accounts = {}
  local n, groups = math.tointeger(core.knobs.accounts) or 0, math.tointeger(core.knobs.account_groups) or 1
  for _, name in ipairs(core.order) do
    local mod = core.modules[name]
    if n > 0 and mod.account and mod.account_key then
      local list = { by_key = {} }
      for k = 1, n do
        local state, info = mod.account(core.ctx, k, groups)
        list[k] = info
        list.by_key[info.key] = state
      end
      core.accounts[name] = list
    end
  end
end

---The state a request of provider `name` works on: its account's, else the demo one.
---@param core table
---@param name string
---@param req table
---@return table state
function M.state_for(core, name, req)
  local list = core.accounts and core.accounts[name]
  if list then
    local key = core.modules[name].account_key(req)
    local state = key and list.by_key[key]
    if state then return state end
  end
  return core.states[name]
end

local function lua_string(s)
  return string.format("%q", tostring(s))
end

---The inventory (Lua) and the profile file (INI) of every account, with the demo accounts as
---the default profile (the sources "PROVIDER:GROUP" read the demo groups).
---@param core table
---@param base_url string
---@return string inventory, string profiles
function M.fleet_files(core, base_url)
  local inv = { "-- The accounts of `sgrun sim --accounts N`: run it with the profile file written beside",
    "-- it, e.g. SGRUN_PROFILES=fleet.profiles sgrun scripts/fleet.lua drift fleet.lua",
    "-- (the emulator's --env-file sets SGRUN_PROFILES and the URLs too). Every group's source is",
    "-- the demo account's group of that provider.", "return {" }
  local prof = { "# Credentials of the emulator's fleet accounts (sgrun sim --accounts)." }
  local names = {}
  for i, name in ipairs(core.order) do names[i] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local list = core.accounts and core.accounts[name]
    if list then
      -- the demo account, as the default profile: the vendor variables the emulator prints
      prof[#prof + 1] = string.format("\n[default.%s]", name)
      local env = core.modules[name].env(base_url)
      local keys = {}
      for k in pairs(env) do if not k:match("_URL$") then keys[#keys + 1] = k end end
      table.sort(keys)
      for _, k in ipairs(keys) do prof[#prof + 1] = string.format("%s = %s", k, env[k]) end
      for k, info in ipairs(list) do
        local account = string.format("%s-%03d", name, k)
        local groups = {}
        for i, ref in ipairs(info.groups) do
          groups[i] = string.format("{ group = %s, source = %s }", lua_string(ref),
            lua_string(name .. ":" .. info.source))
        end
        inv[#inv + 1] = string.format("  { name = %s, provider = %s, profile = %s,\n    groups = { %s } },",
          lua_string(account), lua_string(name), lua_string(account), table.concat(groups, ", "))
        prof[#prof + 1] = string.format("\n[%s.%s]", account, name)
        local cnames = {}
        for c in pairs(info.credentials) do cnames[#cnames + 1] = c end
        table.sort(cnames)
        for _, c in ipairs(cnames) do prof[#prof + 1] = string.format("%s = %s", c, tostring(info.credentials[c])) end
      end
    end
  end
  inv[#inv + 1] = "}"
  return table.concat(inv, "\n") .. "\n", table.concat(prof, "\n") .. "\n"
end

return M
