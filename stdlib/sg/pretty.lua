-- sg.pretty: readable, bounded printing of Lua values (sorted keys, cycles marked, long lists
-- and deep nesting elided, string values under credential-like names redacted). Values read from
-- JSON print as JSON would show them: null, and whole numbers without ".0"; canonical rules print
-- in their one-line text form.
local json = require "sg.json"
local rule = require "sg.rule"

local M = {}

local defaults = { depth = 6, items = 40, indent = "  " }

local function is_identifier(s)
  return type(s) == "string" and s:match("^[%a_][%w_]*$") ~= nil
end

local function key_order(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return ta < tb end
  if ta == "number" or ta == "string" then return a < b end
  return tostring(a) < tostring(b)
end

-- Values under names like these are never shown, wherever they sit in a table. Names are
-- compared in lower case without separators, so that the header spellings (X-API-Key, HostUp's
-- and Barrack's; X-Auth-Token), snake_case and camelCase fields are one name: api-key, api_key
-- and apiKey all read "apikey".
local SECRET_PARTS = { "secret", "password", "passwd", "passphrase", "token", "apikey", "accesskey",
  "privatekey", "authorization", "credential", "cookie" }
-- whole names only: as parts they are in too many ordinary words (monkey, author)
local SECRET_NAMES = { key = true, auth = true, xauth = true }

---@param k any
---@return boolean
local function is_secret_key(k)
  if type(k) ~= "string" then return false end
  local name = k:lower():gsub("[^%w]", "")
  if SECRET_NAMES[name] then return true end
  for _, part in ipairs(SECRET_PARTS) do
    if name:find(part, 1, true) then return true end
  end
  return false
end

local function scalar(v)
  if type(v) == "string" then return string.format("%q", v) end
  if v == json.null then return "null" end
  -- JSON has one number type: a decoded 22 is the float 22.0, shown as the 22 it was
  if math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 2 ^ 53 then
    return string.format("%d", math.tointeger(v))
  end
  return tostring(v)
end

local function format(v, opts, level, seen, out)
  if type(v) ~= "table" then
    out[#out + 1] = scalar(v)
    return
  end
  if rule.is_normalized(v) then
    out[#out + 1] = "<rule " .. rule.tostring(v) .. ">"
    return
  end
  local mt = getmetatable(v)
  if mt and mt.__tostring then
    out[#out + 1] = tostring(v)
    return
  end
  if seen[v] then
    out[#out + 1] = "<cycle>"
    return
  end
  if level >= opts.depth then
    out[#out + 1] = "{...}"
    return
  end
  if next(v) == nil then
    out[#out + 1] = "{}"
    return
  end
  seen[v] = true
  local pad = opts.indent:rep(level + 1)
  out[#out + 1] = "{\n"
  local n = #v
  local shown = 0
  for i = 1, n do
    if shown >= opts.items then
      out[#out + 1] = pad .. string.format("... (%d more)\n", n - shown)
      break
    end
    out[#out + 1] = pad
    format(v[i], opts, level + 1, seen, out)
    out[#out + 1] = ",\n"
    shown = shown + 1
  end
  local keys = {}
  for k in pairs(v) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  table.sort(keys, key_order)
  for i, k in ipairs(keys) do
    if i > opts.items then
      out[#out + 1] = pad .. string.format("... (%d more keys)\n", #keys - opts.items)
      break
    end
    out[#out + 1] = pad .. (is_identifier(k) and k or ("[" .. scalar(k) .. "]")) .. " = "
    if is_secret_key(k) and type(v[k]) == "string" then
      out[#out + 1] = '"<redacted>"'
    else
      format(v[k], opts, level + 1, seen, out)
    end
    out[#out + 1] = ",\n"
  end
  seen[v] = nil
  out[#out + 1] = opts.indent:rep(level) .. "}"
end

---Formats a value as readable text.
---@param value any
---@param opts? {depth?: integer, items?: integer, indent?: string}
---@return string
function M.format(value, opts)
  opts = setmetatable(opts or {}, { __index = defaults })
  local out = {}
  format(value, opts, 0, {}, out)
  return table.concat(out)
end

return M
