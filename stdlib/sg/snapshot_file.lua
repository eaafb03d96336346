--- Snapshot files: atomic save and validating load of the "sgrun.snapshot/1" JSON format.
--
-- A snapshot is {format = "sgrun.snapshot/1", provider =, group = {id =, name =, description =},
-- rules = {canonical rules}, raw = {provider rules}, taken_at = ISO 8601 time}.
-- Saving writes a temporary file next to the target and renames it over the target, so a reader
-- sees the old file or the new one, never half of one.
local rule = require "sg.rule"
local json = require "sg.json"
local errors = require "sg.errors"
local fs = require "_sg.fs"

local M = {}

M.FORMAT = "sgrun.snapshot/1"

---@class sg.Snapshot
---@field format string "sgrun.snapshot/1"
---@field provider string
---@field group {id: any, name: string?, description: string?}
---@field rules sg.Rule[]
---@field raw table[]? the provider's own rules, as read
---@field taken_at string? ISO 8601 time

---Makes written data durable: called with the path of the closed temporary file before the
---rename, then with its directory after it. Tests may replace it to observe the calls.
---@type fun(path: string): boolean?, string?
M.fsync = fs.fsync

-- A snapshot file that cannot be read or is not a snapshot is the user's to fix (exit 2); one
-- that cannot be written is this machine's (exit 1). Either way the message says what is wrong.
local function fail(where, fmt, ...)
  errors.raise_user(string.format("snapshot %s: " .. fmt, where, ...))
end

local function fail_write(where, fmt, ...)
  errors.raise_local(string.format("snapshot %s: " .. fmt, where, ...))
end

-- A value as a message shows it: numbers and short strings as they are, anything else by kind.
local function describe(v)
  if math.type(v) == "float" then return string.format("%.17g", v) end
  if math.type(v) == "integer" then return tostring(v) end
  if type(v) == "string" then return v == "" and "an empty string" or string.format("%q", v:sub(1, 60)) end
  if type(v) == "table" then return (v[1] ~= nil or json.is_array(v)) and "a list" or "an object" end
  return type(v)
end

-- Checks the shape shared by save and load; returns the rules normalised.
local function validate(s, where)
  if type(s) ~= "table" then fail(where, "expected a table, got %s", type(s)) end
  if rule.absent(s.format) then fail(where, "missing field 'format' (expected %q)", M.FORMAT) end
  if s.format ~= M.FORMAT then
    fail(where, "unknown format %q; this sgrun reads %q", tostring(s.format), M.FORMAT)
  end
  if type(s.provider) ~= "string" or s.provider == "" then
    fail(where, "missing field 'provider' (a provider name such as \"exoscale\")")
  end
  if type(s.group) ~= "table" then fail(where, "missing field 'group' ({id =, name =})") end
  if rule.absent(s.group.id) and rule.absent(s.group.name) then
    fail(where, "field 'group' has neither id nor name")
  end
  -- the group reference is handed to the provider as it stands (drift re-reads that group): a
  -- hand-edited or hostile file must fail here, naming the field, not inside an adapter
  local id, name = s.group.id, s.group.name
  if not rule.absent(id) and not ((type(id) == "string" and id ~= "") or math.type(id) == "integer") then
    fail(where, "field 'group.id' must be the group's id, a non-empty string or an integer, not %s; " ..
      "restore it from the provider or take a new snapshot", describe(id))
  end
  if not rule.absent(name) and (type(name) ~= "string" or name == "") then
    fail(where, "field 'group.name' must be the group's name, a non-empty string, not %s; " ..
      "restore it from the provider or take a new snapshot", describe(name))
  end
  if not rule.absent(s.group.description) and type(s.group.description) ~= "string" then
    fail(where, "field 'group.description' must be a string, not %s", describe(s.group.description))
  end
  if type(s.rules) ~= "table" then fail(where, "missing field 'rules' (a list of rules)") end
  if s.raw ~= nil and type(s.raw) ~= "table" then fail(where, "field 'raw' is not a list") end
  if s.taken_at ~= nil and type(s.taken_at) ~= "string" then
    fail(where, "field 'taken_at' is not a time string")
  end
  local rules = {}
  for i = 1, #s.rules do
    rules[i] = rule.normalize(s.rules[i], { where = string.format("snapshot %s: rules[%d]", where, i) })
  end
  return rules
end

---Writes a snapshot to path atomically (temporary file created exclusively in the same directory,
---fsync hook, rename). Validates it first; raises with the path and the problem.
---@param snapshot sg.Snapshot
---@param path string
function M.save(snapshot, path)
  if type(path) ~= "string" or path == "" then error("snapshot: save needs a file path", 2) end
  local rules = validate(snapshot, path)
  local doc = {}
  for k, v in pairs(snapshot) do doc[k] = v end
  doc.rules = json.array(rules)
  local raw = json.array()
  for i, r in ipairs(snapshot.raw or {}) do raw[i] = r end
  doc.raw = raw
  local text = json.encode(doc) .. "\n"

  M.write_atomic(path, text)
end

---Writes text to path atomically: a temporary file in the same directory, flush, fsync, rename,
---then the directory synced. Raises naming the path.
---@param path string
---@param text string
function M.write_atomic(path, text)
  local dir = path:match("^(.*)/[^/]*$") or "."
  -- created exclusively (0600) beside the target: a file or symlink planted in a shared
  -- directory makes the save fail instead of being followed
  local tmp, terr = fs.write_temp(path, text)
  if not tmp then fail_write(path, "%s", terr) end
  local ok, werr = true, nil
  if ok then ok, werr = M.fsync(tmp) end
  if ok then ok, werr = os.rename(tmp, path) end
  if not ok then
    os.remove(tmp)
    fail_write(path, "write failed: %s", tostring(werr))
  end
  local synced, serr = M.fsync(dir)
  if not synced then fail_write(path, "written, but the directory could not be synced: %s", tostring(serr)) end
end

---Reads and validates a snapshot file. Rules come back normalised; raises naming the file and
---what is wrong (unreadable, damaged JSON with its position, missing field, unknown format).
---@param path string
---@return sg.Snapshot
function M.load(path)
  if type(path) ~= "string" or path == "" then error("snapshot: load needs a file path", 2) end
  local text, err = fs.read_regular(path)
  if not text then fail(path, "cannot read: %s", err) end
  if text == "" then fail(path, "the file is empty") end
  local doc, jerr = json.decode(text)
  if doc == nil then fail(path, "damaged file: %s", jerr) end
  doc.rules = validate(doc, path)
  if rule.absent(doc.raw) then doc.raw = {} end
  -- null reads as absent: callers pick `group.id or group.name`
  if rule.absent(doc.group.id) then doc.group.id = nil end
  if rule.absent(doc.group.name) then doc.group.name = nil end
  if rule.absent(doc.group.description) then doc.group.description = nil end
  return doc
end

return M
