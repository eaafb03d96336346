-- sg.json: JSON with an explicit null and a marker for arrays, so that an empty list is sent as
-- [] and a list read back stays one (cjson alone cannot tell an empty array from an empty
-- object). Encoding is lua-cjson's; decoding is libjansson's (_sg.jsonstrict), which marks every
-- decoded array, keeps null, and reads 8080 as an integer.
local cjson = require "cjson"
local jsonstrict = require "_sg.jsonstrict"

local M = {}

---The JSON null: decoded nulls are this value, and encoding it writes null.
M.null = cjson.null

local array_mt = { __name = "sg.json.array" }

-- An empty marked array is swapped for this string while cjson encodes, then for [] in the text.
-- The NUL bytes make it impossible for real data to produce the same encoded text.
local EMPTY = "\0sgrun:empty_array\0"
local EMPTY_ENCODED = '"\\u0000sgrun:empty_array\\u0000"'

---Marks t (or a new table) as a JSON array, so that it encodes as [] even when empty.
---@generic T: table
---@param t? T
---@return T
function M.array(t)
  return setmetatable(t or {}, array_mt)
end

---True when t was marked with json.array.
---@param t any
---@return boolean
function M.is_array(t)
  return getmetatable(t) == array_mt
end

-- Returns v, or a copy in which every empty marked array is replaced by EMPTY.
local function swap_empty_arrays(v, seen)
  if type(v) ~= "table" then return v, false end
  if getmetatable(v) == array_mt and next(v) == nil then return EMPTY, true end
  if seen[v] then error("sg.json.encode: cannot encode a table that contains itself", 0) end
  seen[v] = true
  local copy, changed = nil, false
  for k, item in pairs(v) do
    local new, c = swap_empty_arrays(item, seen)
    if c then
      if not copy then
        copy = {}
        for k2, item2 in pairs(v) do copy[k2] = item2 end
      end
      copy[k] = new
      changed = true
    end
  end
  seen[v] = nil
  return copy or v, changed
end

---Encodes a Lua value as JSON text. Raises on values JSON cannot hold (functions, cycles,
---sparse arrays), naming the problem.
---@param value any
---@return string
function M.encode(value)
  local prepared, changed = swap_empty_arrays(value, {})
  local ok, text = pcall(cjson.encode, prepared)
  if not ok then error("sg.json.encode: " .. tostring(text), 2) end
  if changed then text = text:gsub(EMPTY_ENCODED, "[]") end
  return text
end

---Decodes JSON text. Returns the value, or nil and a message that says where the text is bad.
---@param text string
---@return any value
---@return string? err
function M.decode(text)
  if type(text) ~= "string" then
    error("sg.json.decode: expected a string, got " .. type(text), 2)
  end
  local value, msg = jsonstrict.decode(text, array_mt)
  if msg == nil then return value end
  local pos = tonumber(msg:match("at character (%d+)"))
  if pos then
    local near = text:sub(math.max(1, pos - 10), pos + 10):gsub("[%c]", " ")
    msg = string.format("%s (near '%s')", msg, near)
  end
  return nil, "invalid JSON: " .. msg
end

return M
