-- sg.connect: connection objects for every provider, built from the provider's description in
-- its C binding (bindings/<provider>.c: endpoint table, credentials, auth hook, error fields,
-- paging, async kinds). One method per endpoint; nothing here knows a provider by name.
--
--   local gc = sg.connect("gcore", { project_id = 1, region_id = 76 })
--   local r = gc:create_security_group_rule(group_id, { direction = "ingress", ... })
--   gc:wait(r)
--
-- Credentials: opts, then the vendor's environment variables (the whitespace around a value
-- trimmed; a control character left inside any credential is refused), then the profile file
-- (SGRUN_PROFILES or ~/.config/sgrun/profiles; [profile.provider] sections of key = value;
-- refused when group/other can read it or it is not the user's or root's). A profile chosen
-- (opts.profile, --profile) replaces the environment: opts, then that profile only. Base URL: opts.base_url, SGRUN_<PROVIDER>_URL, the
-- documented default. Credentials are kept outside the connection table, so printing a
-- connection (the REPL does) shows none of them.
--
-- This module is the entry point and makes the connection objects; the rest lives in
-- sg/connect/: profiles (the profile file), credentials, transport (base URL, TLS settings),
-- options (the connect options), request (one call on the wire, with its retries), reconcile (a
-- create whose reply was lost), paging, async (async work, conn:settle) and stubs (LuaLS stubs).
-- They are given a connection's private record as an argument and never require this module.
local http = require "_sg.http"
local provider_names = require "_sg.providers"
local fs = require "_sg.fs"
local profiles = require "sg.connect.profiles"
local credentials = require "sg.connect.credentials"
local transport = require "sg.connect.transport"
local async = require "sg.connect.async"
local reconcile = require "sg.connect.reconcile"
local request = require "sg.connect.request"
local paging = require "sg.connect.paging"
local options = require "sg.connect.options"
local errors = require "sg.errors"
local retry = require "sg.retry"
local wait = require "sg.wait"
local task = require "sg.task"

local M = {}

---@class sg.Connection
---@field provider string
---@field base_url string

-- Per connection, out of sight: {def, creds, secrets, scope, policy, timeout, transport, call}.
local private = setmetatable({}, { __mode = "k" })
-- What produced a response, for conn:wait: {ep, args, body}.
local origin = setmetatable({}, { __mode = "k" })

local DEFAULT_TIMEOUT = 30 -- seconds per HTTP attempt

-- The endpoint of a connection's provider, by method name.
local function p_endpoint(conn, name)
  local ep = private[conn].def.endpoint[name]
  if not ep then error("no endpoint " .. tostring(name), 2) end
  return ep
end

---The sections of the profile file (see sg.connect.profiles).
M.read_profiles = profiles.read_profiles
---One [profile.provider] section of the profile file (see sg.connect.profiles).
M.read_profile = profiles.read_profile
---Reads a credential from the environment as sg.connect does (see sg.connect.credentials).
M.env_credential = credentials.env_credential

---------------------------------------------------------------------------------------------
-- Calls.

---Calls an endpoint: path arguments, then the body (when it takes one), then a query table.
---@async
local function invoke(conn, ep, ...)
  local p = private[conn]
  if not p then error("call a connection method with ':' (conn:" .. ep.name .. "(...))", 2) end
  local n = select("#", ...)
  local args = { ... }
  local path, used = request.fill_path(p, ep, args)
  local i = used + 1
  local body
  if ep.body then
    body = args[i]
    if body == nil then
      error(string.format("%s:%s: argument %d must be the request body (a table%s)", p.def.name, ep.name,
        i, ep.body_key and (" or the " .. ep.body_key .. " value") or ""), 2)
    end
    body = request.wrap_body(ep, body)
    if type(body) ~= "table" then
      error(string.format("%s:%s: the request body must be a table, got %s", p.def.name, ep.name,
        type(body)), 2)
    end
    i = i + 1
  end
  local query = args[i]
  if query ~= nil and type(query) ~= "table" then
    error(string.format("%s:%s: argument %d must be a query table, got %s", p.def.name, ep.name, i,
      type(query)), 2)
  end
  if n > i then
    error(string.format("%s:%s: too many arguments (%d); expected %d path argument(s)%s%s", p.def.name,
      ep.name, n, used, ep.body and ", a body" or "", ", an optional query table"), 2)
  end
  local url = p.base_url .. path
  local result
  if paging.automatic(p, ep, query) then
    result = paging.all_pages(conn, p, ep, url, query, used, args)
  else
    if query and next(query) then
      url = url .. (url:find("?", 1, true) and "&" or "?") .. request.encode_query(query)
    end
    if ep.method == "GET" then
      result = request.send(conn, p, ep, url, body, used, args)
    else
      -- a write: an interrupted roll-out refuses to start new ones (sg.task.guarded)
      result = task.guarded("write", p.def.name .. ":" .. ep.name, request.send, conn, p, ep, url, body, used, args)
    end
  end
  if type(result) == "table" then
    origin[result] = { ep = ep, args = args, body = body, nargs = used }
    -- async work this connection started goes on at the provider whether or not anyone waits for
    -- it: conn:settle waits for what is still outstanding (a roll-out cut short by its deadline)
    if ep.async and ep.method ~= "GET" then
      p.outstanding[result] = true
      local handle = async.handle(ep, args, used, result)
      if handle then task.started(handle) end
    end
  end
  return result
end

---------------------------------------------------------------------------------------------
-- Connection objects.

local classes = {}

-- help(conn.method) in the REPL: the method's signature, HTTP method and path, and its doc.
local method_help = setmetatable({}, { __mode = "k" })

---What help() shows for a connection method, or nil when fn is not one.
---@param fn function
---@return string?
function M.method_help(fn)
  return method_help[fn]
end

local function class_for(def)
  if classes[def.name] then return classes[def.name] end
  local methods = {}
  for _, ep in ipairs(def.endpoints) do
    local fn = function(self, ...) return invoke(self, ep, ...) end
    methods[ep.name] = fn
    local params = request.params_of(def, ep)
    params[#params] = "[query]"
    method_help[fn] = string.format("conn:%s(%s)\n  %s %s%s\n  %s", ep.name, table.concat(params, ", "),
      ep.method, ep.path, ep.async and (" (async: " .. ep.async .. ", see conn:wait)") or "", ep.doc or "")
  end
  ---Waits for the async work a method started (see sg.wait). Returns the final state.
  ---@async
  function methods.wait(self, x, opts)
    local r = table.pack(wait.wait(M.internals(self), x, opts))
    if type(x) == "table" then private[self].outstanding[x] = nil end
    return table.unpack(r, 1, r.n)
  end
  ---Waits until no async work is still running at the provider: what this connection started
  ---and nobody waited to the end, and what the provider lists as running in the account (Gcore's
  ---active tasks). A recovery, and a roll-out whose deadline cut its waits short, call it before
  ---reading a group back: work still running would land after that read.
  ---@async
  ---@param opts table|nil as conn:wait's
  function methods.settle(self, opts)
    return async.settle(self, private[self], M.internals, opts)
  end
  ---Takes on async work that another run of this account started (its handle, journaled by
  ---sg.rollout from sg.task's guard): conn:settle then waits for it to end as for this
  ---connection's own. It is only waited for, never matched to what it created.
  ---@param handle {endpoint: string, args: (string|number)[], value: table}
  function methods.follow(self, handle)
    local p = private[self]
    local ep = type(handle) == "table" and type(handle.endpoint) == "string" and p.def.endpoint[handle.endpoint]
    if not ep or not ep.async or type(handle.args) ~= "table" or type(handle.value) ~= "table" then
      error(string.format("conn:follow: not the handle of %s async work: {endpoint =, args =, value =}",
        p.def.name), 2)
    end
    local waited = setmetatable({ match_read = false }, { __index = ep })
    origin[handle.value] = { ep = waited, args = handle.args, nargs = #handle.args }
    p.outstanding[handle.value] = true
  end
  ---Every group in the connection's scope, provider-neutral (see sg.Group).
  ---@async
  function methods.groups(self)
    return require("sg.groups").get(self.provider).list_groups(self)
  end
  ---One group by reference (name or id; Barrack {instance = id}; HostUp {vm = N}), or nil and why.
  ---@async
  function methods.group(self, ref)
    return require("sg.groups").get(self.provider).get_group(self, ref)
  end
  local cls = { __index = methods, __name = "sg.Connection" }
  cls.__tostring = function(self) return string.format("sg.connect(%q) -> %s", self.provider, self.base_url) end
  -- help(conn) in the REPL: every method with its one-line description
  cls.__help = function(self)
    local lines = { tostring(self) .. ": methods" }
    for _, ep in ipairs(def.endpoints) do
      lines[#lines + 1] = string.format("  %-44s %s", ep.name, ep.doc or "")
    end
    lines[#lines + 1] = string.format("  %-44s %s", "wait", "wait for the async work a method started")
    lines[#lines + 1] = string.format("  %-44s %s", "groups", "every group in scope, provider-neutral")
    local form = require("sg.groups").get(self.provider).ref_form
    local shown = form and string.format(form.type == "string" and "{%s = %q}" or "{%s = %s}", form.key, form.example)
    lines[#lines + 1] = string.format("  %-44s %s", "group", form and form.only and "one group: " .. shown or
      "one group by name or id" .. (form and " or " .. shown or ""))
    lines[#lines + 1] = "help(conn.METHOD) shows a method's arguments, HTTP method and path."
    return table.concat(lines, "\n")
  end
  classes[def.name] = cls
  return cls
end

---Raises, naming `where`, unless conn is a connection sg.connect made: a nil or a provider name
---passed instead would otherwise fail deep inside with "attempt to index a nil value".
---@param where string the function, as the caller knows it ("sg.plan")
---@param conn any
---@param level integer the error level, as error() takes it, seen from the caller of check_connection
function M.check_connection(where, conn, level)
  if private[conn] then return end
  local what = type(conn) == "string" and string.format("the string %q", conn) or type(conn)
  error(string.format("%s: expected a connection (sg.connect(provider, ...)) as the first argument, got %s",
    where, what), level + 1)
end

---Hooks for sg.wait: everything it needs from a connection, without exposing credentials.
---@param conn sg.Connection
function M.internals(conn)
  local p = private[conn]
  if not p then error("not a connection", 2) end
  -- no `secrets` here: a playbook can call this; it gets what scrubbing needs, not the values
  return {
    def = p.def,
    -- which account this is (provider and a digest of the credentials and scope): a key for
    -- per-account state such as roll-out locks, journals and plans, never a secret
    account_key = p.account_key,
    new_error = function(fields) return errors.new(fields, p.secrets) end,
    scrub = function(s) return errors.scrub(s, p.secrets) end,
    origin = function(x) return origin[x] end,
    call = function(name, ...) return invoke(conn, p_endpoint(conn, name), ...) end,
    ---@async
    find_created = function(o, ids) return reconcile.find_created(p, o.ep, o.args, o.body, o.nargs, ids) end,
  }
end

---The accounts configured on this machine, names only: "gcore (environment)",
---"exoscale (profile default)". Secrets are never read into the result.
---@return string[]
function M.accounts()
  local found = {}
  for _, name in ipairs(provider_names) do
    local def = M.describe(name)
    local complete = true
    for _, c in ipairs(def.credentials) do
      if c.required and not credentials.env_value(c.env) then complete = false end
    end
    if complete then found[#found + 1] = name .. " (environment)" end
  end
  local path = profiles.path()
  local text = path and fs.read_private(path)
  for line in (text or ""):gmatch("[^\n]+") do
    local profile, provider = line:match("^%s*%[%s*([^%]]-)%.([%w_]+)%s*%]")
    if profile then found[#found + 1] = string.format("%s (profile %s)", provider, profile) end
  end
  return found
end

---The provider names sg.connect knows.
---@return string[]
function M.providers()
  local out = {}
  for i, name in ipairs(provider_names) do out[i] = name end
  return out
end

---The provider's description (endpoint table, credentials, ...) as its binding gives it.
---@param provider string
---@return table
function M.describe(provider)
  local known = false
  for _, name in ipairs(provider_names) do known = known or name == provider end
  if not known then
    error(string.format("sg.connect: unknown provider %q (known: %s)", tostring(provider),
      table.concat(provider_names, ", ")), 0)
  end
  return require("_sg." .. provider)
end

---Opens a connection: credentials and base URL are resolved now; nothing is sent.
---opts: credentials by name, profile (the [profile.provider] section gives every credential the
---options do not: the environment is then not read), profiles (the sections read_profiles() returned, used
---instead of reading the profile file: a fleet reads it once for all its accounts), base_url,
---zone (Exoscale), timeout (s per attempt), max_size (bytes), page_size (auto-paging lists; at
---most the provider's documented maximum, refused above it;
---default the provider's maximum), ca_file / ca_path (the CA bundle or directory TLS verifies
---against; also from the profile, else $SGRUN_CA_FILE),
---allow_insecure_http (plain http:// to a host other than loopback; also from the profile),
---resolve ({"HOST:PORT:ADDRESS"} as curl --resolve; tests), max_connections (at most this many
---connections per host: HTTP/1.1 keep-alive connections are reused up to it; HTTP/2 multiplexes;
---libcurl keeps one such limit per process, so the last value set applies to every host),
---retry (sg.retry policy fields), transport (function(req) replacing
---sg.http.request: tests record the wire with it).
---@param provider string
---@param opts table|nil
---@return sg.Connection
function M.connect(provider, opts)
  if type(provider) ~= "string" then
    error("sg.connect: provider must be a string (" .. table.concat(provider_names, ", ") .. ")", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then error("sg.connect: opts must be a table", 2) end
  opts = opts or {}
  if opts.profiles ~= nil and type(opts.profiles) ~= "table" then
    error("sg.connect: profiles must be the sections sg.connect.read_profiles() returned", 2)
  end
  local def = M.describe(provider)
  require("sg.optcheck").check("sg.connect('" .. def.name .. "')", opts, options.names(def), 2)
  local creds, secrets, sources = credentials.resolve(def, opts)
  local scope = {}
  for _, name in ipairs(def.scope) do scope[name] = creds[name] or opts[name] end
  -- region is not a credential but the neutral layer needs it where a provider's paths do not
  -- carry one (Genesis Cloud creates groups in a region)
  options.check_values(def, opts, "sg.connect: ", 3) -- allow_insecure_http among them: before the URL is judged
  local cache = {}
  local conn = setmetatable({ provider = def.name, base_url = transport.base_url(def, opts, cache), region = opts.region },
    class_for(def))
  private[conn] = {
    def = def, creds = creds, secrets = secrets, scope = scope, base_url = conn.base_url,
    credential_sources = sources, -- where each secret came from (names, never values), for a 401/403
    policy = retry.policy(opts.retry), timeout = opts.timeout or DEFAULT_TIMEOUT,
    max_size = opts.max_size, transport = opts.transport or http.request,
    page_size = opts.page_size,
    ca_file = transport.setting(def, opts, "ca_file", cache),
    ca_path = transport.setting(def, opts, "ca_path", cache),
    resolve = opts.resolve, max_connections = opts.max_connections,
    outstanding = {}, -- async responses of writes not yet waited to the end (settle)
    -- the rate limiter's key: one per provider endpoint and account (a digest: no secret kept in it)
    limit_key = def.name .. " " .. conn.base_url .. " " .. credentials.digest(creds),
    -- which account this is: its credentials and scope, not the endpoint's spelling (localhost or
    -- 127.0.0.1, or the Exoscale zone that serves the organisation's groups), so that roll-outs'
    -- target locks, journals and plans meet whichever way the account is reached
    account_key = def.name .. " " .. credentials.digest(creds),
    -- one of its endpoints called by name: the re-reads of sg.connect.reconcile and sg.connect.async
    call = function(name, ...) return invoke(conn, p_endpoint(conn, name), ...) end,
  }
  return conn
end

---Checks connect options written in a file (a fleet inventory's `connect = {...}`) before anything
---connects: the names and values sg.connect would refuse. Raises a message without a position,
---naming each option as `name`.option ("connect.timeout must be ..."); credentials are not checked.
---@param provider string
---@param opts table
---@param name string how the file names the options table ("connect")
function M.check_options(provider, opts, name)
  return options.check_file(M.describe(provider), opts, name)
end

---The LuaLS annotation stubs (stdlib/meta/sg_providers.lua), generated from the endpoint tables:
---  sgrun -e 'io.write(require("sg.connect").stubs())' > stdlib/meta/sg_providers.lua
---@return string
function M.stubs()
  return require("sg.connect.stubs").generate(M.providers(), M.describe)
end

return M
