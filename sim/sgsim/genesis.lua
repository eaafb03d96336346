-- Genesis Cloud compute API emulator (security groups and their attachment to instances).
--
-- Faithful to ../shared/reference/genesis_barrack_hostup.md section 1: `{code, message}` errors,
-- both auth headers, reserved names, no CIDR on rules, page/per_page pagination, groups that
-- read `creating`/`updating`/`deleting` for the task duration before settling. Everything the
-- reference does not pin down is in the INFERRED block below, and only there.

---@class GenesisRule
---@field protocol string
---@field direction string
---@field port_range_min integer|nil
---@field port_range_max integer|nil

---@class GenesisTask  in-flight async work on a group, resolved lazily from the clock
---@field kind "create"|"update"|"delete"
---@field started number epoch seconds
---@field fails boolean decided up front so that the outcome is deterministic under a seed

---@class GenesisGroup
---@field id string
---@field name string
---@field description string
---@field is_internal boolean
---@field region string
---@field status string
---@field rules GenesisRule[]
---@field created_at number
---@field updated_at number
---@field task GenesisTask|nil

---@class GenesisInstance
---@field id string
---@field name string
---@field hostname string
---@field type string
---@field status string
---@field region string
---@field security_groups string[] ids of attached groups, in attach order
---@field created_at number
---@field updated_at number

---@class GenesisState
---@field token string the one accepted API token
---@field groups GenesisGroup[] in creation order (the list order)
---@field instances GenesisInstance[]

local sgsim = require "sgsim"
local is_object = sgsim.is_object
local is_array = sgsim.is_array
local JSON_NULL = require("cjson").null

local DEMO_TOKEN = "genesis-demo-token-0123456789abcdef"
local DEFAULT_REGION = "NORD-NO-KRS-1"

-- [FACT] Region enum of the current Go client (GC-GO, 2025-05-16).
local REGIONS = {
  ["EUC-DE-MUC-1"] = true, ["EUW-GB-MNC-1"] = true, ["EUW-NL-AMS-1"] = true, ["NA-CA-FTS-1"] = true,
  ["NA-CA-MNZ-1"] = true, ["NA-CA-PRG-1"] = true, ["NORD-NO-KRS-1"] = true,
}
local PROTOCOLS = { tcp = true, udp = true, icmp = true, all = true }          -- [FACT]
local DIRECTIONS = { ingress = true, egress = true }                          -- [FACT]
local RESERVED_NAMES = { default = true, standard = true }                   -- [FACT]
local PER_PAGE_DEFAULT, PER_PAGE_MAX = 50, 100                               -- [FACT]

--------------------------------------------------------------------------------------------------
-- INFERRED: everything below in this block is a guess; the reference marks it unknown.
--------------------------------------------------------------------------------------------------
local INFERRED = {
  -- The error code list is not public; "2001"/"Invalid route" is the one documented example.
  -- The others follow its numeric-string style.
  codes = {
    unauthorized = "1001",     -- 401
    rate_limited = "1002",     -- 429
    invalid_route = "2001",    -- 404 unknown path [FACT: the documented example]
    method_not_allowed = "2002",
    invalid_argument = "3001", -- 400 validation, malformed JSON
    too_large = "3002",        -- 413
    not_found = "4004",        -- 404 resource
    internal = "5000",         -- 5xx
  },
  max_name_len = 255,          -- name/description length limits are not documented
  max_description_len = 1024,
  max_rules = 200,             -- no documented rule limit; refuse absurd lists rather than none
  -- Whether the reserved names are matched ignoring case is not documented: refused in any case,
  -- as stdlib/sg/groups/genesis.lua does (a client that passes here passes there).
  reserved_ignores_case = true,
  -- The current Go enum has no "updating", the 2024 JS snapshot does: a PATCHed group reads
  -- "updating" for the task duration, which clients must treat as "in progress" anyway.
  update_status = "updating",
  -- Ports on icmp/all rules: the docs say "null for all ports"; non-null values are refused.
  ports_only_for = { tcp = true, udp = true },
  -- A group and the instances it is attached to must share a region.
  same_region_attach = true,
  -- Deleting a group that instances use is accepted, and the group is detached from them when
  -- the delete completes (see M.advance): the API's behaviour for a group in use is unknown.
  -- The Instance object beyond `security_groups: [{id, name}]`, created_at and updated_at is not
  -- in the reference; these are the other fields rendered (attach/detach/list are [FACT]).
  instance_fields = { "id", "name", "hostname", "type", "status", "region" },
}
--------------------------------------------------------------------------------------------------

local M = { name = "genesis", prefix = "/genesis/compute/v1", demo_target = "web" }

M.credentials_banner = "Genesis Cloud: GENESISCLOUD_TOKEN=" .. DEMO_TOKEN
  .. " (Authorization: Bearer or X-Auth-Token)"

---The provider's own error body, `{code, message}` (both strings), for the core's injected faults.
---@param status integer HTTP status
---@param message string
---@return table
function M.error_body(status, message)
  local by_status = { [401] = "unauthorized", [404] = "not_found", [405] = "method_not_allowed",
    [413] = "too_large", [429] = "rate_limited" }
  local name = by_status[status] or (status >= 500 and "internal") or "invalid_argument"
  return { code = INFERRED.codes[name], message = message }
end

---@param status integer
---@param code_name string a key of INFERRED.codes
---@param message string
---@return integer status, table body
local function fail(status, code_name, message)
  return status, { code = INFERRED.codes[code_name], message = message }
end

---@param base_url string
---@return table<string,string>
function M.env(base_url)
  return { SGRUN_GENESIS_URL = base_url .. M.prefix, GENESISCLOUD_TOKEN = DEMO_TOKEN }
end

---RFC 3339 with milliseconds, as in the vendor examples ("2020-03-20T15:17:42.375Z").
---@param t number epoch seconds
---@return string
local function iso(t)
  local s = math.floor(t)
  return os.date("!%Y-%m-%dT%H:%M:%S", s) .. string.format(".%03dZ", math.floor((t - s) * 1000))
end

---A JSON integer (8080; not 8080.0, "8080" or true).
---@return integer|nil
local function as_int(v)
  if math.type(v) ~= "integer" then return nil end
  return v
end

---@return string|nil field the first key of obj that `allowed` does not list
local function unknown_field(obj, allowed)
  for k in pairs(obj) do
    if not allowed[k] then return tostring(k) end
  end
end

---@param rules GenesisRule[]
---@return table
local function render_rules(rules)
  local out = {}
  for i, r in ipairs(rules) do
    out[i] = {
      protocol = r.protocol, direction = r.direction,
      port_range_min = r.port_range_min or JSON_NULL, port_range_max = r.port_range_max or JSON_NULL,
    }
  end
  return out
end

---@param g GenesisGroup
---@return table
local function render_group(g)
  return {
    id = g.id, name = g.name, description = g.description, is_internal = g.is_internal,
    region = g.region, status = g.status, rules = render_rules(g.rules),
    created_at = iso(g.created_at), updated_at = iso(g.updated_at),
  }
end

---@param state GenesisState
---@param id string
---@return GenesisGroup|nil, integer|nil index
local function find_group(state, id)
  for i, g in ipairs(state.groups) do
    if g.id == id then return g, i end
  end
end

---@param state GenesisState
---@param inst GenesisInstance
---@return table
local function render_instance(state, inst)
  local sgs = {}
  for _, id in ipairs(inst.security_groups) do
    local g = find_group(state, id)
    if g then sgs[#sgs + 1] = { id = g.id, name = g.name } end
  end
  local out = {}
  for _, k in ipairs(INFERRED.instance_fields) do out[k] = inst[k] end
  out.security_groups = sgs
  out.created_at, out.updated_at = iso(inst.created_at), iso(inst.updated_at)
  return out
end

---Validates one rule object of a request body.
---@param r any
---@param where string e.g. "rules[2]"
---@return GenesisRule|nil rule, string|nil error
local function parse_rule(r, where)
  if not is_object(r) then return nil, where .. " must be an object" end
  local bad = unknown_field(r, { protocol = true, direction = true, port_range_min = true,
    port_range_max = true })
  if bad then
    if bad == "remote_ip_prefix" or bad:find("cidr") or bad:find("source") then
      return nil, where .. ": unknown field '" .. bad
        .. "': Genesis Cloud rules have no source CIDR, a rule applies to every address"
    end
    return nil, where .. ": unknown field '" .. bad .. "'"
  end
  if type(r.protocol) ~= "string" or not PROTOCOLS[r.protocol] then
    return nil, where .. ".protocol must be one of tcp, udp, icmp, all"
  end
  if type(r.direction) ~= "string" or not DIRECTIONS[r.direction] then
    return nil, where .. ".direction must be one of ingress, egress"
  end
  local rule = { protocol = r.protocol, direction = r.direction }
  for _, f in ipairs({ "port_range_min", "port_range_max" }) do
    local v = r[f]
    if v ~= nil and v ~= JSON_NULL then
      local n = as_int(v)
      if not n or n < 1 or n > 65535 then
        return nil, where .. "." .. f .. " must be null or an integer between 1 and 65535"
      end
      if not INFERRED.ports_only_for[r.protocol] then
        return nil, where .. "." .. f .. " must be null for protocol " .. r.protocol
      end
      rule[f] = n
    end
  end
  if (rule.port_range_min == nil) ~= (rule.port_range_max == nil) then
    return nil, where .. ": port_range_min and port_range_max must both be set or both be null"
  end
  if rule.port_range_min and rule.port_range_min > rule.port_range_max then
    return nil, where .. ".port_range_min must not be greater than port_range_max"
  end
  return rule
end

---@return GenesisRule[]|nil, string|nil
local function parse_rules(v)
  if not is_array(v) then return nil, "rules must be an array" end
  if #v > INFERRED.max_rules then
    return nil, "rules: at most " .. INFERRED.max_rules .. " rules per security group"
  end
  local rules = {}
  for i, r in ipairs(v) do
    local rule, err = parse_rule(r, "rules[" .. (i - 1) .. "]")
    if not rule then return nil, err end
    rules[i] = rule
  end
  return rules
end

---@return string|nil error
local function check_text(body, field, max, required)
  local v = body[field]
  if v == nil then return required and (field .. " is required") or nil end
  if type(v) ~= "string" then return field .. " must be a string" .. (v == JSON_NULL and ", not null" or "") end
  if field == "name" and v == "" then return "name must not be empty" end
  if sgsim.chars(v) > max then return field .. " must be at most " .. max .. " characters" end
end

---@return string|nil error
local function check_name(body, required)
  local err = check_text(body, "name", INFERRED.max_name_len, required)
  if err then return err end
  local name = type(body.name) == "string" and body.name
  if name and RESERVED_NAMES[INFERRED.reserved_ignores_case and name:lower() or name] then
    return "name '" .. body.name .. "' is reserved: default and standard are not allowed names"
  end
end

---Starts async work on a group: it reads the in-progress status until the task duration passed.
---@param g GenesisGroup
---@param kind "create"|"update"|"delete"
---@param ctx table
local function start_task(g, kind, ctx)
  local now = ctx.now()
  g.task = { kind = kind, started = now, fails = ctx.random() < (ctx.task_error_rate or 0) }
  g.status = (kind == "create" and "creating") or (kind == "update" and INFERRED.update_status)
    or "deleting"
  g.updated_at = now
end

---Completes due tasks: `created` (or `error`), and groups whose delete finished disappear.
---@param state GenesisState
---@param ctx table
function M.advance(state, ctx)
  local now, duration = ctx.now(), ctx.task_duration or 0
  local kept, gone = {}, {}
  for _, g in ipairs(state.groups) do
    local t = g.task
    if t and not ctx.tasks_held and now >= t.started + duration then
      g.task = nil
      g.updated_at = t.started + duration
      if t.fails then
        g.status = "error"
      elseif t.kind == "delete" then
        gone[g.id] = true
      else
        g.status = "created"
      end
    end
    if not gone[g.id] then kept[#kept + 1] = g end
  end
  if next(gone) then
    state.groups = kept
    for _, inst in ipairs(state.instances) do
      local left = {}
      for _, id in ipairs(inst.security_groups) do
        if not gone[id] then left[#left + 1] = id end
      end
      inst.security_groups = left
    end
  end
end

---@param s string|nil
---@param name string
---@param default integer
---@param max integer|nil
---@return integer|nil value, string|nil error
local function positive_arg(s, name, default, max)
  if s == nil or s == "" then return default end
  local n = math.tointeger(tonumber(s))
  if not n or n < 1 or (max and n > max) then
    return nil, name .. " must be a positive integer" .. (max and (" lower than or equal to " .. max) or "")
  end
  return n
end

---The documented list envelope: `{<key>: [...], total_count, page, per_page}`.
---@param req table
---@param key string
---@param list table
---@param render fun(item: table): table
---@return integer, table
local function paginate(req, key, list, render)
  local page, err = positive_arg(req.args.page, "page", 1)
  if not page then return fail(400, "invalid_argument", err) end
  local per_page
  per_page, err = positive_arg(req.args.per_page, "per_page", PER_PAGE_DEFAULT, PER_PAGE_MAX)
  if not per_page then return fail(400, "invalid_argument", err) end
  local items = {}
  -- Compare before multiplying: a huge page number must not overflow into a negative index.
  if page - 1 < #list // per_page + 1 then
    for i = (page - 1) * per_page + 1, math.min(page * per_page, #list) do
      items[#items + 1] = render(list[i])
    end
  end
  return 200, { [key] = items, total_count = #list, page = page, per_page = per_page }
end

---@alias GenesisOp fun(state: GenesisState, req: table, ctx: table, id: string|nil): integer, table|string, table|nil
---@type table<string, GenesisOp>
local ops = {}

function ops.list_groups(state, req)
  return paginate(req, "security_groups", state.groups, render_group)
end

function ops.create_group(state, req, ctx)
  local body = req.json
  if not is_object(body) then return fail(400, "invalid_argument", "request body must be a JSON object") end
  local bad = unknown_field(body, { name = true, description = true, region = true, rules = true })
  if bad then return fail(400, "invalid_argument", "unknown field '" .. bad .. "'") end
  local err = check_name(body, true) or check_text(body, "description", INFERRED.max_description_len)
  if err then return fail(400, "invalid_argument", err) end
  if body.region == nil then return fail(400, "invalid_argument", "region is required") end
  if type(body.region) ~= "string" or not REGIONS[body.region] then
    return fail(400, "invalid_argument", "region must be one of the Genesis Cloud regions, e.g. "
      .. DEFAULT_REGION)
  end
  if body.rules == nil then return fail(400, "invalid_argument", "rules is required") end
  local rules
  rules, err = parse_rules(body.rules)
  if not rules then return fail(400, "invalid_argument", err) end
  local now = ctx.now()
  local g = {
    id = ctx.new_id("genesis-security-group"), name = body.name,
    description = type(body.description) == "string" and body.description or "",
    is_internal = false, region = body.region, rules = rules, created_at = now, updated_at = now,
  }
  start_task(g, "create", ctx)
  state.groups[#state.groups + 1] = g
  return 201, { security_group = render_group(g) }
end

function ops.get_group(state, _, _, id)
  local g = find_group(state, id)
  if not g then return fail(404, "not_found", "security group '" .. id .. "' not found") end
  return 200, { security_group = render_group(g) }
end

function ops.update_group(state, req, ctx, id)
  local g = find_group(state, id)
  if not g then return fail(404, "not_found", "security group '" .. id .. "' not found") end
  local body = req.json
  if not is_object(body) then return fail(400, "invalid_argument", "request body must be a JSON object") end
  local bad = unknown_field(body, { name = true, description = true, rules = true })
  if bad then
    return fail(400, "invalid_argument", "unknown field '" .. bad .. "'"
      .. (bad == "region" and ": a security group cannot change region" or ""))
  end
  local err = check_name(body, false) or check_text(body, "description", INFERRED.max_description_len)
  if err then return fail(400, "invalid_argument", err) end
  local rules
  if body.rules ~= nil then
    rules, err = parse_rules(body.rules)
    if not rules then return fail(400, "invalid_argument", err) end
  end
  -- PATCH replaces the rule list wholesale (the official clients always send the full list).
  if type(body.name) == "string" then g.name = body.name end
  if type(body.description) == "string" then g.description = body.description end
  if rules then g.rules = rules end
  start_task(g, "update", ctx)
  return 200, { security_group = render_group(g) }
end

function ops.delete_group(state, _, ctx, id)
  local g = find_group(state, id)
  if not g then return fail(404, "not_found", "security group '" .. id .. "' not found") end
  if not (g.task and g.task.kind == "delete") then start_task(g, "delete", ctx) end
  return 204, ""
end

---@return GenesisInstance|nil
local function find_instance(state, id)
  for _, inst in ipairs(state.instances) do
    if inst.id == id then return inst end
  end
end

function ops.list_instances(state, req)
  return paginate(req, "instances", state.instances, function(inst)
    return render_instance(state, inst)
  end)
end

function ops.get_instance(state, _, _, id)
  local inst = find_instance(state, id)
  if not inst then return fail(404, "not_found", "instance '" .. id .. "' not found") end
  return 200, { instance = render_instance(state, inst) }
end

---@return GenesisGroup|nil, string|nil
local function attachable_group(state, inst, id)
  if type(id) ~= "string" then return nil, "security group ids must be strings" end
  local g = find_group(state, id)
  if not g then return nil, "security group '" .. id .. "' not found" end
  if INFERRED.same_region_attach and g.region ~= inst.region then
    return nil, "security group '" .. id .. "' is in region " .. g.region .. ", the instance in "
      .. inst.region
  end
  return g
end

---Applies the `security_groups` oneOf of PATCH /instances/{id}: full list, {attach} or {detach}.
---@return string[]|nil ids, string|nil error
local function new_attachment(state, inst, v)
  if is_array(v) then
    local ids, seen = {}, {}
    for _, id in ipairs(v) do
      local _, err = attachable_group(state, inst, id)
      if err then return nil, err end
      if not seen[id] then ids[#ids + 1], seen[id] = id, true end
    end
    return ids
  end
  if not is_object(v) then
    return nil, "security_groups must be a list of ids, {\"attach\": id} or {\"detach\": id}"
  end
  local bad = unknown_field(v, { attach = true, detach = true })
  if bad or (v.attach == nil) == (v.detach == nil) then
    return nil, "security_groups must hold exactly one of attach, detach"
  end
  local ids = {}
  if v.attach ~= nil then
    local _, err = attachable_group(state, inst, v.attach)
    if err then return nil, err end
    for _, id in ipairs(inst.security_groups) do
      if id ~= v.attach then ids[#ids + 1] = id end
    end
    ids[#ids + 1] = v.attach
    return ids
  end
  if type(v.detach) ~= "string" then return nil, "security group ids must be strings" end
  local found = false
  for _, id in ipairs(inst.security_groups) do
    if id == v.detach then found = true else ids[#ids + 1] = id end
  end
  if not found then
    return nil, "security group '" .. v.detach .. "' is not attached to instance '" .. inst.id .. "'"
  end
  return ids
end

function ops.update_instance(state, req, ctx, id)
  local inst = find_instance(state, id)
  if not inst then return fail(404, "not_found", "instance '" .. id .. "' not found") end
  local body = req.json
  if not is_object(body) then return fail(400, "invalid_argument", "request body must be a JSON object") end
  local bad = unknown_field(body, { name = true, security_groups = true })
  if bad then return fail(400, "invalid_argument", "unknown field '" .. bad .. "'") end
  local err = check_text(body, "name", INFERRED.max_name_len)
  if err then return fail(400, "invalid_argument", err) end
  local ids
  if body.security_groups ~= nil then
    ids, err = new_attachment(state, inst, body.security_groups)
    if not ids then return fail(400, "invalid_argument", err) end
  end
  if type(body.name) == "string" then inst.name = body.name end
  if ids then inst.security_groups = ids end
  inst.updated_at = ctx.now()
  -- Instance updates are synchronous: the Terraform provider does not poll after them.
  return 200, { instance = render_instance(state, inst) }
end

-- Routes: pattern on the path after the prefix, then one op per method.
local routes = {
  { "^/security%-groups$", { GET = ops.list_groups, POST = ops.create_group } },
  { "^/security%-groups/([^/]+)$",
    { GET = ops.get_group, PATCH = ops.update_group, DELETE = ops.delete_group } },
  { "^/instances$", { GET = ops.list_instances } },
  { "^/instances/([^/]+)$", { GET = ops.get_instance, PATCH = ops.update_instance } },
}

---@param req table
---@return string|nil token from `Authorization: Bearer` (current) or `X-Auth-Token` (deprecated)
local function presented_token(req)
  local auth = req.headers["authorization"]
  if auth then return auth:match("^[Bb]earer%s+(%S+)%s*$") end
  return req.headers["x-auth-token"]
end

---@param state GenesisState
---@param req table
---@param ctx table
---@return integer status, table|string body, table|nil headers
function M.handle(state, req, ctx)
  local token = presented_token(req)
  if not token or token == "" then
    return fail(401, "unauthorized", "missing authentication: send Authorization: Bearer <token>")
  end
  if token ~= state.token then return fail(401, "unauthorized", "invalid authentication token") end
  for _, route in ipairs(routes) do
    local found, _, id = req.path:find(route[1])
    if found then
      local op = route[2][req.method]
      if not op then
        local allowed = {}
        for m in pairs(route[2]) do allowed[#allowed + 1] = m end
        table.sort(allowed)
        local status, body = fail(405, "method_not_allowed", "method " .. req.method .. " not allowed")
        return status, body, { Allow = table.concat(allowed, ", ") }
      end
      return op(state, req, ctx, id)
    end
  end
  return fail(404, "invalid_route", "Invalid route")
end

---Seeded demo account: one security group and one instance it is attached to.
---@param ctx table
---@return GenesisState
function M.new_state(ctx)
  local now = ctx.now()
  local group = {
    id = ctx.new_id("genesis-security-group"), name = "demo-ssh-web",
    description = "seeded demo group", is_internal = false, region = DEFAULT_REGION,
    status = "created", created_at = now, updated_at = now,
    rules = {
      { protocol = "tcp", direction = "ingress", port_range_min = 22, port_range_max = 22 },
      { protocol = "tcp", direction = "ingress", port_range_min = 443, port_range_max = 443 },
      { protocol = "icmp", direction = "ingress" },
      { protocol = "all", direction = "egress" },
    },
  }
  local instance = {
    id = ctx.new_id("genesis-instance"), name = "demo-instance", hostname = "demo-instance",
    type = "vcpu-4_memory-12g_nvidia-rtx-3080-1", status = "active", region = DEFAULT_REGION,
    security_groups = { group.id }, created_at = now, updated_at = now,
  }
  return { token = DEMO_TOKEN, groups = { group }, instances = { instance } }
end

---A fleet account (sim/sgsim/accounts.lua): the demo state under its own credentials, with
---`groups` copies of the demo group. Returns the state and {key = what account_key reads,
---credentials = profile values, groups = refs, source = the demo group's ref}.
---@param ctx table
---@param n integer
---@param groups integer
---@return table state, table account
function M.account(ctx, n, groups)
  local st = M.new_state(ctx)
  st.token = string.format("genesis-account-token-%08d", n)
  local demo = st.groups[1]
  local refs = { demo.name }
  for i = 2, groups do
    local g = ctx.json.decode(ctx.json.encode(demo))
    g.id, g.name = ctx.new_id("genesis-security-group"), demo.name .. "-" .. i
    st.groups[#st.groups + 1] = g
    refs[i] = g.name
  end
  return st, { key = st.token, credentials = { token = st.token }, groups = refs, source = demo.name }
end

M.account_key = presented_token

return M
