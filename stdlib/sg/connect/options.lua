-- sg.connect.options: the connect options sg.connect knows for a provider, and the checks of
-- their values: on sg.connect, and on options written in a file before anything connects.
local retry = require "sg.retry"

local M = {}

local COMMON_OPTIONS = { "profile", "profiles", "base_url", "region", "timeout", "max_size", "page_size",
  "ca_file", "ca_path", "allow_insecure_http", "resolve", "max_connections", "retry", "transport" }

---Every option sg.connect reads for a provider: the common ones, its credentials and scope, and
---what its default base URL is built from (Exoscale's zone).
---@param def table the provider's description (sg.connect.describe)
---@return string[]
function M.names(def)
  local names, seen = {}, {}
  local function add(name)
    if not seen[name] then
      seen[name] = true
      names[#names + 1] = name
    end
  end
  for _, name in ipairs(COMMON_OPTIONS) do add(name) end
  for _, c in ipairs(def.credentials) do add(c.name) end
  for _, name in ipairs(def.scope) do add(name) end
  for name in def.default_base_url:gmatch("{([%w_]+)}") do add(name) end
  for name in pairs(def.defaults) do add(name) end
  return names
end

---Refuses the connect option values sg.connect cannot use, each message starting with `prefix`
---and naming the option; `level` as error() takes it, 0 for no position (a file being checked).
---@param def table the provider's description (sg.connect.describe)
---@param opts table
---@param prefix string
---@param level integer
function M.check_values(def, opts, prefix, level)
  local function bad(text) error(prefix .. text, level == 0 and 0 or level + 1) end
  -- "not (x > 0)" also catches NaN, which every comparison calls false
  if opts.timeout ~= nil and (type(opts.timeout) ~= "number" or not (opts.timeout > 0 and opts.timeout <= 86400)) then
    bad("timeout must be a number of seconds above 0 and at most 86400")
  end
  if opts.max_size ~= nil and (type(opts.max_size) ~= "number" or not (opts.max_size >= 0 and opts.max_size <= 1e15)) then
    bad("max_size must be a number of bytes from 0 to 1e15")
  end
  if opts.max_connections ~= nil and (math.type(opts.max_connections) ~= "integer"
      or opts.max_connections < 1 or opts.max_connections > 100000) then
    bad("max_connections must be an integer from 1 to 100000")
  end
  -- the string "false" is true in Lua: an opt-in to clear text nobody meant
  if opts.allow_insecure_http ~= nil and type(opts.allow_insecure_http) ~= "boolean" then
    bad(string.format("allow_insecure_http must be true or false, not the %s %s", type(opts.allow_insecure_http),
      type(opts.allow_insecure_http) == "string" and string.format("%q", opts.allow_insecure_http)
        or tostring(opts.allow_insecure_http)))
  end
  for _, name in ipairs { "ca_file", "ca_path" } do
    if opts[name] ~= nil and (type(opts[name]) ~= "string" or opts[name] == "") then
      bad(name .. " must be a file name (a string)")
    end
  end
  if opts.page_size ~= nil and (math.type(opts.page_size) ~= "integer" or opts.page_size < 1) then
    bad("page_size must be a positive integer")
  end
  -- a provider refuses a page larger than it documents (Genesis: per_page <= 100) on every list:
  -- said here, once, instead of as an HTTP 400 from the first listing
  local max_page = math.tointeger(tonumber(def.paging.max))
  if opts.page_size ~= nil and max_page and opts.page_size > max_page then
    bad(string.format("page_size %d is more than %s allows (at most %d per page): use 1 to %d, " ..
      "or leave page_size out for the default", opts.page_size, def.name, max_page, max_page))
  end
end

---Checks connect options written in a file (a fleet inventory's `connect = {...}`) before anything
---connects: the names and values sg.connect would refuse. Raises a message without a position,
---naming each option as `name`.option ("connect.timeout must be ..."); credentials are not checked.
---@param def table the provider's description (sg.connect.describe)
---@param opts table
---@param name string how the file names the options table ("connect")
function M.check_file(def, opts, name)
  -- a secret is never written in such a file: not offered as a known option
  local secret, names = {}, {}
  for _, c in ipairs(def.credentials) do secret[c.name] = c.secret end
  for _, n in ipairs(M.names(def)) do
    if not secret[n] then names[#names + 1] = n end
  end
  require("sg.optcheck").check(name, opts, names, 0)
  M.check_values(def, opts, name .. ".", 0)
  if opts.retry ~= nil then
    if type(opts.retry) ~= "table" then error(name .. ".retry must be a table of retry policy fields", 0) end
    local ok, err = pcall(retry.policy, opts.retry)
    -- retry.policy blames its caller's caller: the position is this function's, not the file's
    if not ok then error(name .. "." .. tostring(err):gsub("^[^\n]-:%d+: ", ""), 0) end
  end
end

return M
