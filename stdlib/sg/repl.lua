-- sg.repl: the Lua half of the interactive loop (runtime/repl.c): running and printing a line,
-- tab completion, the banner, help(), and what the history file may keep.
local pretty = require "sg.pretty"

local M = {}

---Runs a compiled line and prints its results readably, with the time taken when it was slow.
---@async
---@param chunk function
function M.run_and_print(chunk)
  local clock = require("_sg.task").now
  local started = clock()
  local results = table.pack(chunk())
  local elapsed = clock() - started
  for i = 1, results.n do
    print(pretty.format(results[i]))
  end
  if elapsed >= 0.5 then print(string.format("(%.2f s)", elapsed)) end
end

local keywords = { "and", "break", "do", "else", "elseif", "end", "false", "for", "function",
  "goto", "if", "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until",
  "while" }

-- The value named by a dotted/colon path such as "sg.http" or "conn", looked up without calling
-- anything but __index.
local function resolve(path)
  local value = _G
  for name in path:gmatch("[^%.:]+") do
    if type(value) ~= "table" and type(value) ~= "userdata" then return nil end
    local ok, v = pcall(function() return value[name] end)
    if not ok then return nil end
    value = v
  end
  return value
end

-- Keys reachable by indexing v: its own, then its metatable's __index chain.
local function collect_keys(v, into, depth)
  if depth > 4 then return end
  if type(v) == "table" then
    for k in pairs(v) do
      if type(k) == "string" then into[k] = into[k] or v[k] end
    end
  end
  local mt = getmetatable(v)
  if type(mt) == "table" and type(mt.__index) == "table" then collect_keys(mt.__index, into, depth + 1) end
end

---Completion candidates for the word before the cursor ("sg.ht", "conn:add_", "pri").
---@param word string
---@return string[]
function M.complete(word)
  local path, sep, partial = word:match("^(.-)([%.:])([%w_]*)$")
  local keys = {}
  if path then
    local scope = resolve(path)
    if scope == nil then return {} end
    collect_keys(scope, keys, 0)
  else
    path, sep, partial = "", "", word
    collect_keys(_G, keys, 0)
    for _, k in ipairs(keywords) do keys[k] = keys[k] or true end
  end
  local out = {}
  for k, v in pairs(keys) do
    if k:match("^[%a_][%w_]*$") and k:sub(1, #partial) == partial and k:sub(1, 1) ~= "_"
        and (sep ~= ":" or type(v) == "function") then
      out[#out + 1] = path .. sep .. k
    end
  end
  table.sort(out)
  return out
end

-- A typed credential must not end up in the history file, however it is quoted: a name that
-- carries one (api_key, ["X-API-Key"], token, Exoscale's key/secret, ...) given a value, or a
-- header value that is one (Bearer ..., Authorization: ...).
local secret_names = { "api[_%-]?key", "secret", "token", "password", "passwd", "authorization",
  "credential", "x%-auth", "%f[%w_]key%f[^%w_]" }
local secret_values = { "bearer%s+%S", "basic%s+%S", "authorization%s*:" }

---Whether a chunk may be written to the history file: one line, or every line of a multi-line
---chunk joined by "\n" (runtime/repl.c asks once per chunk and keeps all of its lines or none, as
---a name and its value may sit on different lines).
---@param line string
---@return boolean
function M.should_remember(line)
  local lower = line:lower()
  for _, p in ipairs(secret_names) do
    if lower:find(p .. "[%w_%-]*[%s%]\"'`]*[=:]") then return false end -- token_x, api-key-id
  end
  for _, p in ipairs(secret_values) do
    if lower:find(p) then return false end
  end
  return true
end

local overview = [[
sgrun: Lua 5.4 with the sg library loaded as `sg`.
  sg.connect(provider, opts)      a connection: ]] .. table.concat(require("_sg.providers"), ", ") .. [[
  help(conn)                      what a connection (or any table) offers
  help(conn.METHOD)               a method's arguments, HTTP method, path and description
  sg.http.request{url=, ...}      one HTTP request; sg.json, sg.crypto, sg.sleep, sg.all
Lines are Lua; a bare expression prints its value. Tab completes names, fields and methods.
Ctrl-C cancels the running call (or clears the line); Ctrl-D leaves.]]

---Prints what a value offers: its documented methods if it has any, else its fields.
---@param value any
function M.help(value)
  if value == nil then
    print(overview)
    return
  end
  if type(value) == "function" then
    local text = require("sg.connect").method_help(value)
    print(text or "a function: help(conn.METHOD) describes a connection method; help(conn) lists them")
    return
  end
  local mt = getmetatable(value)
  if type(mt) == "table" and type(mt.__help) == "function" then
    print(mt.__help(value))
    return
  end
  local keys = {}
  collect_keys(value, keys, 0)
  local names = {}
  for k in pairs(keys) do
    if k:sub(1, 1) ~= "_" then names[#names + 1] = k end
  end
  table.sort(names)
  for _, k in ipairs(names) do
    print(string.format("  %-32s %s", k, type(keys[k])))
  end
end

---Sets the session up (`sg` and `help` as globals) and returns the banner.
---@return string
function M.start()
  _G.sg = require "sg"
  _G.help = M.help
  local ok, accounts = pcall(require("sg.connect").accounts)
  local found = ok and #accounts > 0 and table.concat(accounts, ", ") or "none configured"
  return string.format("sgrun %s (%s). Accounts: %s.\nhelp() for help, Ctrl-D to leave.",
    require("sg.options").version or "", _VERSION, found)
end

return M
