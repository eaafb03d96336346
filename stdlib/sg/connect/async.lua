-- sg.connect.async: a write's async work beyond its request: the plain-data handle another process
-- waits for it by, the tasks a provider lists as still running, responses that stand for work
-- already done, and waiting until nothing runs any more (conn:settle). `p` is a connection's
-- private record (sg.connect): p.call(name, ...) calls one of its endpoints.
local json = require "sg.json"
local wait = require "sg.wait"

local M = {}

---The plain-data form of a write's async work (see conn:follow): what another process needs to
---wait for it. Path arguments are strings or numbers; nil when one is not (nothing to re-read by).
---@param ep table the endpoint called
---@param args table the call's arguments
---@param used integer how many of them the path took
---@param result table what the call returned
---@return {endpoint: string, args: (string|number)[], value: table}|nil
function M.handle(ep, args, used, result)
  local path_args = json.array()
  for i = 1, used do
    local v = args[i]
    if type(v) ~= "string" and type(v) ~= "number" then return nil end
    path_args[i] = v
  end
  return { endpoint = ep.name, args = path_args, value = result }
end

---The tasks the provider lists as still running in this account (def.async "tasks.active").
---@async
---@param p table
---@return table[]
function M.active_tasks(p)
  local name = p.def.async["tasks.active"]
  local tasks = p.call(name)[p.def.endpoint[name].items]
  return type(tasks) == "table" and tasks or {}
end

---A response that stands for async work already done, so that conn:wait on it returns at once.
---@param ep table the endpoint called
---@param r table
---@return table r
function M.done_response(ep, r)
  if ep.async == "operation" then
    r.state = "success"
  elseif ep.async == "tasks" then
    r.tasks = json.array()
  end
  return r
end

---Waits for the async work this connection started and nobody saw finish, then for every task
---the provider lists as still running in this account (def.async "tasks.active", where the
---provider has such a list: work a killed run started). Work that ended in failure is over too:
---only a wait that cannot tell (a timeout, reads that keep failing) raises.
---@async
---@param conn sg.Connection
---@param p table
---@param internals fun(conn: sg.Connection): table sg.connect.internals, what sg.wait works with
---@param opts table|nil as conn:wait's
function M.settle(conn, p, internals, opts)
  local started = {}
  for x in pairs(p.outstanding) do started[#started + 1] = x end
  for _, x in ipairs(started) do
    local ok, err = pcall(wait.wait, internals(conn), x, opts)
    if not ok and type(err) == "table" and err.status == 404 then
      ok = true -- the work, or the provider's record of it, is gone: nothing runs under it any more
    end
    if not ok and type(err) == "table" and (err.code == "timeout" or err.retryable or err.op ~= "wait") then
      error(err, 0)
    elseif not ok and type(err) ~= "table" then
      error(err, 0)
    end
    p.outstanding[x] = nil
  end
  local a = p.def.async
  if not a["tasks.active"] then return end
  local ids = json.array()
  for _, t in ipairs(M.active_tasks(p)) do ids[#ids + 1] = t.id end
  if #ids == 0 then return end
  local ok, err = pcall(conn.wait, conn, { [a["tasks.list"]] = ids }, opts)
  if not ok and not (type(err) == "table" and tostring(err.code):match("^task_")) then error(err, 0) end
end

return M
