--[[ sgsim: the core of `sgrun sim`, the offline emulator of the five providers' firewall APIs.

PROVIDER MODULE INTERFACE (every sim/sgsim/<provider>.lua follows it exactly)

  return {
    name = "exoscale", prefix = "/exoscale/v2",
    demo_target = "web",   -- the group the demo roll-out (scripts/rollout.lua) writes to, as the
        -- GROUP of PROVIDER:GROUP (a group the demo may create, or a seeded one)
    new_state = function(ctx) return state end,
        -- seeded demo data; plain JSON-serialisable tables (string keys or proper arrays), since
        -- GET /_sim/state dumps it and POST /_sim/load / --state give it back (through JSON:
        -- numbers come back as floats, and an empty table may come back in place of an array)
    handle = function(state, req, ctx) return status, body, headers end,
        -- body: a table (JSON-encoded by the core), a string (sent as is) or nil (empty);
        -- headers: optional {Name = "value"}; Content-Type defaults to application/json
    error_body = function(status, message) return body end,
        -- the provider's own error shape; the core uses it for injected 429/5xx, 413 (body over
        -- 1 MiB), malformed JSON or a body not sent as JSON (400) and its own internal errors (500)
    env = function(base_url)
      return { SGRUN_EXOSCALE_URL = base_url .. "/exoscale/v2", EXOSCALE_API_KEY = "...", ... }
    end,
    credentials_banner = "one line describing the demo credentials",
    advance = function(state, ctx) end,   -- optional: called before every request of this
        -- provider, to apply the effects of async work that has completed by ctx.now()
  }

  req = { method =, path = (after the prefix, raw, e.g. "/security-group/abc"),
          wire_path = (the full path as on the wire, raw), query = (raw, "" if none),
          args = { name = first decoded value }, args_all = { name = { every decoded value } },
          headers = { lower-case name = value }, body = (raw string),
          json = (decoded body or nil; when the Content-Type says JSON and the body does not
                  parse, the core has already answered error_body(400, ...) without calling
                  handle, as it has a POST, PUT or PATCH body sent as anything but
                  application/json; any JSON value can arrive here: check it is an object),
          now = (epoch seconds, float) }

  ctx = { now = function() -> epoch seconds (float),
          task_duration = seconds that async work takes,
          random = function() -> [0,1), seeded (deterministic under --seed),
          task_error_rate = 0..1 (decide a task's outcome at creation: ctx.random() < rate),
          new_id = function(kind) -> a fresh UUID v4 string (seeded),
          json = { encode =, decode = (returns nil, err on bad input), null = },
          crypto = require "_sg.crypto", null = cjson.null,
          json_array_mt =, json_object_mt = (metatables that force a table to encode as a
                  JSON array / object) }

  JSON encoding (the core's own encoder, not cjson.encode): an EMPTY table encodes as [] (most
  empty values in these APIs are lists: rules, results, tasks); give an empty object the
  metatable ctx.json_object_mt to get {}. cjson.null encodes as null. Keys are sorted, so output
  is deterministic. Integral floats are written as integers (cjson decodes every number as float).

  Async work is lazy: a task/operation stores created_at and its planned outcome; its status is
  derived from ctx.now() when read, and the state mutation is applied when it completes (in
  advance(), or when read).

THE CORE
  sgsim.new(opts) -> core; opts = { latency_ms, jitter_ms, task_duration_ms, faults (spec string),
  seed (integer), clock (function -> epoch seconds) }. The C server (sim/sim_server.c) calls,
  always under its one mutex:
    core:request{method=, uri=, headers=, body=, oversized=} -> status, body, headers, delay_s,
        drop, seq   -- the server sleeps delay_s without the lock, then calls core:finish(seq)
    core:finish(seq)      -- records t_end in the request log
    core:env(base_url), core:banner(base_url), core:dump() -> JSON, core:load(json) -> ok, err
  Control endpoints live under /_sim/ (see control() below); they bypass latency and faults.
  PUT /_sim/kill {pid =, writes = N, when = "before"|"after"} arms a test hook: the N-th write
  (any method but GET/HEAD) to a provider from then on SIGKILLs pid before or after it takes
  effect, under the server's lock, so the process is dead before any reply could reach it: the
  kill test's points are counts of writes, not delays. GET /_sim/kill says whether it fired.
  Since it lets a client kill the emulator user's processes, it answers 403 unless the emulator
  was started with SGRUN_SIM_TEST_HOOKS=1 (tests/support/with_sim.sh sets it).
]]

local cjson = require "cjson.safe"
local crypto = require "_sg.crypto"
local accounts = require "sgsim.accounts"

local M = {}

-- One emulator module per provider binding (the build lists the bindings that describe a provider).
M.PROVIDERS = require "_sg.providers"

local LOG_LIMIT = 100000         -- request log entries kept (the oldest are dropped)
local DEFAULT_TASK_MS = 2000     -- how long async work takes unless --task-delay says otherwise

local null = cjson.null

------------------------------------------------------------------------------------------------
-- JSON encoding: empty tables are arrays, sorted keys, no cjson sparse-array surprises.

local array_mt = { __jsontype = "array" }
local object_mt = { __jsontype = "object" }

local escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
  ["\r"] = "\\r", ["\t"] = "\\t" }

---@param s string
---@return string
local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

---@param t table
---@return boolean is_array, integer n
local function array_length(t)
  local mt = getmetatable(t)
  if mt == object_mt then return false, 0 end
  local n = #t
  if mt == array_mt then return true, n end
  local count = 0
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 or k > n then return false, 0 end
    count = count + 1
  end
  return count == n, n
end

---@param v any
---@param out string[]
---@param depth integer
local function encode_value(v, out, depth)
  local tv = type(v)
  if v == nil or v == null then
    out[#out + 1] = "null"
  elseif tv == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif tv == "number" then
    if math.type(v) == "integer" then
      out[#out + 1] = string.format("%d", v)
    elseif v ~= v or v == math.huge or v == -math.huge then
      out[#out + 1] = "null"
    elseif v == math.floor(v) and math.abs(v) < 2 ^ 53 then
      out[#out + 1] = string.format("%d", v)
    else
      out[#out + 1] = string.format("%.16g", v)
    end
  elseif tv == "string" then
    out[#out + 1] = quote(v)
  elseif tv == "table" then
    if depth > 64 then error("json: nesting too deep (a cycle?)") end
    local is_array, n = array_length(v)
    if is_array then
      out[#out + 1] = "["
      for i = 1, n do
        if i > 1 then out[#out + 1] = "," end
        encode_value(v[i], out, depth + 1)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = tostring(k) end
      table.sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = quote(k)
        out[#out + 1] = ":"
        local val = v[k]
        if val == nil then val = v[tonumber(k)] end
        encode_value(val, out, depth + 1)
      end
      out[#out + 1] = "}"
    end
  else
    error("json: cannot encode a " .. tv)
  end
end

---Encodes a Lua value as JSON (see the header comment for the rules).
---@param v any
---@return string
local function json_encode(v)
  local out = {}
  encode_value(v, out, 0)
  return table.concat(out)
end

-- Request bodies and dumps are decoded by libjansson (_sg.jsonstrict), not cjson, so that the
-- emulator sees what the client sent: [] and {} differ (array_mt/object_mt on every decoded
-- table), null is cjson.null and differs from an absent key, 8080 is an integer and 8080.0 not.
local jsonstrict = require "_sg.jsonstrict"

---Decodes JSON; nil and a message on bad input.
---@param s string
---@return any|nil value, string|nil err
local function json_decode(s)
  if type(s) ~= "string" then return nil, "not a string" end
  local v, err = jsonstrict.decode(s, array_mt, object_mt)
  if v == nil and err then return nil, err end
  return v
end

M.json = { encode = json_encode, decode = json_decode, null = null, array_mt = array_mt,
  object_mt = object_mt }

------------------------------------------------------------------------------------------------
-- Seeded randomness: splitmix64 streams, so ids, task outcomes and faults repeat under --seed.

---@param seed integer
---@return fun(): integer next
local function splitmix(seed)
  local s = seed
  return function()
    s = s + 0x9E3779B97F4A7C15
    local z = s
    z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
    z = (z ~ (z >> 27)) * 0x94D049BB133111EB
    return z ~ (z >> 31)
  end
end

---@param next_int fun(): integer
---@return fun(): number uniform in [0, 1)
local function uniform(next_int)
  return function() return (next_int() >> 11) * (1.0 / 9007199254740992.0) end
end

---@param next_int fun(): integer
---@return string uuid a version 4 UUID
local function uuid4(next_int)
  local a, b = next_int(), next_int()
  return string.format("%08x-%04x-4%03x-%04x-%012x", (a >> 32) & 0xffffffff, (a >> 16) & 0xffff,
    a & 0xfff, 0x8000 | ((b >> 48) & 0x3fff), b & 0xffffffffffff)
end

---@return integer
local function random_seed()
  local bytes = crypto.random_bytes(8)
  return (string.unpack("<i8", bytes)) & 0x7fffffff  -- short: it is printed in the banner
end

------------------------------------------------------------------------------------------------
-- Knobs and the --faults spec.

local KNOB_LIMITS = {
  latency_ms = { 0, 3600000 }, jitter_ms = { 0, 3600000 }, task_duration_ms = { 0, 86400000 },
  error_rate = { 0, 1 }, drop_rate = { 0, 1 }, task_error_rate = { 0, 1 }, rate_limit = { 0, 1e9 },
  throttle_rate = { 0, 1 }, accounts = accounts.LIMITS.accounts, account_groups = accounts.LIMITS.account_groups,
}
local FAULT_NAMES = { ["5xx"] = "error_rate", error = "error_rate", drop = "drop_rate",
  task_error = "task_error_rate", rate_limit = "rate_limit", rate = "rate_limit", ["429"] = "throttle_rate" }

---Parses "5xx=0.1,drop=0.01,task_error=0.2,rate_limit=50" into knob values.
---@param spec string
---@return table|nil knobs, string|nil err
function M.parse_faults(spec)
  local out = {}
  if spec == nil or spec:match("^%s*$") or spec == "none" then return out end
  for item in spec:gmatch("[^,]+") do
    local name, value = item:match("^%s*([%w_]+)%s*=%s*([^%s]+)%s*$")
    local knob = name and (FAULT_NAMES[name] or (KNOB_LIMITS[name] and name))
    if not knob then
      return nil, string.format("invalid --faults item %q (expected NAME=VALUE with NAME one of 5xx, drop, task_error, rate_limit, 429)", item)
    end
    local v = tonumber(value)
    local lim = KNOB_LIMITS[knob]
    if not v or v < lim[1] or v > lim[2] then
      return nil, string.format("invalid --faults value for %s: %s (expected %g..%g)", name, value, lim[1], lim[2])
    end
    out[knob] = v
  end
  return out
end

------------------------------------------------------------------------------------------------
-- URL helpers.

---@param s string
---@return string
local function url_decode(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

---@param query string
---@return table<string,string> first, table<string,string[]> all
local function parse_query(query)
  local first, all = {}, {}
  for pair in query:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=(.*)$")
    if not k then k, v = pair, "" end
    k, v = url_decode(k), url_decode(v)
    if first[k] == nil then first[k] = v end
    all[k] = all[k] or {}
    table.insert(all[k], v)
  end
  return first, all
end

M.url_decode = url_decode
M.parse_query = parse_query

------------------------------------------------------------------------------------------------
-- Shapes of decoded request bodies, shared by the provider modules.

---A JSON object. A decoded body says so itself (object_mt/array_mt); a table built in Lua is an
---object when it is not a list.
---@param v any
---@return boolean
function M.is_object(v)
  if type(v) ~= "table" then return false end
  local mt = getmetatable(v)
  if mt == object_mt then return true end
  if mt == array_mt then return false end
  return v[1] == nil
end

---A JSON array: decoded as [...], or a Lua table with integer keys 1..n only.
---@param v any
---@return boolean
function M.is_array(v)
  if type(v) ~= "table" then return false end
  local mt = getmetatable(v)
  if mt == array_mt then return true end
  if mt == object_mt then return false end
  local n = 0
  for k in pairs(v) do
    if math.type(k) ~= "integer" then return false end
    n = n + 1
  end
  return n == #v
end

---A string's length in characters, which is what JSON Schema's maxLength and the vendors' "at
---most N characters" count ("é" is one, not two); in bytes when it is not UTF-8.
---@param s string
---@return integer
function M.chars(s)
  return utf8.len(s) or #s
end

---A JSON integer: written without fraction or exponent (8080, not 8080.0 nor "8080").
---@param v any
---@return boolean
function M.is_int(v)
  return math.type(v) == "integer"
end

------------------------------------------------------------------------------------------------
-- IP networks, shared by the provider modules (require("sgsim").parse_cidr).

---@param s string
---@return integer[]|nil bytes the 4 bytes of a dotted IPv4 address
local function parse_ipv4(s)
  local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return nil end
  local out = {}
  for i, part in ipairs({ a, b, c, d }) do
    if #part > 3 or (#part > 1 and part:sub(1, 1) == "0") then return nil end
    local n = tonumber(part)
    if n > 255 then return nil end
    out[i] = n
  end
  return out
end

---@param s string
---@return integer[]|nil bytes the 16 bytes of an IPv6 address (RFC 4291 text forms)
local function parse_ipv6(s)
  if not s:find(":", 1, true) or s:find("[^%x:%.]") then return nil end
  local head, tail = s, nil
  local dbl = s:find("::", 1, true)
  if dbl then
    head, tail = s:sub(1, dbl - 1), s:sub(dbl + 2)
    if tail:find("::", 1, true) then return nil end
  end
  local function groups(part, allow_v4)
    local out = {}
    if part == "" then return out end
    local items = {}
    for g in (part .. ":"):gmatch("([^:]*):") do items[#items + 1] = g end
    for i, g in ipairs(items) do
      if allow_v4 and i == #items and g:find(".", 1, true) then
        local v4 = parse_ipv4(g)
        if not v4 then return nil end
        out[#out + 1] = v4[1] * 256 + v4[2]
        out[#out + 1] = v4[3] * 256 + v4[4]
      else
        if not g:match("^%x%x?%x?%x?$") then return nil end
        out[#out + 1] = tonumber(g, 16)
      end
    end
    return out
  end
  local h = groups(head, tail == nil)
  local t = {}
  if tail then t = groups(tail, true) end
  if not h or not t then return nil end
  local n = #h + #t
  if (tail and n > 7) or (not tail and n ~= 8) then return nil end
  local words = {}
  for _, w in ipairs(h) do words[#words + 1] = w end
  for _ = 1, 8 - n do words[#words + 1] = 0 end
  for _, w in ipairs(t) do words[#words + 1] = w end
  local bytes = {}
  for _, w in ipairs(words) do
    bytes[#bytes + 1] = w >> 8
    bytes[#bytes + 1] = w & 0xff
  end
  return bytes
end

---Parses "10.0.0.0/8", "::/0" or (with allow_bare) a bare address, which gets /32 or /128.
---Returns nil and a reason when it is not a network.
---@param s any
---@param allow_bare boolean|nil
---@return {family: integer, prefix: integer, host_bits: boolean, address: string, cidr: string}|nil, string|nil
function M.parse_cidr(s, allow_bare)
  if type(s) ~= "string" then return nil, "not a string" end
  local addr, len = s:match("^([^/]+)/(%d+)$")
  if not addr then
    if not allow_bare or s:find("/", 1, true) then return nil, "not in CIDR notation" end
    addr = s
  end
  local bytes = parse_ipv4(addr)
  local family = 4
  if not bytes then
    bytes = parse_ipv6(addr)
    family = 6
  end
  if not bytes then return nil, "not an IP address: " .. addr end
  local max = family == 4 and 32 or 128
  local prefix = len and tonumber(len) or max
  if (len and #len > 3) or prefix > max then return nil, "prefix length out of range" end
  local host_bits = false
  for i, byte in ipairs(bytes) do
    local keep = math.max(0, math.min(8, prefix - (i - 1) * 8))
    local mask = (0xff << (8 - keep)) & 0xff
    if byte & ~mask & 0xff ~= 0 then host_bits = true end
  end
  return { family = family, prefix = prefix, host_bits = host_bits, address = addr:lower(),
    cidr = addr:lower() .. "/" .. prefix }
end

------------------------------------------------------------------------------------------------
-- The core object.

---@class SimCore
local Core = {}
Core.__index = Core

---@param self SimCore
local function reseed(self)
  local seed = self.knobs.seed
  self.next_id = splitmix(seed ~ 0x5EED1D5)
  self.task_random = uniform(splitmix(seed ~ 0x7A5C))
  self.fault_random = uniform(splitmix(seed ~ 0xFA17))
end

---Whether a "gcore,hostup" list of providers (nil or "" for all) names `provider`.
---@param only string|nil
---@param provider string|nil
---@return boolean
local function listed(only, provider)
  return only == nil or only == "" or provider == nil
    or (("," .. only .. ","):find("," .. provider .. ",", 1, true) ~= nil)
end

---Refreshes the ctx fields that follow the knobs.
---@param self SimCore
---@param provider string? the provider about to handle a request: task_error_only narrows the
---task error rate to the providers it names, so one cloud can fail while the others work
local function sync_ctx(self, provider)
  self.ctx.task_duration = self.knobs.task_duration_ms / 1000
  self.ctx.tasks_held = self.knobs.hold_tasks == true
  self.ctx.task_error_rate = listed(self.knobs.task_error_only, provider) and self.knobs.task_error_rate or 0
end

-- The shape of a provider's state, taken from its seeded demo state, that a loaded state (--state,
-- /_sim/load) must have: a hand-edited or hostile file is refused once, at load, instead of every
-- request ending in a handler's traceback. Generic on purpose: no provider's fields are named
-- here. Only what no saved state can differ in is required: the state's own keys, of the same
-- type; below them, that a place the demo holds a table holds a table (a list, an object, or
-- either when the demo's is empty) and a place it holds a value holds no table. Fields inside
-- items are optional (an item made later may lack what the demo's have), and their scalar types
-- are not compared (ids are numbers in one place and strings in another).
-- Two shapes of one place (the items of a list): what both allow.
local function merge(a, b)
  if a.kind == "any" or b.kind == "any" then return { kind = "any" } end
  if a.kind == "table" and b.kind ~= "value" then return b end
  if b.kind == "table" and a.kind ~= "value" then return a end
  if a.kind ~= b.kind then
    return { kind = (a.kind ~= "value" and b.kind ~= "value") and "table" or "any" }
  end
  local out = { kind = a.kind }
  if a.item or b.item then out.item = a.item and b.item and merge(a.item, b.item) or a.item or b.item end
  if a.fields then
    out.fields = {}
    for k, x in pairs(a.fields) do out.fields[k] = b.fields[k] and merge(x, b.fields[k]) or x end
    for k, x in pairs(b.fields) do out.fields[k] = out.fields[k] or x end
  end
  return out
end

local function shape_of(v)
  if v == null then return { kind = "any" } end
  if type(v) ~= "table" then return { kind = "value" } end
  if next(v) == nil then
    local mt = getmetatable(v)
    return { kind = mt == array_mt and "list" or mt == object_mt and "object" or "table" }
  end
  if M.is_array(v) then
    local item
    for _, x in ipairs(v) do item = item and merge(item, shape_of(x)) or shape_of(x) end
    return { kind = "list", item = item }
  end
  local fields, all_tables = {}, true
  for k, x in pairs(v) do
    fields[k] = shape_of(x)
    all_tables = all_tables and type(x) == "table"
  end
  if not all_tables then return { kind = "object", fields = fields } end
  -- an object whose values are all tables is keyed by ids (groups by id): one shape for them all
  local item
  for _, x in pairs(fields) do item = item and merge(item, x) or x end
  return { kind = "map", item = item }
end

local function kind_text(v)
  if type(v) ~= "table" then return type(v) == "userdata" and "null" or ("a " .. type(v)) end
  if next(v) == nil then return "empty" end
  return M.is_array(v) and "a list" or "an object"
end

-- nil when `v` fits `shape`, else what is wrong at `where`.
local function misfit(shape, v, where)
  if v == nil or v == null or shape.kind == "any" then return nil end
  if shape.kind == "value" then
    if type(v) == "table" then return where .. " must be a single value, not " .. kind_text(v) end
    return nil
  end
  if type(v) ~= "table" then
    local want = ({ list = "a list", object = "an object", map = "an object" })[shape.kind] or "a list or an object"
    return string.format("%s must be %s, not %s", where, want, kind_text(v))
  end
  if next(v) == nil then return nil end
  local is_list = M.is_array(v)
  if shape.kind == "list" and not is_list then return where .. " must be a list, not an object" end
  if (shape.kind == "object" or shape.kind == "map") and is_list then
    return where .. " must be an object, not a list"
  end
  if shape.kind == "list" and shape.item then
    for i, x in ipairs(v) do
      local why = misfit(shape.item, x, string.format("%s[%d]", where, i))
      if why then return why end
    end
  elseif shape.kind == "map" and shape.item then
    for k, x in pairs(v) do
      local why = misfit(shape.item, x, string.format("%s[%q]", where, tostring(k)))
      if why then return why end
    end
  elseif shape.kind == "object" then
    for k, s in pairs(shape.fields) do
      local why = misfit(s, v[k], where .. "." .. tostring(k))
      if why then return why end
    end
  end
  return nil
end

---@param self SimCore
---@param name string
local function fresh_state(self, name)
  local mod = self.modules[name]
  self.states[name] = mod.new_state(self.ctx)
  if not self.shapes[name] then
    local shape = { kind = "object", fields = {}, keys = {} }
    for k, v in pairs(self.states[name]) do
      shape.fields[k] = shape_of(v)
      shape.keys[k] = type(v)
    end
    self.shapes[name] = shape
  end
end

---nil when `st` can stand for provider `name`'s state, else what is wrong, naming the place.
---@param self SimCore
---@param name string
---@param st any
---@return string|nil why
local function state_misfit(self, name, st)
  if type(st) ~= "table" or M.is_array(st) and next(st) ~= nil then
    return string.format("providers.%s must be an object (that provider's state), not %s", name, kind_text(st))
  end
  local shape = self.shapes[name]
  local keys = {}
  for k in pairs(shape.keys) do keys[#keys + 1] = k end
  table.sort(keys)
  -- a field of the wrong kind first: it says more about the file than one missing beside it
  for _, k in ipairs(keys) do
    local v = st[k]
    if v == nil or v == null then goto next end
    local want = shape.keys[k]
    if (want == "table") ~= (type(v) == "table") or (want ~= "table" and type(v) ~= want) then
      return string.format("providers.%s.%s must be %s, not %s", name, k,
        want == "table" and (shape.fields[k].kind == "list" and "a list" or "an object") or ("a " .. want), kind_text(v))
    end
    local why = misfit(shape.fields[k], v, string.format("providers.%s.%s", name, k))
    if why then return why end
    ::next::
  end
  for _, k in ipairs(keys) do
    if st[k] == nil or st[k] == null then return string.format("providers.%s has no %s", name, k) end
  end
  return nil
end

---Creates the emulator core. Returns nil and a message on a bad option.
---@param opts table
---@return SimCore|nil core, string|nil err
function M.new(opts)
  opts = opts or {}
  local knobs = { latency_ms = 0, jitter_ms = 0, task_duration_ms = DEFAULT_TASK_MS, error_rate = 0,
    drop_rate = 0, task_error_rate = 0, rate_limit = 0, throttle_rate = 0, hold_tasks = false,
    accounts = tonumber(os.getenv("SGRUN_SIM_ACCOUNTS") or "") or 0, account_groups = 1 }
  for k in pairs(KNOB_LIMITS) do
    if opts[k] ~= nil then
      local v, lim = tonumber(opts[k]), KNOB_LIMITS[k]
      if not v or v < lim[1] or v > lim[2] then return nil, "invalid " .. k end
      knobs[k] = v
    end
  end
  local faults, err = M.parse_faults(opts.faults)
  if not faults then return nil, err end
  for k, v in pairs(faults) do knobs[k] = v end
  knobs.seed = math.tointeger(opts.seed) or random_seed()

  local self = setmetatable({ knobs = knobs, clock = opts.clock or os.time, modules = {},
    order = {}, states = {}, shapes = {}, log = {}, seq = 0, open = {}, buckets = {}, in_flight = 0,
    max_in_flight = 0, test_hooks = os.getenv("SGRUN_SIM_TEST_HOOKS") == "1" }, Core)
  -- Every answered request, bodies included, as one JSON line each: the suite's traffic that
  -- tests/schemas/validate_traffic.py checks against the vendors' schemas.
  local traffic = opts.traffic_file or os.getenv("SGRUN_SIM_TRAFFIC")
  if traffic and traffic ~= "" then
    local f, ferr = io.open(traffic, "a")
    if not f then return nil, "cannot open the traffic file: " .. tostring(ferr) end
    self.traffic = f
  end
  reseed(self)
  self.ctx = {
    now = function() return self.clock() end,
    random = function() return self.task_random() end,
    new_id = function(_) return uuid4(self.next_id) end,
    json = M.json, crypto = crypto, null = null,
    json_array_mt = array_mt, json_object_mt = object_mt,
  }
  sync_ctx(self)
  for _, name in ipairs(M.PROVIDERS) do
    -- A provider whose module is missing is simply not served: the others still work.
    local ok, mod = pcall(require, "sgsim." .. name)
    if ok and type(mod) == "table" then
      self.modules[name] = mod
      self.order[#self.order + 1] = name
    elseif not tostring(mod):find("module 'sgsim." .. name .. "' not found", 1, true) then
      io.stderr:write("sgrun sim: provider ", name, " failed to load: ", tostring(mod), "\n")
    end
  end
  -- Longest prefix first, so that no prefix shadows a longer one.
  table.sort(self.order, function(a, b) return #self.modules[a].prefix > #self.modules[b].prefix end)
  for _, name in ipairs(self.order) do fresh_state(self, name) end
  accounts.create(self)
  return self
end

---Finds the provider serving a path: prefix followed by "/" or the end of the path.
---@param path string
---@return string|nil name, string rest
function Core:route(path)
  for _, name in ipairs(self.order) do
    local prefix = self.modules[name].prefix
    if path:sub(1, #prefix) == prefix then
      local rest = path:sub(#prefix + 1)
      if rest == "" or rest:sub(1, 1) == "/" then return name, rest end
    end
  end
  return nil, path
end

---Appends a request log entry and returns it.
---@return table entry
function Core:log_request(entry)
  self.seq = self.seq + 1
  entry.seq = self.seq
  self.log[#self.log + 1] = entry
  if #self.log > LOG_LIMIT then
    -- drop the oldest tenth at once, so trimming is rare
    local keep = {}
    for i = LOG_LIMIT // 10 + 1, #self.log do keep[#keep + 1] = self.log[i] end
    self.log = keep
  end
  self.open[entry.seq] = entry
  self.in_flight = self.in_flight + 1
  if self.in_flight > self.max_in_flight then self.max_in_flight = self.in_flight end
  return entry
end

---Records the end of a request (after the server slept its latency).
---@param seq integer
function Core:finish(seq)
  local e = self.open[seq]
  if e then
    e.t_end = self.clock()
    self.open[seq] = nil
    self.in_flight = self.in_flight - 1
  end
end

---Token bucket per provider: rate_limit requests per second, bursts of the same size.
---@return number|nil retry_after seconds to wait when the request is over the limit
function Core:rate_limited(name, now)
  local rate = self.knobs.rate_limit
  if not rate or rate <= 0 then return nil end
  local b = self.buckets[name]
  if not b then
    b = { tokens = rate, t = now }
    self.buckets[name] = b
  end
  b.tokens = math.min(rate, b.tokens + (now - b.t) * rate)
  b.t = now
  if b.tokens >= 1 then
    b.tokens = b.tokens - 1
    return nil
  end
  return math.max(1, math.ceil((1 - b.tokens) / rate))
end

local function encode_body(body)
  if body == nil then return "" end
  if type(body) == "string" then return body end
  return json_encode(body)
end

---Merges default headers into the module's.
local function response_headers(h, status, body)
  local out = {}
  for k, v in pairs(h or {}) do out[k] = tostring(v) end
  local has_ct = false
  for k in pairs(out) do
    if k:lower() == "content-type" then has_ct = true end
  end
  if not has_ct and status ~= 204 and body ~= nil then out["Content-Type"] = "application/json" end
  return out
end

---Calls a module function under pcall; on a Lua error answers 500 in the provider's shape.
---@return integer status, any body, table|nil headers
function Core:call_module(name, fn, ...)
  local mod = self.modules[name]
  local ok, status, body, headers = xpcall(fn, debug.traceback, ...)
  if not ok then
    io.stderr:write("sgrun sim: ", name, " emulator error: ", tostring(status), "\n")
    return 500, mod.error_body(500, "internal error in the " .. name .. " emulator"), nil
  end
  if math.type(status) ~= "integer" and not (type(status) == "number" and status == math.floor(status)) then
    io.stderr:write("sgrun sim: ", name, " emulator returned no status\n")
    return 500, mod.error_body(500, "internal error in the " .. name .. " emulator"), nil
  end
  return math.tointeger(status), body, headers
end

-- The methods whose body the providers read. Every reference gives JSON bodies with
-- Content-Type: application/json (exoscale.md §1.2, gcore.md §1.4, genesis_barrack_hostup.md
-- §1.1 and the Barrack and HostUp curl examples); none says what another media type gets.
-- INFERRED: 400 in the provider's own error shape, the status each reference gives a bad request
-- (Exoscale §5.1, Gcore's ValidationError, Genesis's error default, Barrack's documented 400,
-- HostUp's invalid_request), rather than a 415 that none of them lists.
local BODY_METHODS = { POST = true, PUT = true, PATCH = true }

---Is a Content-Type header JSON? The media type in any case, with or without parameters.
---@param value string|nil
---@return boolean
local function json_media_type(value)
  return (value or ""):match("^%s*([^;%s]*)"):lower() == "application/json"
end

---The server entry point. See the header comment.
---@param creq {method: string, uri: string, headers: table, body: string, oversized: boolean}
---@return integer status, string body, table headers, number delay, boolean drop, integer seq
function Core:request(creq)
  local now = self.clock()
  local uri = creq.uri or "/"
  local path, query = uri:match("^([^?]*)%??(.*)$")
  path = path ~= "" and path or "/"
  local method = creq.method or "GET"

  if path == "/_sim" or path:sub(1, 6) == "/_sim/" then
    local status, body = self:control(method, path, query, creq.body or "")
    return status, encode_body(body), response_headers(nil, status, body), 0, false, 0
  end

  local name, rest = self:route(path)
  local entry = self:log_request({ provider = name or null, method = method, path = path,
    query = query, t_start = now, status = 0 })
  local k = self.knobs
  local delay = (k.latency_ms + k.jitter_ms * self.fault_random()) / 1000

  local function done(status, body, headers, drop)
    entry.status = drop and 0 or status
    if drop then entry.dropped = true end
    local text = encode_body(body)
    if creq.body and creq.body ~= "" then entry.request_body = creq.body end
    if text ~= "" then entry.response_body = text end
    if self.traffic then
      entry.route = name and rest or null
      self.traffic:write(json_encode(entry), "\n")
      self.traffic:flush()
    end
    return status, text, response_headers(headers, status, body), delay, drop or false, entry.seq
  end

  if not name then
    return done(404, { message = "no emulated provider serves " .. path,
      providers = self:prefixes() })
  end
  local mod = self.modules[name]
  local kill_now = self:count_write(method)
  if kill_now == "before" then self:fire_kill() end
  if creq.oversized then
    return done(413, mod.error_body(413, "request body too large (the emulator accepts up to 1 MiB)"))
  end
  local retry_after = self:rate_limited(name, now)
  if not retry_after and k.throttle_rate > 0 and listed(k.throttle_only, name)
      and self.fault_random() < k.throttle_rate then
    retry_after = 1
  end
  if retry_after then
    return done(429, mod.error_body(429, "too many requests, slow down"),
      { ["Retry-After"] = tostring(retry_after) })
  end
  -- A dropped connection happens either before the request takes effect or after (a lost
  -- response): the second is what makes blind retries of non-idempotent calls dangerous.
  local drop = k.drop_rate > 0 and self.fault_random() < k.drop_rate
  local drop_after = drop and self.fault_random() < 0.5
  if drop and not drop_after then
    entry.processed = false
    return done(0, nil, nil, true)
  end
  if not drop and k.error_rate > 0 and self.fault_random() < k.error_rate then
    local status = ({ 500, 502, 503 })[1 + math.floor(self.fault_random() * 3)]
    return done(status, mod.error_body(status, "injected server error (sgrun sim)"))
  end

  local headers = creq.headers or {}
  local body = creq.body or ""
  if body ~= "" and BODY_METHODS[method] and not json_media_type(headers["content-type"]) then
    return done(400, mod.error_body(400, string.format(
      "the request body must be JSON sent with Content-Type: application/json, not %s",
      headers["content-type"] and string.format("%q", headers["content-type"]) or "without a Content-Type")))
  end
  local args, args_all = parse_query(query)
  local req = { method = method, path = rest, wire_path = path, query = query, args = args,
    args_all = args_all, headers = headers, body = body, now = now }
  if body ~= "" then
    local ct = (headers["content-type"] or ""):lower()
    local v, err = json_decode(body)
    if v ~= nil then
      req.json = v
    elseif ct:find("json", 1, true) then
      return done(400, mod.error_body(400, "malformed JSON in request body: " .. tostring(err)))
    end
  end

  sync_ctx(self, name)
  local state = accounts.state_for(self, name, req)
  if mod.advance then
    local ok, err = xpcall(mod.advance, debug.traceback, state, self.ctx)
    if not ok then io.stderr:write("sgrun sim: ", name, " advance error: ", tostring(err), "\n") end
  end
  local status, rbody, rheaders = self:call_module(name, mod.handle, state, req, self.ctx)
  if kill_now == "after" then self:fire_kill() end
  if drop then entry.processed = true end
  return done(status, rbody, rheaders, drop)
end

---Counts a provider request toward an armed kill: "before"/"after" when it is the one.
---@param method string
---@return string|nil when
function Core:count_write(method)
  local k = self.kill
  if not k or k.fired or method == "GET" or method == "HEAD" then return nil end
  k.seen = k.seen + 1
  if k.seen == k.writes then return k.when end
  return nil
end

---SIGKILLs the armed pid; os.execute returns once kill(1) has sent the signal, after which the
---process runs no more code (it may linger as a zombie until reaped).
function Core:fire_kill()
  local k = self.kill
  k.fired = true
  os.execute(string.format("kill -KILL %d 2>/dev/null", k.pid))
end

---@return table<string,string> prefixes by provider
function Core:prefixes()
  local out = setmetatable({}, object_mt)
  for _, name in ipairs(self.order) do out[name] = self.modules[name].prefix end
  return out
end

---@return table knobs a copy, JSON-ready
function Core:knob_values()
  local out = {}
  for key, v in pairs(self.knobs) do out[key] = v end
  return out
end

---Applies a table of knob changes; returns nil and a message on a bad one (nothing applied).
---@param changes table
---@return boolean|nil ok, string|nil err
function Core:set_knobs(changes)
  if type(changes) ~= "table" then return nil, "expected a JSON object of knobs" end
  local new = {}
  for key, v in pairs(changes) do
    if key == "faults" then
      if type(v) ~= "string" then return nil, "faults must be a string" end
      local f, err = M.parse_faults(v)
      if not f then return nil, err end
      for fk, fv in pairs(f) do new[fk] = fv end
    elseif key == "seed" then
      if type(v) ~= "number" or v ~= math.floor(v) then return nil, "seed must be an integer" end
      new.seed = math.tointeger(v)
    elseif key == "hold_tasks" then
      -- no provider's async work completes while true: a test holds a target mid-change for as
      -- long as it needs, then lets go, instead of betting on a long task duration
      if type(v) ~= "boolean" then return nil, "hold_tasks must be true or false" end
      new.hold_tasks = v
    elseif key == "task_error_only" or key == "throttle_only" then
      if type(v) ~= "string" then return nil, key .. " must be a comma-separated list of providers (\"\" for all)" end
      new[key] = v
    elseif KNOB_LIMITS[key] then
      local lim = KNOB_LIMITS[key]
      if type(v) ~= "number" or v < lim[1] or v > lim[2] then
        return nil, string.format("%s must be a number in %g..%g", key, lim[1], lim[2])
      end
      new[key] = v
    else
      return nil, "unknown knob: " .. tostring(key)
    end
  end
  for key, v in pairs(new) do self.knobs[key] = v end
  if new.seed then reseed(self) end
  if new.rate_limit then self.buckets = {} end
  if new.accounts or new.account_groups then accounts.create(self) end
  sync_ctx(self)
  return true
end

---@return table dump everything a later load() needs
function Core:state_table()
  local providers = setmetatable({}, object_mt)
  for _, name in ipairs(self.order) do providers[name] = self.states[name] end
  return { format = "sgrun.sim-state/1", knobs = self:knob_values(), providers = providers }
end

---@return string json
function Core:dump()
  return json_encode(self:state_table())
end

---Replaces the state of the providers present in a dump (a JSON string or a decoded table).
---@param data string|table
---@return boolean|nil ok, string|nil err
function Core:load(data)
  local fix = "; give a state the emulator saved (--state FILE, GET /_sim/state), or remove the file " ..
    "to start from the demo state"
  if type(data) == "string" then
    if data == "" then return nil, "nothing in it: it is empty" .. fix end
    local v, err = json_decode(data)
    if v == nil then return nil, "not JSON: " .. tostring(err) .. fix end
    data = v
  end
  if type(data) ~= "table" or type(data.providers) ~= "table" then
    return nil, 'expected {"providers": {"<name>": state, ...}}' .. fix
  end
  if data.format ~= nil and data.format ~= "sgrun.sim-state/1" then
    return nil, string.format("unknown format %s; this emulator reads sgrun.sim-state/1%s", tostring(data.format), fix)
  end
  for name, st in pairs(data.providers) do
    if not self.modules[name] then return nil, "unknown provider: " .. tostring(name) .. fix end
    local why = state_misfit(self, name, st)
    if why then return nil, why .. fix end
  end
  for name, st in pairs(data.providers) do self.states[name] = st end
  return true
end

---Back to the seeded demo state (ids repeat under the same seed).
function Core:reset()
  reseed(self)
  for _, name in ipairs(self.order) do fresh_state(self, name) end
  accounts.create(self)
  self.buckets = {}
end

---@return table
function Core:log_entries(since, provider)
  local out = {}
  for _, e in ipairs(self.log) do
    if e.seq > since and (provider == nil or e.provider == provider) then out[#out + 1] = e end
  end
  return out
end

---The /_sim/ control endpoints. Answers {"error": message} on misuse.
---@return integer status, table body
function Core:control(method, path, query, body)
  local function bad(status, msg) return status, { error = msg } end
  local function decoded()
    if body == "" then return nil, "a JSON body is required" end
    local v, err = json_decode(body)
    if v == nil then return nil, "malformed JSON: " .. tostring(err) end
    return v
  end
  local route = path:gsub("/+$", "")
  if route == "/_sim" then
    if method ~= "GET" then return bad(405, "method not allowed") end
    return 200, { providers = self:prefixes(), endpoints = { "GET/PUT /_sim/knobs", "GET /_sim/state",
      "POST /_sim/load", "POST /_sim/reset", "GET/DELETE /_sim/log", "GET/PUT/DELETE /_sim/kill" } }
  elseif route == "/_sim/knobs" then
    if method == "GET" then return 200, self:knob_values() end
    if method ~= "PUT" and method ~= "POST" and method ~= "PATCH" then return bad(405, "method not allowed") end
    local v, err = decoded()
    if v == nil then return bad(400, err) end
    local ok, kerr = self:set_knobs(v)
    if not ok then return bad(400, kerr) end
    return 200, self:knob_values()
  elseif route == "/_sim/kill" then
    if not self.test_hooks then
      return bad(403, "the kill hook is for tests only: start the emulator with SGRUN_SIM_TEST_HOOKS=1")
    end
    if method == "GET" then
      local k = self.kill
      return 200, { armed = k ~= nil and not k.fired, fired = k ~= nil and k.fired, seen = k and k.seen or 0 }
    elseif method == "DELETE" then
      self.kill = nil
      return 200, { armed = false }
    elseif method ~= "PUT" and method ~= "POST" then
      return bad(405, "method not allowed")
    end
    local v, err = decoded()
    if v == nil then return bad(400, err) end
    local pid = type(v) == "table" and type(v.pid) == "number" and math.tointeger(v.pid)
    local writes = type(v) == "table" and type(v.writes) == "number" and math.tointeger(v.writes)
    if not pid or pid <= 1 or not writes or writes < 1
        or (v.when ~= "before" and v.when ~= "after") then
      return bad(400, 'expected {"pid": N > 1, "writes": N >= 1, "when": "before" or "after"}')
    end
    self.kill = { pid = pid, writes = writes, when = v.when, seen = 0, fired = false }
    return 200, { armed = true }
  elseif route == "/_sim/state" then
    if method ~= "GET" then return bad(405, "method not allowed") end
    return 200, self:state_table()
  elseif route == "/_sim/load" then
    if method ~= "POST" and method ~= "PUT" then return bad(405, "method not allowed") end
    local v, err = decoded()
    if v == nil then return bad(400, err) end
    local ok, lerr = self:load(v)
    if not ok then return bad(400, lerr) end
    return 200, { loaded = true }
  elseif route == "/_sim/reset" then
    if method ~= "POST" then return bad(405, "method not allowed") end
    self:reset()
    return 200, { reset = true }
  elseif route == "/_sim/log" then
    if method == "DELETE" then
      local n = #self.log
      self.log = {}
      self.max_in_flight = self.in_flight
      return 200, { cleared = n }
    elseif method ~= "GET" then
      return bad(405, "method not allowed")
    end
    local args = parse_query(query)
    local since = tonumber(args.since or "0") or 0
    local entries = self:log_entries(since, args.provider)
    -- max_in_flight: the most provider requests open at once since the log was last cleared
    return 200, { count = #entries, requests = entries, max_in_flight = self.max_in_flight }
  end
  return bad(404, "no such control endpoint: " .. path)
end

---The inventory and profile file of the fleet accounts (see sgsim.accounts); remembers the
---profile file's path for env().
---@param base_url string
---@param profiles_path string
---@return string inventory, string profiles
function Core:fleet_files(base_url, profiles_path)
  self.fleet_profiles = profiles_path
  return accounts.fleet_files(self, base_url)
end

---Environment for clients: SGRUN_SIM_URL plus every module's env(base_url).
---@param base_url string
---@return table<string,string>
function Core:env(base_url)
  local out = { SGRUN_SIM_URL = base_url, SGRUN_PROFILES = self.fleet_profiles }
  for _, name in ipairs(self.order) do
    local ok, e = pcall(self.modules[name].env, base_url)
    if ok and type(e) == "table" then
      for k, v in pairs(e) do out[k] = tostring(v) end
    end
  end
  return out
end

---The start-up banner of `sgrun sim`.
---@param base_url string
---@return string
function Core:banner(base_url)
  local lines = { "sgrun sim listening on " .. base_url }
  local names = {}
  for _, name in ipairs(M.PROVIDERS) do
    if self.modules[name] then names[#names + 1] = name end
  end
  for _, name in ipairs(names) do
    local mod = self.modules[name]
    lines[#lines + 1] = string.format("  %-9s %s%s  %s", name, base_url, mod.prefix,
      mod.credentials_banner or "")
  end
  lines[#lines + 1] = "  control   " .. base_url .. "/_sim/  (knobs, state, reset, log)"
  lines[#lines + 1] = string.format("  knobs     latency %gms, jitter %gms, task duration %gms, seed %d",
    self.knobs.latency_ms, self.knobs.jitter_ms, self.knobs.task_duration_ms, self.knobs.seed)
  return table.concat(lines, "\n")
end

return M
