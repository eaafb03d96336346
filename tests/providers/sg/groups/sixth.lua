--- The sixth provider's groups through a connection: one list request, one full-list update.
local C = require "sg.codec.sixth"
local common = require "sg.groups.common"
local json = require "sg.json"

local M = { name = "sixth" }

-- Its groups are also named by rack ({rack = 7}, sixth:rack=7): a form of its own, which the
-- command line and its messages learn from here.
M.ref_form = { key = "rack", type = "integer", example = "7", names = "a sixth rack" }

function M.ref_problem(ref)
  if type(ref) == "table" and math.type(ref.rack) == "integer" and next(ref, next(ref)) == nil then return nil end
  return common.ref_problem("sixth", ref)
end

local function to_group(raw)
  return common.group(C, { id = raw.id, name = raw.name, raw = raw, ref = raw.id }, raw.rules)
end

M.list_groups, M.get_group = common.listing("sixth", function(conn) return conn:list_groups().groups end,
  to_group)

function M.create_group(conn, name)
  common.check_name("sixth", name)
  return to_group(conn:create_group({ name = name }).group)
end

function M.apply(conn, group, changes)
  common.check_changes("sixth", group, changes)
  local list = json.array()
  for i, f in ipairs(common.final_rules("sixth", group, changes)) do list[i] = C.encode(f.rule) end
  conn:replace_rules(group.id, { rules = list })
  return { added = #changes.add, removed = #changes.remove }
end

function M.delete_group(conn, group)
  conn:delete_group(group.id)
end

return M
