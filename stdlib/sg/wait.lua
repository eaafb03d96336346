-- sg.wait: the one poller behind conn:wait(x) for every provider. The provider's binding says
-- which async kind each endpoint starts and where the state lives (bindings/<provider>.c,
-- `async`); this file knows only the kinds:
--   operation   an object with an id and a state, re-read through a "get" endpoint (Exoscale)
--   tasks       a list of task ids, every one polled to a final state (Gcore)
--   status      the resource itself carries a status; re-read until success/failure (Genesis)
--   gone        after a delete: re-read until the read answers 404 (Genesis)
--   activation  items of a resource carry a status; re-read until they are all active (Barrack)
-- Polling starts fast and backs off to a cap, every wait has a deadline, and a wait is just a
-- task sleeping between reads: many run concurrently, and cancelling the task stops it.
local task = require "sg.task"
local errors = require "sg.errors"
local optcheck = require "sg.optcheck"
local json = require "sg.json"

local M = {}

M.DEFAULT = { timeout = 600, interval = 0.1, max_interval = 5, factor = 1.6, max_errors = 5 }

local function set_of(csv)
  local s = {}
  for v in (csv or ""):gmatch("[^,]+") do s[v] = true end
  return s
end

local function options(opts)
  local o, known = {}, {}
  for k, v in pairs(M.DEFAULT) do o[k], known[#known + 1] = v, k end
  optcheck.check("conn:wait", opts, known, 4)
  for k, v in pairs(opts or {}) do
    if type(v) ~= "number" or v <= 0 then error(string.format("conn:wait: %s must be a positive number", k), 4) end
    o[k] = v
  end
  return o
end

local function fail(c, op, fields)
  fields.provider, fields.op = c.def.name, op
  error(c.new_error(fields), 0)
end

-- Runs step() until it reports done, sleeping with backoff in between. Transient (retryable)
-- errors from a read are tolerated up to max_errors in a row; anything else is raised.
---@async
local function poll(c, what, o, deadline, step, hint)
  local interval, failures = o.interval, 0
  local last
  while true do
    local ok, done, a, b = pcall(step)
    if ok then
      failures = 0
      if done then return a, b end
      last = a
    elseif errors.is(done) and done.retryable and failures < o.max_errors then
      failures = failures + 1
    else
      error(done, 0)
    end
    local now = task.now()
    if now >= deadline then
      fail(c, "wait", { code = "timeout", retryable = true, detail = last,
        message = string.format("%s was not done after %g s (last state: %s); %s", what, o.timeout,
          tostring(type(last) == "string" and last or "unknown"),
          hint or "the work goes on at the provider: call conn:wait again with a longer {timeout = ...}") })
    end
    task.sleep(math.min(interval, deadline - now))
    interval = math.min(o.max_interval, interval * o.factor)
  end
end

local kinds = {}

-- The provider's response an async handle came from was not one: a bad response naming the
-- provider and the call, never a misuse of conn:wait (the playbook passed what the method returned).
local function bad_handle(c, origin, what)
  fail(c, "wait", { code = "bad_response",
    message = string.format("the response of %s %s, so sgrun cannot wait for its work to end nor " ..
      "tell whether it landed: read the group again to see what it holds; if this persists, check " ..
      "that SGRUN_%s_URL (or base_url) points at the provider's API", origin.ep.name, what,
      c.def.name:upper()) })
end

-- A state that is none of the provider's: sgrun cannot tell whether the work is over or will still
-- land. Retryable, like a timeout: the poll reads it again a few times, and conn:settle (a roll-out
-- before it restores) counts the work as still running, so the target's state is unknown and the
-- journal is kept, rather than taken as failed and restored under work that may land after.
local function unknown_state(c, what, state, known, detail)
  fail(c, "wait", { code = "bad_response", retryable = true, detail = detail,
    message = string.format("%s has state %s, which is none of %s's (%s), so sgrun cannot tell " ..
      "whether it ended or is still running: wait for it again (conn:wait), or read the group to see " ..
      "what landed", what, (state == nil or state == json.null) and "null" or json.encode(state),
      c.def.name, known) })
end

---Exoscale-style operations: pending -> success | failure | timeout.
---@async
function kinds.operation(c, x, origin, o, deadline)
  local a = c.def.async
  local id_field, state_field = a["operation.id"], a["operation.state"]
  local pending, success = set_of(a["operation.pending"]), set_of(a["operation.success"])
  local failure = set_of(a["operation.failure"])
  local known = table.concat({ a["operation.pending"], a["operation.success"], a["operation.failure"] }, ",")
  local op = type(x) == "table" and x or nil
  local id = x
  if op then id = op[id_field] end
  local function judge(v)
    local state = type(v) == "table" and v[state_field] or nil
    if success[state] then return true end
    if pending[state] then return false end
    if not failure[state] then unknown_state(c, "operation " .. tostring(id), state, known, v) end
    local reason = {}
    for f in a["operation.reason"]:gmatch("[^,]+") do
      if v[f] ~= nil then reason[#reason + 1] = tostring(v[f]) end
    end
    fail(c, "wait", { code = tostring(v.reason or state), detail = v,
      message = string.format("operation %s ended %s%s", tostring(v[id_field]), tostring(state),
        #reason > 0 and (": " .. table.concat(reason, ", ")) or "") })
  end
  -- a response that already says how it ended needs no poll; any other state is polled
  local ended = op and (success[op[state_field]] or failure[op[state_field]])
  if not (ended and judge(op)) then
    if type(id) ~= "string" or id == "" then
      if origin then
        bad_handle(c, origin, string.format("names no operation to wait for (%s %s is not an " ..
          "operation id)", id_field, id == nil and "missing" or json.encode(id)))
      end
      error("conn:wait: expected an operation (a table with '" .. id_field .. "') or its id", 3)
    end
    op = poll(c, "operation " .. id, o, deadline,
    ---@async
    function()
      local v = c.call(a["operation.get"], id)
      if judge(v) then return true, v end
      return false, v[state_field]
    end)
  end
  if op.recovered then return op, op.item end
  if origin and origin.ep.match_read then return op, c.find_created(origin) end
  return op
end

-- The task ids of a Gcore-style handle, or nil and why not: a list of non-empty strings (the
-- schema's array of strings; in a response a JSON array, so that an object, even {}, is not taken
-- for an empty list). An empty list is allowed (the schema sets no minimum): nothing to wait for.
local function task_ids(list, response)
  local is_list = type(list) == "table"
  if is_list and response then
    is_list = json.is_array(list)
  elseif is_list then
    local n = 0
    for _ in pairs(list) do n = n + 1 end
    is_list = n == #list
  end
  if not is_list then return nil, "is not a list" end
  for i, id in ipairs(list) do
    if type(id) ~= "string" or id == "" then
      return nil, string.format("holds %s at index %d, which is not a task id", json.encode(id), i - 1)
    end
  end
  return list
end

---Gcore-style tasks: every id polled (concurrently) to FINISHED; ERROR raises with its reason.
---@async
function kinds.tasks(c, x, origin, o, deadline)
  local a = c.def.async
  local field = a["tasks.list"]
  local ids, why
  if type(x) == "string" then
    ids = { x }
  elseif origin then
    -- a method's response: the schema's {tasks: [ids]}
    ids, why = task_ids(type(x) == "table" and x[field], true)
    if not ids then
      local v = type(x) == "table" and x[field]
      bad_handle(c, origin, string.format("has '%s' %s (%s)", field,
        v == nil and "missing" or json.encode(v), why))
    end
  elseif type(x) == "table" and (x[field] ~= nil or type(x[1]) == "string") then
    -- hand-made: {tasks = {ids}} or the list itself
    ids, why = task_ids(x[field] ~= nil and x[field] or x)
    if not ids then error("conn:wait: the list of task ids " .. why, 3) end
  else
    error("conn:wait: expected {" .. field .. " = {ids}}, a list of task ids or one id", 3)
  end
  local state_field = a["tasks.state"]
  local pending, success = set_of(a["tasks.pending"]), set_of(a["tasks.success"])
  local failure = set_of(a["tasks.failure"])
  local known = table.concat({ a["tasks.pending"], a["tasks.success"], a["tasks.failure"] }, ",")
  ---@async
  local function one(id)
    return poll(c, "task " .. id, o, deadline,
    ---@async
    function()
      local t = c.call(a["tasks.get"], id)
      local state = type(t) == "table" and t[state_field] or nil
      if success[state] then return true, t end
      if failure[state] then
        fail(c, "wait", { code = "task_" .. tostring(state):lower(), detail = t,
          message = string.format("task %s (%s) ended %s: %s", id, tostring(t.task_type or "?"), tostring(state),
            tostring(t[a["tasks.reason"]] or "no reason given")) })
      end
      if not pending[state] then unknown_state(c, "task " .. id, state, known, t) end
      return false, state
    end)
  end
  local done = {}
  if #ids == 1 then
    done[1] = one(ids[1])
  elseif #ids > 1 then
    local fns = {}
    for i, id in ipairs(ids) do
      ---@async
      fns[i] = function() return one(id) end
    end
    done = task.all(fns)
  end
  if type(x) == "table" and x.recovered then return done, x.item end
  if origin and origin.ep.match_read then
    -- the tasks name what they created: find it by id, not by comparing fields
    local created_ids, any = {}, false
    for _, t in ipairs(done) do
      local created = type(t[a["tasks.result"]]) == "table" and t[a["tasks.result"]] or {}
      for _, list in pairs(created) do
        if type(list) == "table" then
          for _, id in ipairs(list) do created_ids[tostring(id)], any = true, true end
        end
      end
    end
    return done, c.find_created(origin, any and created_ids or nil)
  end
  return done
end

-- The argument of the re-read: "1" = the call's first argument, "@a.b" = a response field.
local function poll_arg(ep, origin, x)
  local spec = ep.poll_arg or "1"
  local path = spec:match("^@(.+)$")
  if path then return errors.dig(x, path) end
  return origin.args[tonumber(spec)]
end

local function need_origin(origin, kind)
  if not origin then
    error("conn:wait: pass the value a method returned: " .. kind .. " waits re-read the resource it came from", 4)
  end
end

---Genesis-style status on the resource itself.
---@async
function kinds.status(c, x, origin, o, deadline)
  need_origin(origin, "status")
  local a, ep = c.def.async, origin.ep
  local success, failure = set_of(a["status.success"]), set_of(a["status.failure"])
  local arg = poll_arg(ep, origin, x)
  return poll(c, ep.poll .. " " .. tostring(arg), o, deadline,
  ---@async
  function()
    local v = c.call(ep.poll, arg)
    local state = errors.dig(v, a["status.state"])
    if success[state] then return true, v end
    if failure[state] then
      fail(c, "wait", { code = tostring(state), detail = v,
        message = string.format("%s %s ended in state %s", ep.poll, tostring(arg), tostring(state)) })
    end
    return false, state -- unknown statuses count as in progress (legacy "enqueued", ...)
  end)
end

---After a delete: done when the re-read answers 404.
---@async
function kinds.gone(c, x, origin, o, deadline)
  need_origin(origin, "gone")
  local a, ep = c.def.async, origin.ep
  local failure = set_of(a["status.failure"])
  local arg = poll_arg(ep, origin, x)
  return poll(c, "deletion of " .. tostring(arg), o, deadline, function()
    local ok, v = pcall(c.call, ep.poll, arg)
    if not ok then
      if errors.is(v) and v.status == 404 then return true, true end
      error(v, 0)
    end
    local state = errors.dig(v, a["status.state"])
    if failure[state] then
      fail(c, "wait", { code = tostring(state), detail = v,
        message = string.format("deleting %s ended in state %s", tostring(arg), tostring(state)) })
    end
    return false, state
  end)
end

---Barrack-style delayed activation: the new item (or every item) of a re-read list.
---@async
function kinds.activation(c, x, origin, o, deadline)
  need_origin(origin, "activation")
  local a, ep = c.def.async, origin.ep
  local field = a["activation.state"]
  local success, failure = set_of(a["activation.success"]), set_of(a["activation.failure"])
  local arg = poll_arg(ep, origin, x)
  local want = ep.poll_id and errors.dig(x, ep.poll_id)
  if ep.poll_id and want == nil then
    error("conn:wait: the response has no " .. ep.poll_id .. " to wait for", 3)
  end
  return poll(c, ep.name .. " on " .. tostring(arg), o, deadline,
  ---@async
  function()
    local v = c.call(ep.poll, arg)
    local items = errors.dig(v, ep.poll_items)
    if type(items) ~= "table" then
      fail(c, "wait", { code = "bad_response", message = ep.poll .. " has no " .. ep.poll_items })
    end
    local pending, found
    for _, item in ipairs(items) do
      if want == nil or tostring(item.id) == tostring(want) then
        found = item
        local state = item[field]
        if failure[state] then
          fail(c, "wait", { code = tostring(state), detail = item,
            message = string.format("%s %s: item %s ended in state %s", ep.name, tostring(arg),
              tostring(item.id), tostring(state)) })
        end
        if not success[state] then pending = state end
      end
    end
    if want ~= nil and not found then
      fail(c, "wait", { code = "not_found", status = 404,
        message = string.format("%s %s: item %s is gone", ep.name, tostring(arg), tostring(want)) })
    end
    if pending then return false, pending end
    return true, v, found
  end)
end

---Polls step() with conn:wait's backoff, deadline and tolerance of transient read errors, for an
---adapter whose wait is not one call's async work (Barrack: every rule one apply added, one
---re-read per poll). step() returns true, result when done, or false, state. At the deadline it
---raises a retryable "timeout" error of `provider` naming `what`, the last state and `hint`.
---@async
---@param provider string
---@param what string
---@param opts table|nil {timeout, interval, max_interval, factor, max_errors}
---@param hint string what the caller can do after a timeout
---@param step fun(): boolean, any
---@return any result
function M.poll(provider, what, opts, hint, step)
  local o = options(opts)
  -- no connection here, so no secrets to scrub: the adapter's step only ever holds re-read state
  local c = { def = { name = provider }, new_error = function(fields) return errors.new(fields) end }
  return (task.guarded("wait", provider .. " " .. what, poll, c, what, o, task.now() + o.timeout, step, hint))
end

---Waits for x: a value an async method returned (or, for operations and tasks, an id).
---Returns the final state (operation, list of tasks, re-read resource) and, for creates, the
---created item when it can be found. A value from a synchronous method is returned as is.
---@async
---@param c table connection internals (sg.connect)
---@param x any
---@param opts table|nil {timeout, interval, max_interval, factor, max_errors}
function M.wait(c, x, opts)
  local o = options(opts)
  local origin = type(x) == "table" and c.origin(x) or nil
  local kind = origin and origin.ep.async
  if origin and not kind then return x end -- synchronous: nothing to wait for
  if not kind then
    -- bare ids or hand-made values: only the kinds that carry their own id can be inferred
    local a = c.def.async
    if a["operation.get"] then kind = "operation" elseif a["tasks.get"] then kind = "tasks" end
  end
  if not kind then
    error("conn:wait: cannot tell what to wait for; pass the value an async " .. c.def.name .. " method returned", 2)
  end
  -- a roll-out shows "waiting for the provider's task" and counts the wait as in flight
  return task.guarded("wait", c.def.name .. " " .. kind, kinds[kind], c, x, origin, o, task.now() + o.timeout)
end

return M
