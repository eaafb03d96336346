-- sg.snapshot: read a group into a provider-neutral snapshot; save and load snapshot files.
local groups = require "sg.groups"
local snapshot_file = require "sg.snapshot_file"

local M = {}

local function group_text(ref)
  if type(ref) == "table" then
    local parts = {}
    for k, v in pairs(ref) do parts[#parts + 1] = k .. "=" .. tostring(v) end
    table.sort(parts)
    return "{" .. table.concat(parts, ", ") .. "}"
  end
  return tostring(ref)
end
M.group_text = group_text

---Reads one group through its provider's neutral adapter; raises when there is none.
---@async
---@param conn sg.Connection
---@param ref any group reference: name or id; Barrack {instance = ...}; HostUp {vm = N}
---@param read (fun(ref: any): sg.Group|nil, string?)? a group reader to find it with (see
---sg.groups: group_reader) instead of a read of its own
---@return sg.Group
function M.read_group(conn, ref, read)
  local group, err
  if read then
    group, err = read(ref)
  else
    group, err = groups.get(conn.provider).get_group(conn, ref)
  end
  if not group then
    require("sg.errors").raise_user(string.format("%s has no group %s: %s (check the name; " ..
      "conn:groups() lists the groups)", conn.provider, group_text(ref), tostring(err)))
  end
  return group
end

---Takes a snapshot of a group: its canonical rules and the provider's raw rules.
---@async
---@param conn sg.Connection
---@param ref any
---@return sg.Snapshot
function M.snapshot(conn, ref)
  require("sg.connect").check_connection("sg.snapshot", conn, 2)
  local group = M.read_group(conn, ref)
  return {
    format = snapshot_file.FORMAT,
    provider = conn.provider,
    group = { id = group.id, name = group.name, description = group.description },
    rules = group.rules,
    raw = group.raw_rules,
    taken_at = os.date("!%Y-%m-%dT%H:%M:%SZ"),
  }
end

M.save = snapshot_file.save
M.load = snapshot_file.load

return M
