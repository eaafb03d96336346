-- sg.fleet: one action (drift, audit, rollout) over many accounts on many clouds, with one report.
--
-- An inventory is a Lua file returning a list of accounts (or {accounts = list}):
--
--   return {
--     { name = "shop-exoscale", provider = "exoscale", profile = "shop",
--       groups = { { group = "web", source = "shop-gcore:web" } } },
--     { name = "shop-gcore", provider = "gcore", profile = "shop",
--       connect = { region_id = 76 }, env = { api_key = "SHOP_GCORE_KEY" },
--       groups = { { group = "web", source = "web.snapshot.json" } } },
--   }
--
-- Credentials are never written in it: `profile` names the section prefix of the profile file
-- ([shop.gcore]), `env` maps a credential to the environment variable holding it, and `connect`
-- carries the other connect options (a credential there is refused). A group is a name, an id,
-- "vm=N"/"instance=ID" or a table ({vm = 10000}); its source is a snapshot file (relative paths
-- start at the inventory's directory) or "ACCOUNT:GROUP", where ACCOUNT is the name of another
-- account of the inventory, or a provider name for the account the environment or the default
-- profile gives. The file is checked when loaded (errors name the entry); connections are made
-- when an account is first used, so one account's bad profile fails that account only.
--
-- Concurrency: at most `concurrency` accounts are worked on at once (default: per_provider times
-- the number of providers, taken from each provider in turn), and at most `per_provider` requests
-- are in flight to one provider. A 429 pauses that provider's requests for its
-- Retry-After and re-sends (a 429 was not processed), so a rate limit slows only that provider;
-- a request refused MAX_THROTTLED times fails its account.
local cli = require "sg.cli"
local connect = require "sg.connect"
local errors = require "sg.errors"
local json = require "sg.json"
local providers = require "_sg.providers"
local rule = require "sg.rule"
local snapshot = require "sg.snapshot"
local task = require "sg.task"
local fs = require "_sg.fs"

local M = {}

M.DEFAULT_PER_PROVIDER = 20
local MAX_THROTTLED = 30       -- re-sends of one request answered 429 before giving up
local THROTTLE_PAUSE = 1       -- seconds a 429 without Retry-After pauses its provider
local THROTTLE_PAUSE_CAP = 60

local known_provider = {}
for _, p in ipairs(providers) do known_provider[p] = true end

---------------------------------------------------------------------------------------------
-- Loading and checking the inventory.

---@class sg.FleetGroup
---@field ref any the group reference
---@field text string how the group is written in reports
---@field source {kind: "file", path: string}|{kind: "account", account: string?, provider: string, ref: any, text: string}

---@class sg.FleetAccount
---@field name string
---@field provider string
---@field index integer position in the inventory (reports keep this order)
---@field profile string?
---@field connect table?
---@field env table<string, string>?
---@field groups sg.FleetGroup[]

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

-- "vm=10000" -> {vm = 10000}, "web" -> "web", tables and integers as they are.
local function parse_ref(provider, g)
  if type(g) == "string" then
    local _, ref = cli.parse_target(provider .. ":" .. g)
    return ref
  end
  return g
end

local function ref_text(ref)
  if type(ref) == "table" then
    local k, v = next(ref)
    if k ~= nil and next(ref, k) == nil then return k .. "=" .. tostring(v) end
  end
  return snapshot.group_text(ref)
end

local function credential_defs(provider)
  local by_name, secret = {}, {}
  for _, c in ipairs(connect.describe(provider).credentials) do
    by_name[c.name] = c
    if c.secret then secret[c.name] = true end
  end
  return by_name, secret
end

local ENTRY_KEYS = { name = true, provider = true, profile = true, connect = true, env = true, groups = true }

-- Checks one entry; raises with a message that names it.
local function check_entry(path, i, e, base)
  local where = string.format("%s: account %d", path, i)
  local function bad(fmt, ...) error(where .. ": " .. string.format(fmt, ...), 0) end
  if type(e) ~= "table" then bad("expected a table {name =, provider =, groups =}, got a %s", type(e)) end
  if type(e.name) ~= "string" or not e.name:match("^[%w][%w_%.%-]*$") then
    bad("name must be a string of letters, digits, '.', '_' and '-' (got %s)", tostring(e.name))
  end
  where = string.format("%s: account %d (%s)", path, i, e.name)
  for k in pairs(e) do
    if not ENTRY_KEYS[k] then bad("unknown field '%s' (known: name, provider, profile, connect, env, groups)", tostring(k)) end
  end
  if not known_provider[e.provider] then
    bad("provider must be one of %s (got %s)", table.concat(providers, ", "), tostring(e.provider))
  end
  if e.profile ~= nil and (type(e.profile) ~= "string" or e.profile == "") then
    bad("profile must be the name of a profile section prefix, e.g. profile = \"shop\" for [shop.%s]", e.provider)
  end
  local creds, secret = credential_defs(e.provider)
  if e.connect ~= nil then
    if type(e.connect) ~= "table" then bad("connect must be a table of connect options") end
    for k in pairs(e.connect) do
      if secret[k] then
        bad("connect.%s is a credential and must not be written in the inventory: put it under " ..
          "[%s.%s] in the profile file and set profile = \"%s\", or name its environment variable " ..
          "with env = {%s = \"VARIABLE\"}", k, e.profile or e.name, e.provider, e.profile or e.name, k)
      end
    end
    -- what sg.connect would refuse, refused now: at connect time it fails the account mid-run
    local ok, err = pcall(connect.check_options, e.provider, e.connect, "connect")
    if not ok then bad("%s", tostring(err)) end
  end
  if e.env ~= nil then
    if type(e.env) ~= "table" then bad("env must map credential names to environment variable names") end
    for k, v in pairs(e.env) do
      if not creds[k] then bad("env.%s: %s has no credential of that name", tostring(k), e.provider) end
      -- what is written here may be the credential itself, pasted by mistake: never echo it
      if type(v) ~= "string" or not v:match("^[%a_][%w_]*$") then
        bad("env.%s must be the name of the environment variable that holds the credential (letters, " ..
          "digits and '_', e.g. %s), not the credential itself (what is written there is not shown): " ..
          "put the credential in that variable, or under [%s.%s] in the profile file with profile = \"%s\"",
          k, creds[k].env, e.profile or e.name, e.provider, e.profile or e.name)
      end
    end
  end
  if type(e.groups) ~= "table" or #e.groups == 0 then
    bad("groups must be a non-empty list of {group = NAME, source = SNAPSHOT-FILE or ACCOUNT:GROUP}")
  end
  local groups = {}
  for j, g in ipairs(e.groups) do
    local gwhere = string.format("groups[%d]", j)
    if type(g) ~= "table" or g.group == nil then bad("%s must be {group = NAME, source = ...}", gwhere) end
    for k in pairs(g) do
      if k ~= "group" and k ~= "source" then bad("%s: unknown field '%s' (known: group, source)", gwhere, tostring(k)) end
    end
    local okref, ref = pcall(parse_ref, e.provider, g.group)
    if not okref then bad("%s: %s", gwhere, tostring(ref)) end
    -- checked here, not by the adapter when the account's turn comes
    local why = require("sg.groups").ref_problem(e.provider, ref)
    if why then bad("%s.group: %s", gwhere, why) end
    if type(g.source) ~= "string" or g.source == "" then
      bad("%s (%s): source must be a snapshot file or ACCOUNT:GROUP", gwhere, ref_text(ref))
    end
    local source
    local head, rest = g.source:match("^([%w][%w_%.%-]*):(.+)$")
    if head and not g.source:find("/", 1, true) then
      source = { kind = "account", name = head, group = rest, text = g.source }
    else
      local p = g.source
      if p:sub(1, 1) ~= "/" then p = base .. "/" .. p end
      -- stat, not open: a FIFO named as the source would block an open; loading refuses it
      if not fs.mode(p) then
        bad("%s (%s): source %s: no such snapshot file (%s)", gwhere, ref_text(ref), g.source, p)
      end
      source = { kind = "file", path = p, text = g.source }
    end
    groups[j] = { ref = ref, text = ref_text(ref), source = source }
  end
  return { name = e.name, provider = e.provider, index = i, profile = e.profile, connect = e.connect,
    env = e.env, groups = groups }
end

---@class sg.Fleet
---@field path string
---@field accounts sg.FleetAccount[]
---@field by_name table<string, sg.FleetAccount>
local Fleet = {}
Fleet.__index = Fleet

---Reads and checks an inventory file; nothing is connected yet.
---@param path string
---@return sg.Fleet
function M.load(path)
  if type(path) ~= "string" then error("sg.fleet.load: path must be a string", 2) end
  local text, rerr = fs.read_regular(path)
  if not text then error(string.format("cannot read the inventory: %s", rerr), 0) end
  local chunk, err = load(text, "@" .. path, "t", {})
  if not chunk then error(string.format("%s: cannot load the inventory: %s", path, err), 0) end
  local ok, list = pcall(chunk)
  if not ok then error(string.format("%s: the inventory raised an error: %s", path, tostring(list)), 0) end
  if type(list) == "table" and list.accounts ~= nil then list = list.accounts end
  if type(list) ~= "table" or #list == 0 then
    error(string.format("%s: an inventory returns a non-empty list of accounts " ..
      "({ {name =, provider =, profile =, groups = {...}}, ... })", path), 0)
  end
  local base = dirname(path)
  local self = setmetatable({ path = path, accounts = {}, by_name = {}, conns = {}, sources = {},
    limiters = {}, per_provider = M.DEFAULT_PER_PROVIDER }, Fleet)
  for i, e in ipairs(list) do
    local a = check_entry(path, i, e, base)
    if self.by_name[a.name] then
      error(string.format("%s: account %d (%s): the name is used by account %d too", path, i, a.name,
        self.by_name[a.name].index), 0)
    end
    self.accounts[i], self.by_name[a.name] = a, a
  end
  -- account sources must name an account of the inventory or a provider
  for _, a in ipairs(self.accounts) do
    for j, g in ipairs(a.groups) do
      local s = g.source
      if s.kind == "account" then
        local other = self.by_name[s.name]
        local provider = other and other.provider or (known_provider[s.name] and s.name)
        if not provider then
          error(string.format("%s: account %d (%s): groups[%d]: source %s: %s is neither an account " ..
            "of this inventory nor a provider", path, a.index, a.name, j, s.text, s.name), 0)
        end
        local okref, ref = pcall(parse_ref, provider, s.group)
        if not okref then
          error(string.format("%s: account %d (%s): groups[%d]: source %s: %s", path, a.index, a.name, j,
            s.text, tostring(ref)), 0)
        end
        s.account, s.provider, s.ref = other and other.name, provider, ref
      end
    end
  end
  return self
end

---------------------------------------------------------------------------------------------
-- Sharding: rendezvous hashing, so adding an account moves only that account.

local function score(name, i)
  return (string.unpack(">I8", require("_sg.crypto").sha256(name .. "\0" .. i)))
end

---The shard (0 .. count-1) an account name belongs to.
---@param name string
---@param count integer
---@return integer
function M.shard_of(name, count)
  local best, best_score = 0, nil
  for i = 0, count - 1 do
    local s = score(name, i)
    if best_score == nil or math.ult(best_score, s) then best, best_score = i, s end
  end
  return best
end

---Keeps only the accounts of shard `index` of `count`.
---@param index integer 0-based, as Kubernetes' JOB_COMPLETION_INDEX
---@param count integer
function Fleet:shard(index, count)
  local keep = {}
  for _, a in ipairs(self.accounts) do
    if M.shard_of(a.name, count) == index then keep[#keep + 1] = a end
  end
  self.accounts = keep
  self.shard_info = { index = index, count = count }
end

---------------------------------------------------------------------------------------------
-- Per-provider request limits.

-- This caps requests in flight per provider, which the issue's per-provider limit asks for. It is
-- not sg.limiter, which paces a rate per account learned from 429s and never caps concurrency;
-- a fleet's transport absorbs its 429s here (pausing the provider), so sg.limiter does not act
-- on them too.

---@class sg.FleetLimiter
---@field limit integer requests in flight at most
---@field active integer slots held
---@field waiting integer acquirers queued
---@field throttled integer 429s seen
local Limiter = {}
Limiter.__index = Limiter

---A limiter of `limit` requests in flight; waiters are served first come, first served.
---@param limit integer
---@return sg.FleetLimiter
function M.new_limiter(limit)
  return setmetatable({ limit = limit, active = 0, queue = {}, head = 1, tail = 0, waiting = 0,
    paused_until = 0, throttled = 0 }, Limiter)
end

-- A waiter sleeps on a short-lived gate task that release() cancels to hand it a slot; it renews
-- the gate while it waits, so the gate of a waiter that was itself cancelled ends on its own and
-- is passed over (a live waiter passed over that way queues again when it wakes).
local GATE_SECONDS, RENEW_SECONDS = 2, 1

-- The queue is queue[head .. tail]. Its tail is counted, not taken from #queue: once served
-- entries below head are cleared, # may give any border, and an entry written there would sit
-- below head, never handed a slot: its waiter stalled until a renewal of its gate found a slot
-- free, behind later arrivals.
local function enqueue(self, entry)
  self.tail = self.tail + 1
  self.queue[self.tail] = entry
  self.waiting = self.waiting + 1
end

---Waits for a slot (and for a 429's pause to end).
---@async
function Limiter:acquire()
  if self.waiting == 0 and self.active < self.limit then
    self.active = self.active + 1
  else
    local entry = { gate = task.spawn(task.sleep, GATE_SECONDS) }
    enqueue(self, entry)
    while not entry.granted do
      task.wait(entry.gate, RENEW_SECONDS)
      if not entry.granted then
        task.cancel(entry.gate)
        if self.active < self.limit then
          -- passed over while the loop was too busy to renew the gate: take the free slot
          if not entry.skipped then
            entry.left = true
            self.waiting = self.waiting - 1
          end
          self.active = self.active + 1
          break
        end
        entry.gate = task.spawn(task.sleep, GATE_SECONDS)
        if entry.skipped then
          entry.skipped = false
          enqueue(self, entry)
        end
      end
    end
  end
  -- a 429 pauses the provider: the slot is held, but nothing is sent until the pause ends
  local wait = self.paused_until - task.now()
  if wait > 0 then task.sleep(wait) end
end

---Frees a slot, handing it to the first live waiter.
function Limiter:release()
  while self.head <= self.tail do
    local entry = self.queue[self.head]
    self.queue[self.head] = nil
    self.head = self.head + 1
    if not entry.left then
      self.waiting = self.waiting - 1
      local status = entry.gate:status()
      if status == "waiting" or status == "ready" then
        entry.granted = true -- the slot passes to it: active stays as it is
        task.cancel(entry.gate)
        return
      end
      entry.skipped = true -- its waiter is gone, or re-queues itself when it wakes
    end
  end
  self.queue, self.head, self.tail = {}, 1, 0
  self.active = self.active - 1
end

---Holds the provider's requests for `seconds` (a 429's Retry-After).
---@param seconds number
function Limiter:pause(seconds)
  self.throttled = self.throttled + 1
  self.paused_until = math.max(self.paused_until, task.now() + seconds)
end

function Fleet:limiter(provider)
  local l = self.limiters[provider]
  if not l then
    l = M.new_limiter(self.per_provider)
    self.limiters[provider] = l
  end
  return l
end

-- A transport that holds one of the provider's slots per send and absorbs 429s. A request still
-- refused after MAX_THROTTLED tries raises instead of being sent once more outside the limit.
-- It raises rather than hand back the 429: sg.retry would send that again, MAX_THROTTLED tries
-- per attempt. Not retryable, so that sg.wait's polling does not start over either.
function Fleet:transport(provider)
  local http = require "_sg.http"
  local retry = require "sg.retry"
  local limiter = self:limiter(provider)
  ---@async
  return function(req)
    for _ = 1, MAX_THROTTLED do
      limiter:acquire()
      local ok, resp, err, code = pcall(http.request, req)
      limiter:release()
      if not ok then error(resp, 0) end
      if not resp or resp.status ~= 429 then return resp, err, code end
      limiter:pause(math.min(retry.retry_after(resp) or THROTTLE_PAUSE, THROTTLE_PAUSE_CAP))
    end
    error(errors.new({ provider = provider, op = "request", status = 429, code = "throttled", retryable = false,
      message = string.format("%s answered 429 (too many requests) to %d tries of one request, each sent " ..
        "after the pause it asked for; run the fleet again later, or with a lower --per-provider " ..
        "(this run allowed %d in flight at once) so that it is not throttled", provider, MAX_THROTTLED, limiter.limit) }), 0)
  end
end

---------------------------------------------------------------------------------------------
-- Connections, made on first use.

-- The profile file's sections, read once per run and handed to every connection (the
-- `profiles` connect option): a fleet has a section per account, and reading the whole file for
-- each of thousands of accounts would cost their square. Raises as sg.connect would (the file's
-- mode, its syntax); then the account being connected fails, and the next one tries again.
local function profiles(self)
  if self.profiles == nil then self.profiles, self.profiles_path = connect.read_profiles() end
  return self.profiles, self.profiles_path
end

local function connect_opts(self, provider)
  return { transport = self:transport(provider), profiles = profiles(self), timeout = self.timeout }
end

---The connection of an account (made on first use).
---@param a sg.FleetAccount
---@return sg.Connection
function Fleet:connection(a)
  local conn = self.conns[a.name]
  if conn then return conn end
  local opts = connect_opts(self, a.provider)
  for k, v in pairs(a.connect or {}) do opts[k] = v end
  -- the run's --timeout is the operator's word for this run, over what the inventory says
  if self.timeout then opts.timeout = self.timeout end
  -- under --sim every account talks to the emulator
  if (package.loaded["sg.options"] or {}).sim then opts.base_url = nil end
  local creds = credential_defs(a.provider)
  if a.profile then
    local sections, file = profiles(self)
    local values = sections[a.profile .. "." .. a.provider]
    if not values then
      error(string.format("account %s: no section [%s.%s] in the profile file %s", a.name, a.profile,
        a.provider, file or "(none: set SGRUN_PROFILES)"), 0)
    end
    for name, c in pairs(creds) do
      local v = values[name] or values[c.env]
      if v ~= nil and opts[name] == nil then opts[name] = v end
    end
    opts.profile = a.profile
  end
  for name, var in pairs(a.env or {}) do
    -- trimmed and checked as sg.connect does its own variables: this one reaches it as an option
    local v = connect.env_credential(var, "account " .. a.name)
    if v == nil then
      -- an unset "variable" may be a credential written in the inventory in its place (one that
      -- happens to look like a name): the name is not shown, env.NAME says where to look
      error(string.format("account %s: env.%s names an environment variable that is not set (or is empty); " ..
        "set it to the credential before running. env.%s must hold the variable's name (e.g. %s), never the " ..
        "credential itself; the name is not shown here in case a credential was written there",
        a.name, name, name, creds[name] and creds[name].env or "VARIABLE"), 0)
    end
    opts[name] = v
  end
  conn = connect.connect(a.provider, opts)
  self.conns[a.name] = conn
  return conn
end

-- The connection a source names: an account of the inventory, or the provider's default one.
local function source_connection(self, s)
  if s.account then return self:connection(self.by_name[s.account]) end
  local key = "\0" .. s.provider
  if not self.conns[key] then self.conns[key] = connect.connect(s.provider, connect_opts(self, s.provider)) end
  return self.conns[key]
end

---The desired rules of a group's source, read once per run however many groups share it.
---@async
function Fleet:source(s)
  local key = s.kind == "file" and ("file:" .. s.path) or ("live:" .. s.text)
  local entry = self.sources[key]
  if not entry then
    entry = task.spawn(
    ---@async
    function()
      if s.kind == "file" then return snapshot.load(s.path) end
      return snapshot.snapshot(source_connection(self, s), s.ref)
    end)
    self.sources[key] = entry
  end
  local ok, snap = task.wait(entry)
  if not ok then error(string.format("source %s: %s", s.text, tostring(snap)), 0) end
  return snap
end

---------------------------------------------------------------------------------------------
-- The actions.

local error_text = errors.text

local function rule_texts(list)
  local out = json.array()
  for i, r in ipairs(list or {}) do out[i] = rule.tostring(r) end
  table.sort(out)
  return out
end

local function finding_entries(list)
  local out = json.array()
  for i, f in ipairs(list or {}) do
    out[i] = { kind = f.kind or f.severity, rule = rule.tostring(f.rule), why = f.why }
  end
  table.sort(out, function(x, y) return x.rule .. x.kind < y.rule .. y.kind end)
  return out
end

local function group_entry(g, status)
  return { group = g.text, source = g.source.text, status = status, changes = { add = json.array(),
    remove = json.array() }, findings = json.array() }
end

-- How an action finds the groups of one account: from one listing of them all where the
-- provider has one (adapter.group_reader), else a read per group. The listing is made by the
-- first group to ask, once, and a listing that fails fails each group that needed it (in that
-- group's report entry), as its own read would have.
local function group_reader(conn)
  local adapter = require("sg.groups").get(conn.provider)
  if not adapter.group_reader then
    ---@async
    return function(ref) return adapter.get_group(conn, ref) end
  end
  local making
  ---@async
  return function(ref)
    making = making or task.spawn(adapter.group_reader, conn)
    local ok, read = task.wait(making)
    if not ok then error(read, 0) end
    return read(ref)
  end
end

local ACTIONS = {}

---@async
function ACTIONS.drift(self, a)
  local conn = self:connection(a)
  local read = group_reader(conn)
  local fns = {}
  for i, g in ipairs(a.groups) do
    ---@async
    fns[i] = function()
      local e = group_entry(g, "failed")
      local ok, err = pcall(
      ---@async
      function()
        local group, why = read(g.ref)
        local plan = require("sg.apply").plan_group(conn, g.ref, group, why, self:source(g.source),
          { lossy = "allow" })
        e.changes = { add = rule_texts(plan.add), remove = rule_texts(plan.remove) }
        e.findings = finding_entries(plan.findings)
        e.status = plan:empty() and "clean" or "drift"
      end)
      if not ok then e.error = error_text(err) end
      return e
    end
  end
  return task.all(fns)
end

---@async
function ACTIONS.audit(self, a)
  local conn = self:connection(a)
  local read = group_reader(conn)
  local fns = {}
  for i, g in ipairs(a.groups) do
    ---@async
    fns[i] = function()
      local e = group_entry(g, "failed")
      local ok, err = pcall(
      ---@async
      function()
        e.findings = finding_entries(require("sg.audit").check(snapshot.read_group(conn, g.ref, read).rules))
        e.status = #e.findings > 0 and "findings" or "clean"
      end)
      if not ok then e.error = error_text(err) end
      return e
    end
  end
  return task.all(fns)
end

---@async
function ACTIONS.rollout(self, a, opts)
  local conn = self:connection(a)
  local entries, by_source, order = {}, {}, {}
  for i, g in ipairs(a.groups) do
    entries[i] = group_entry(g, "failed")
    local key = g.source.text
    if not by_source[key] then
      by_source[key] = {}
      order[#order + 1] = key
    end
    table.insert(by_source[key], i)
  end
  local fns = {}
  for n, key in ipairs(order) do
    ---@async
    fns[n] = function()
      local idx = by_source[key]
      local ok, err = pcall(
      ---@async
      function()
        local source = self:source(a.groups[idx[1]].source)
        local targets = {}
        for k, i in ipairs(idx) do targets[k] = { conn, a.groups[i].ref } end
        local report = require("sg.rollout").rollout(source, targets, { lossy = opts.lossy or "allow",
          mode = opts.mode })
        for k, i in ipairs(idx) do
          local t, e = report.targets[k], entries[i]
          local changes = t.changes or (t.plan and { add = t.plan.add, remove = t.plan.remove }) or {}
          e.status = t.status
          e.changes = { add = rule_texts(changes.add), remove = rule_texts(changes.remove) }
          e.findings = finding_entries(t.findings)
          if t.error ~= nil then e.error = error_text(t.error) end
        end
      end)
      if not ok then
        for _, i in ipairs(idx) do entries[i].error = error_text(err) end
      end
      return true
    end
  end
  task.all(fns)
  return entries
end

M.ACTIONS = { "drift", "audit", "rollout" }

-- The status of an account from its groups: failed beats drift/findings/changed beats clean.
local GROUP_RANK = { failed = 4, rolled_back = 4, interrupted = 4, drift = 3, findings = 3,
  converged = 2, planned = 2, clean = 1, unchanged = 1 }
local ACCOUNT_STATUS = { failed = "failed", rolled_back = "failed", interrupted = "failed",
  drift = "drift", findings = "findings", converged = "converged", planned = "planned",
  clean = "clean", unchanged = "clean" }

local function account_status(groups)
  local worst, rank = "clean", 0
  for _, g in ipairs(groups) do
    local r = GROUP_RANK[g.status] or 4
    if r > rank then worst, rank = g.status, r end
  end
  return ACCOUNT_STATUS[worst] or "failed"
end

---Totals of a report's accounts (also used to merge shard reports).
---@param accounts table[]
---@return table
function M.totals(accounts)
  local t = { accounts = #accounts, groups = 0, added = 0, removed = 0, findings = 0,
    by_status = {} }
  for _, a in ipairs(accounts) do
    t.by_status[a.status] = (t.by_status[a.status] or 0) + 1
    for _, g in ipairs(a.groups) do
      t.groups = t.groups + 1
      t.added = t.added + #g.changes.add
      t.removed = t.removed + #g.changes.remove
      t.findings = t.findings + #g.findings
    end
  end
  t.failed = t.by_status.failed or 0
  return t
end

---The exit status of a report: 1 when an account failed, 3 drift or findings, else 0.
---@param report table
---@return integer
function M.exit_code(report)
  local s = report.totals.by_status
  if (s.failed or 0) > 0 then return 1 end
  if report.action ~= "rollout" and ((s.drift or 0) > 0 or (s.findings or 0) > 0) then return 3 end
  return 0
end

---Runs an action over every account and returns the report (a JSON-able table).
---@async
---@param action "drift"|"audit"|"rollout"
---@param opts {concurrency: integer?, per_provider: integer?, timeout: number?, lossy: string?, mode: string?}?
---@return table report {action, accounts, totals, shard?}
function Fleet:run(action, opts)
  opts = opts or {}
  local fn = ACTIONS[action]
  if not fn then error("sg.fleet: unknown action " .. tostring(action) .. " (drift, audit, rollout)", 2) end
  self.per_provider = opts.per_provider or self.per_provider
  self.timeout = opts.timeout
  for _, l in pairs(self.limiters) do l.limit = self.per_provider end
  local fns = {}
  for i, a in ipairs(self.accounts) do
    ---@async
    fns[i] = function()
      local entry = { name = a.name, provider = a.provider, index = a.index }
      local ok, groups = pcall(fn, self, a, opts)
      if ok then
        entry.groups = groups
        entry.status = account_status(groups)
      else
        entry.status, entry.error = "failed", error_text(groups)
        entry.groups = json.array()
        for j, g in ipairs(a.groups) do
          entry.groups[j] = group_entry(g, "failed")
        end
      end
      if entry.status == "failed" and not entry.error then
        for _, g in ipairs(entry.groups) do
          if g.error then entry.error = g.group .. ": " .. g.error break end
        end
      end
      return entry
    end
  end
  -- Work through the providers' accounts in turn, so that the accounts in progress at any time
  -- spread over every provider's limit instead of queueing on one provider's.
  local lanes, names, order = {}, {}, {}
  for i, a in ipairs(self.accounts) do
    if not lanes[a.provider] then
      lanes[a.provider] = {}
      names[#names + 1] = a.provider
    end
    table.insert(lanes[a.provider], i)
  end
  for k = 1, #self.accounts do
    for _, p in ipairs(names) do
      if lanes[p][k] then order[#order + 1] = lanes[p][k] end
    end
  end
  local interleaved = {}
  for k, i in ipairs(order) do interleaved[k] = fns[i] end
  local accounts = json.array()
  if #fns > 0 then
    local limit = opts.concurrency or self.per_provider * #names
    for k, e in ipairs(task.all(interleaved, { limit = math.min(#fns, limit) })) do accounts[order[k]] = e end
  end
  local report = { format = "sgrun.fleet-report/1", action = action, accounts = accounts,
    totals = M.totals(accounts), shard = self.shard_info }
  return report
end

-- A decoded report's lists marked as JSON arrays again, so that empty ones encode as [].
local function as_arrays(a)
  a.groups = json.array(a.groups)
  for _, g in ipairs(a.groups) do
    g.findings = json.array(g.findings)
    g.changes = { add = json.array(g.changes and g.changes.add), remove = json.array(g.changes and g.changes.remove) }
  end
  return a
end

---Reads a report file scripts/fleet.lua --json wrote; raises naming the file when it cannot be
---read or is not JSON (merge checks the rest).
---@param path string
---@return table report
function M.read_report(path)
  local text, err = fs.read_regular(path)
  if not text then error("cannot read " .. err, 0) end
  local value, jerr = json.decode(text)
  if value == nil then
    error(string.format("%s is not JSON (%s): give the file scripts/fleet.lua --json wrote", path, jerr), 0)
  end
  return value
end

---Merges shard reports (decoded JSON) into one; raises when they do not fit together.
---@param reports table[]
---@return table report
function M.merge(reports)
  local action, seen, accounts, shards, count = nil, {}, json.array(), {}, nil
  for i, r in ipairs(reports) do
    if type(r) ~= "table" or r.format ~= "sgrun.fleet-report/1" or type(r.accounts) ~= "table" then
      error(string.format("report %d is not a fleet report (write one with scripts/fleet.lua --json)", i), 0)
    end
    if action and r.action ~= action then
      error(string.format("report %d is a %s report, the first is %s: merge reports of one run", i, r.action, action), 0)
    end
    action = r.action
    if type(r.shard) == "table" then
      count = count or r.shard.count
      if r.shard.count ~= count then error(string.format("report %d is shard %d/%d, the first has %d shards",
        i, r.shard.index, r.shard.count, count), 0) end
      if shards[r.shard.index] then error(string.format("report %d repeats shard %d/%d", i, r.shard.index, count), 0) end
      shards[r.shard.index] = true
    end
    for j, a in ipairs(r.accounts) do
      if type(a) ~= "table" or type(a.name) ~= "string" then
        error(string.format("report %d: account %d has no name: the report is damaged; write it again with --json", i, j), 0)
      end
      if seen[a.name] then error(string.format("account %s is in more than one report", a.name), 0) end
      seen[a.name] = true
      accounts[#accounts + 1] = as_arrays(a)
    end
  end
  if count then
    for s = 0, count - 1 do
      if not shards[s] then error(string.format("shard %d/%d is missing: merge every shard's report", s, count), 0) end
    end
  end
  table.sort(accounts, function(x, y) return (x.index or 0) < (y.index or 0) end)
  return { format = "sgrun.fleet-report/1", action = action, accounts = accounts, totals = M.totals(accounts) }
end

---The report for people: one line per account, the groups that are not clean, totals.
---@param report table
---@return string
function M.text(report)
  local lines = { string.format("fleet %s: %d accounts, %d groups", report.action, report.totals.accounts,
    report.totals.groups) }
  for _, a in ipairs(report.accounts) do
    lines[#lines + 1] = string.format("  %-24s %-9s %s", a.name, a.provider, a.status)
    if a.error then lines[#lines + 1] = "      error: " .. a.error end
    for _, g in ipairs(a.groups) do
      local quiet = (g.status == "clean" or g.status == "unchanged") and #g.findings == 0
      if not quiet then
        lines[#lines + 1] = string.format("      %-20s %-11s +%d -%d", g.group, g.status, #g.changes.add,
          #g.changes.remove)
        for _, r in ipairs(g.changes.add) do lines[#lines + 1] = "        + " .. r end
        for _, r in ipairs(g.changes.remove) do lines[#lines + 1] = "        - " .. r end
        for _, f in ipairs(g.findings) do lines[#lines + 1] = string.format("        %s: %s: %s", f.kind, f.rule, f.why) end
        if g.error and g.error ~= a.error then lines[#lines + 1] = "        error: " .. g.error end
      end
    end
  end
  local parts, names = {}, {}
  for k in pairs(report.totals.by_status) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do parts[#parts + 1] = string.format("%d %s", report.totals.by_status[k], k) end
  lines[#lines + 1] = string.format("totals: %s; +%d -%d rules, %d findings", table.concat(parts, ", "),
    report.totals.added, report.totals.removed, report.totals.findings)
  return table.concat(lines, "\n")
end

return M
