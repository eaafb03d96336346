-- sg.connect.reconcile: the no-duplicate-write rule for a create whose reply was lost. Before it
-- is re-sent, the items it would have made are re-read (ep.match_read) and, where the provider
-- runs creates as tasks, the tasks still running are listed: an item or task matching the request
-- body means the earlier attempt landed. `p` is a connection's private record (sg.connect):
-- p.call(name, ...) calls one of its endpoints.
local json = require "sg.json"
local errors = require "sg.errors"
local async = require "sg.connect.async"

local M = {}

-- Does `have` (an item the server lists) carry every scalar field `want` (see wanted) sets?
-- Lists are not compared (their order and shape differ between requests and responses);
-- null/"" in the request match an absent field. A field `want` leaves out is not compared: the
-- item's own fields (id, status) are not in the body; the body fields whose absence means the
-- provider's default are put in as null by wanted.
local function matches(want, have)
  if want == nil then return true end
  if want == json.null or want == "" then
    return have == nil or have == json.null or have == ""
  end
  if type(want) == "table" then
    if want[1] ~= nil or json.is_array(want) then return true end
    if type(have) ~= "table" then return false end
    for k, v in pairs(want) do
      if not matches(v, have[k]) then return false end
    end
    return true
  end
  if type(want) == "number" or type(have) == "number" then return tonumber(want) == tonumber(have) end
  return want == have
end

-- What a listed item must hold to be the one a create's body made: the body's fields that items
-- echo (all but ep.match_skip), and null for each of ep.match_absent the body leaves out. A left
-- out field asks for the provider's default (Barrack: no ports means all ports), so it must not
-- match an item that carries a value there: "tcp from X" is not "tcp 22 from X".
local function wanted(ep, body)
  if not ep.match_skip and not ep.match_absent then return body end
  local want = {}
  for k, v in pairs(body) do want[k] = v end
  for k in (ep.match_skip or ""):gmatch("[^,]+") do want[k] = nil end
  for k in (ep.match_absent or ""):gmatch("[^,]+") do
    if want[k] == nil then want[k] = json.null end
  end
  return want
end

---Re-reads what a create would have made (ep.match_read with this call's path arguments) and
---returns the first item equal to the request body. Used before re-sending a create whose
---earlier attempt may have landed, and by conn:wait to find a created item.
---With `ids` (what an async result says was created), the item is found by id instead.
---@async
---@param p table
---@param ep table the create's endpoint
---@param args table the create's arguments
---@param body any the create's request body
---@param path_args integer how many of args the path took
---@param ids table<string, any>|nil
---@return table|nil item
function M.find_created(p, ep, args, body, path_args, ids)
  if not ep.match_read or type(body) ~= "table" then return nil end
  local resp = p.call(ep.match_read, table.unpack(args, 1, path_args))
  local items = errors.dig(resp, ep.match_items)
  if type(items) ~= "table" then return nil end
  local want = wanted(ep, body)
  for _, item in ipairs(items) do
    if ids then
      if ids[tostring(item.id)] then return item end
    elseif matches(want, item) then
      return item
    end
  end
end

-- The pending tasks (def.async "tasks.active") whose request data matches this create's body, as
-- {tasks = ids}, or nil. A create whose response was lost may still be running as a task: its item
-- is not listed yet, and a re-send would make a second one where names are not unique (Gcore).
---@async
local function pending_create(p, ep, body)
  local a = p.def.async
  if ep.async ~= "tasks" or not a["tasks.active"] or type(body) ~= "table" then return nil end
  local want, ids = wanted(ep, body), json.array()
  for _, t in ipairs(async.active_tasks(p)) do
    local data = t[a["tasks.data"]]
    if type(data) == "table" and matches(want, data) then ids[#ids + 1] = t.id end
  end
  if #ids == 0 then return nil end
  return { [a["tasks.list"]] = ids }
end

---Re-reads for a create whose earlier attempt may have landed: the item, or nil when re-sending is
---safe. Pending matching tasks are listed BEFORE the re-read, so that one finishing in between is
---seen by the re-read, and waited for when the item is not there yet; a task that ends in error
---created nothing. Raises when it cannot tell.
---@async
---@param conn sg.Connection
---@param p table
---@param ep table the create's endpoint
---@param args table the create's arguments
---@param body any the create's request body
---@param path_args integer how many of args the path took
---@return table|nil item
function M.reconcile_create(conn, p, ep, args, body, path_args)
  local pending = pending_create(p, ep, body)
  local item = M.find_created(p, ep, args, body, path_args)
  if item ~= nil or not pending then return item end
  local ok, err = pcall(conn.wait, conn, pending)
  if not ok and not (type(err) == "table" and tostring(err.code):match("^task_")) then error(err, 0) end
  return M.find_created(p, ep, args, body, path_args)
end

---What a recovered create returns: the matched item, in the place where the async kind would
---look for it, so that conn:wait on it works like on the real response.
---@param ep table the create's endpoint
---@param item table
---@return table
function M.recovered_response(ep, item)
  local r = async.done_response(ep, { recovered = true, item = item })
  local at = (ep.poll_arg and ep.poll_arg:match("^@(.+)$")) or ep.poll_id
  if at then
    local parent = at:match("^(.*)%.[^.]+$")
    if parent and not parent:find(".", 1, true) then r[parent] = item end
  end
  return r
end

return M
