-- sg.connect.request: one call of an endpoint on the wire: its path, query and JSON body built
-- from the method's arguments, each attempt signed and sent through the retry policy, what comes
-- back scrubbed of secrets and decoded. A create whose reply was lost is not re-sent blindly
-- (sg.connect.reconcile). `p` is a connection's private record (sg.connect).
local json = require "sg.json"
local errors = require "sg.errors"
local retry = require "sg.retry"
local trace = require "sg.trace"
local task = require "sg.task"
local async = require "sg.connect.async"
local reconcile = require "sg.connect.reconcile"

local M = {}

local function urlencode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

---Encodes a query table; list values repeat the name. Keys sorted for stable URLs.
function M.encode_query(q)
  local keys = {}
  for k in pairs(q) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = q[k]
    if type(v) == "table" then
      for _, item in ipairs(v) do parts[#parts + 1] = urlencode(k) .. "=" .. urlencode(item) end
    elseif type(v) == "boolean" then
      parts[#parts + 1] = urlencode(k) .. "=" .. (v and "true" or "false")
    elseif v ~= nil then
      parts[#parts + 1] = urlencode(k) .. "=" .. urlencode(v)
    end
  end
  return table.concat(parts, "&")
end

---Fills {params} of the path template: scope values from the connection, the others from
---positional arguments in order. Returns the path and how many arguments it used. (Error level
---5: this callback, gsub, fill_path, invoke, then the caller of the method.)
---@param p table
---@param ep table the endpoint called
---@param args table the call's arguments
---@return string path, integer used
function M.fill_path(p, ep, args)
  local used = 0
  local path = ep.path:gsub("{([%w_]+)}", function(name)
    if p.scope[name] ~= nil then return urlencode(p.scope[name]) end
    used = used + 1
    local v = args[used]
    -- ids decoded from JSON arrive as floats (1.0): integral ones are fine
    if type(v) == "number" then v = math.tointeger(v) or v end
    if type(v) ~= "string" and math.type(v) ~= "integer" then
      error(string.format("%s:%s: argument %d (%s) must be a string or an integer, got %s",
        p.def.name, ep.name, used, name, v == nil and "nothing" or type(v)), 5)
    end
    if v == "" then
      error(string.format("%s:%s: argument %d (%s) must not be empty", p.def.name, ep.name, used, name), 5)
    end
    return urlencode(v)
  end)
  return path, used
end

---The arguments a method takes: the path's placeholders the connection does not fill in from its
---scope, then the body, then the optional query.
---@param def table the provider's description (sg.connect.describe)
---@param ep table the endpoint
---@return string[]
function M.params_of(def, ep)
  local scope, params = {}, {}
  for _, s in ipairs(def.scope) do scope[s] = true end
  for p in ep.path:gmatch("{([%w_]+)}") do
    if not scope[p] then params[#params + 1] = p end
  end
  if ep.body then params[#params + 1] = "body" end
  params[#params + 1] = "query"
  return params
end

---A bare value for an endpoint with body_key becomes {key = value} (dots nest).
---@param ep table the endpoint called
---@param body any
---@return any
function M.wrap_body(ep, body)
  -- an empty table counts as a (empty) list: "detach from every instance", not "no fields"
  if ep.body_key and (type(body) ~= "table" or next(body) == nil or body[1] ~= nil or json.is_array(body)) then
    local out = {}
    local t = out
    local keys = {}
    for k in ep.body_key:gmatch("[^.]+") do keys[#keys + 1] = k end
    for i = 1, #keys - 1 do
      t[keys[i]] = {}
      t = t[keys[i]]
    end
    t[keys[#keys]] = type(body) == "table" and json.array(body) or body
    return out
  end
  return body
end

local function transport_error(p, ep, err, code, attempts)
  local hint = ({
    timeout = "the server did not answer in time; retry later or raise {timeout = ...}",
    connect = "could not connect; check the base URL and the network",
    resolve = "could not resolve the host; check the base URL",
    tls = "TLS failed; check the system CA certificates, or name the server's CA with " ..
      "sg.connect(..., {ca_file = ...}), 'ca_file = ...' in the profile or the environment variable " ..
      "SGRUN_CA_FILE (`sgrun sim --tls` writes it to its --env-file)",
    dry_run = "--dry-run: only reads are sent",
    too_large = "raise the limit with sg.connect(..., {max_size = bytes}) if this is expected",
  })[code or ""]
  return errors.new({ provider = p.def.name, op = ep.name, code = code or "transport",
    message = tostring(err) .. (attempts and attempts > 1 and (" (after " .. attempts .. " attempts)") or "")
        .. (hint and ("; " .. hint) or ""),
    retryable = code == "timeout" or code == "connect" or code == "closed" }, p.secrets)
end

-- cjson writes "/" as "\/"; the vendors' examples (and signatures over them) use "/". Only a
-- backslash that escapes "/" is dropped: escape pairs are consumed left to right.
local function encode_json(v)
  return (json.encode(v):gsub("\\(.)", function(c) return c == "/" and "/" or "\\" .. c end))
end

-- Auth-header values shorter than this are not secrets (an expiry time, a list of signed query
-- parameters): scrubbing them would hit ordinary numbers and words in what the server says.
local MIN_AUTH_SECRET = 16

-- The secret parts of the headers the auth hook set (RFC 7235's `scheme token68` or
-- `scheme name=value, ...`, or a bare value such as X-API-Key's): the token, or each parameter's
-- value. They are secrets beyond the credentials: Exoscale's signature lets whoever reads it
-- replay the request until it expires. The scheme is left out, as a public word ("Bearer",
-- "EXO2-HMAC-SHA256") whose every mention would be scrubbed; so is anything p.secrets holds.
local function auth_secrets(before, headers, secrets)
  local out, known = {}, {}
  for _, s in ipairs(secrets) do known[s] = true end
  local function add(v)
    v = v:match("^%s*(.-)%s*$")
    if #v >= MIN_AUTH_SECRET and not known[v] then
      known[v] = true
      out[#out + 1] = v
    end
  end
  for name, value in pairs(headers) do
    if type(value) == "string" and before[name] ~= value then
      local rest = value:match("^[%w!#$%%&'*+.^_`|~-]+ +(.+)$") or value
      if rest:match("^[%w%-%._~+/]+=*$") then
        add(rest)
      else
        for item in rest:gmatch("[^,]+") do add(item:match("^%s*[%w!#$%%&'*+.^_`|~-]+=%s*\"?(.-)\"?%s*$") or item) end
      end
    end
  end
  return out
end

-- A copy of list with more appended.
local function joined(list, more)
  if #more == 0 then return list end
  local out = table.move(list, 1, #list, 1, {})
  return table.move(more, 1, #more, #out + 1, out)
end

-- One HTTP exchange, signed for this attempt, traced when SGRUN_DEBUG=http. A server may echo the
-- auth header (in a body or a header): what comes back is scrubbed of its secret parts here, as
-- only this attempt knows them, before any error, caller or trace can see it.
---@async
local function send_once(p, ep, url, body_text, attempt)
  local headers = { Accept = "application/json", ["User-Agent"] = "sgrun" }
  if body_text then headers["Content-Type"] = "application/json" end
  local req = { method = ep.method, url = url, headers = headers, body = body_text,
    timeout = retry.call_timeout(p.timeout), max_size = p.max_size, ca_file = p.ca_file, ca_path = p.ca_path,
    resolve = p.resolve, max_connections = p.max_connections }
  local before = {}
  for k, v in pairs(headers) do before[k] = v end
  if p.def.auth then p.def.auth(req, p.creds) end
  local extra = auth_secrets(before, headers, p.secrets)
  local resp, err, code = p.transport(req)
  if type(resp) == "table" and #extra > 0 then
    resp.body = errors.scrub(resp.body, extra)
    if type(resp.headers) == "table" then
      for k, v in pairs(resp.headers) do resp.headers[k] = errors.scrub(v, extra) end
    end
  end
  if err ~= nil then err = errors.scrub(tostring(err), extra) end
  trace.log(p.def.name, ep.name, req, resp, err,
    { redact = p.def.redact, secrets = joined(p.secrets, extra), attempt = attempt })
  return resp, err, code
end

local function decode_body(p, ep, resp)
  if resp.body == nil or resp.body == "" or resp.status == 204 then return {} end
  -- a server may echo a credential in any field it returns (a rule's description): what sgrun
  -- reads is scrubbed before anything can print it, as error messages are
  local v, err = json.decode(errors.scrub(resp.body, p.secrets))
  if v == nil then
    error(errors.new({ provider = p.def.name, op = ep.name, status = resp.status, code = "bad_response",
      message = "the response is not JSON (" .. tostring(err) .. "); is the base URL right?" }, p.secrets), 0)
  end
  -- a \u escape spells a character the text above does not show ("\u0047CORE...")
  if resp.body:find("\\u", 1, true) then v = errors.scrub_value(v, p.secrets) end
  return v
end

---Sends one request through the retry policy and returns the decoded body (or raises).
---@async
---@param conn sg.Connection
---@param p table
---@param ep table the endpoint called
---@param url string
---@param body table|nil the request body
---@param path_args integer how many of args the path took
---@param args table the call's arguments
---@return table
function M.send(conn, p, ep, url, body, path_args, args)
  local body_text = body ~= nil and encode_json(body) or nil
  ---@async
  local function send(attempt)
    return send_once(p, ep, url, body_text, attempt)
  end
  local outcome = retry.run(p.policy, send, {
    idempotent = not ep.create,
    key = p.limit_key,
    ---@async
    reconcile = ep.match_read and function()
      local item = reconcile.reconcile_create(conn, p, ep, args, body, path_args)
      return item ~= nil, item
    end or nil,
  })
  if outcome.recovered then return reconcile.recovered_response(ep, outcome.value) end
  -- The lost first attempt landed after all, but its async work had not surfaced yet when we
  -- re-read: look again for a while.
  ---@async
  local function look_again()
    local deadline, pause = task.now() + p.policy.cap * 2, 0.1
    while task.now() < deadline do
      local ok, item = pcall(reconcile.find_created, p, ep, args, body, path_args)
      if ok and item ~= nil then return reconcile.recovered_response(ep, item) end
      task.sleep(pause)
      pause = math.min(pause * 1.5, 2)
    end
  end
  local resp = outcome.resp
  if resp and resp.status >= 200 and resp.status < 300 then
    local value = decode_body(p, ep, resp)
    -- An operation API accepts a duplicate create and fails its operation instead: a re-sent
    -- create is only known to be a duplicate once its operation ends. Likewise a delete re-sent
    -- while the first attempt's operation was still running: the thing was still there, so the
    -- second is accepted, and its operation fails once the first has deleted it.
    if outcome.maybe_delivered and ep.async == "operation" and (ep.match_read or ep.method == "DELETE") then
      local a = p.def.async
      local ok, err = pcall(conn.wait, conn, value)
      local reason = not ok and type(err) == "table" and err.code
      if reason and ep.match_read and reason == a["operation.duplicate"] then
        local found = look_again()
        if found then return found end
      elseif reason and ep.method == "DELETE" and reason == a["operation.gone"] then
        return async.done_response(ep, { already_deleted = true })
      end
    end
    return value
  end
  if outcome.unsafe then
    -- keep what the server said, and say why there was no retry
    local e = resp and errors.from_response(p.def, ep.name, resp, p.secrets)
        or transport_error(p, ep, outcome.err, outcome.code, outcome.attempts)
    e.message = e.message .. "; this call is not idempotent and may have been applied, so it was not " ..
        "re-sent: read the current state before trying again"
    e.maybe_applied, e.retryable = true, false
    error(e, 0)
  end
  if not resp then error(transport_error(p, ep, outcome.err, outcome.code, outcome.attempts), 0) end
  -- a delete re-sent after an attempt that may have landed finds nothing to delete: that attempt
  -- deleted it (the vendors' advice: a 404 on delete is success)
  if outcome.maybe_delivered and ep.method == "DELETE" and resp.status == 404 then
    return async.done_response(ep, { already_deleted = true })
  end
  local e = errors.from_response(p.def, ep.name, resp, p.secrets)
  if outcome.attempts and outcome.attempts > 1 then
    e.message = string.format("%s (after %d attempts%s)", e.message, outcome.attempts, resp.status == 429 and
      ": the provider kept refusing for too many requests; try again later, or send fewer at once" or "")
  end
  if (resp.status == 401 or resp.status == 403) and #p.credential_sources > 0 then
    e.message = string.format("%s; the provider did not accept the credentials for this call: check %s " ..
      "(a key of another account, revoked, mistyped, or without this permission)", e.message,
      table.concat(p.credential_sources, " and "))
  end
  -- a re-sent create refused as a duplicate
  if outcome.maybe_delivered and ep.match_read and resp.status >= 400 and resp.status < 500 then
    local found = look_again()
    if found then return found end
  end
  error(e, 0)
end

return M
