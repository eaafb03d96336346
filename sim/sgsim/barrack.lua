-- Barrack (barrack.ai) API emulator: per-instance security rules (legacy tier) and firewalls.
--
-- Only one Barrack API page is fully public (add instance security rule, see
-- ../shared/reference/genesis_barrack_hostup.md section 2). The rest follows the reference's
-- inference that Barrack wraps the Hyperstack API. EVERY guess is in the INFERRED table right
-- below and nowhere else; the code reads its paths, shapes and limits from there.

local sgsim = require "sgsim"
local is_object = sgsim.is_object
local is_array = sgsim.is_array
local JSON_NULL = require("cjson").null

local DEMO_KEY = "barrack-demo-key-0123456789abcdef"

-- [FACT] from the add-instance-security-rule page.
local DIRECTIONS = { ingress = true, egress = true }
local ETHERTYPES = { IPv4 = true, IPv6 = true }
local LEGACY_TIER = "legacy"
local RULE_FIELDS = { direction = true, protocol = true, ethertype = true, remote_ip_prefix = true,
  port_range_min = true, port_range_max = true }

--------------------------------------------------------------------------------------------------
-- INFERRED: the reference marks all of this unknown or inferred. Keep guesses here, only here.
--------------------------------------------------------------------------------------------------
local INFERRED = {
  -- Auth header is unknown (Apidog hides it); the two usual guesses are both accepted.
  auth = { bearer = "authorization", key = "x-api-key" },
  -- ErrorResponse fields are unknown: errors are the success envelope with success=false,
  -- `{success: false, message, request_id}` (built by error_envelope), for every status.
  -- Paths: only POST /instances/{id}/security-rules/ is [FACT]; the others mirror Hyperstack's
  -- (/core/firewalls, /firewall-rules, /update-attachments, sg-rules-protocols) under Barrack's
  -- own style (no /core, trailing slash). A path without its trailing slash answers 404.
  routes = {
    { "^/instances/$", { GET = "list_instances" } },
    { "^/instances/([^/]+)/$", { GET = "get_instance" } },
    { "^/instances/([^/]+)/security%-rules/$", { POST = "add_instance_rule" } },           -- [FACT]
    { "^/instances/([^/]+)/security%-rules/([^/]+)/$", { DELETE = "remove_instance_rule" } },
    { "^/instances/([^/]+)/firewalls/$", { GET = "instance_firewalls" } },
    { "^/firewalls/$", { GET = "list_firewalls", POST = "create_firewall" } },
    { "^/firewalls/protocols/$", { GET = "protocols" } },
    { "^/firewalls/available%-instances/$", { GET = "available_instances" } },
    { "^/firewalls/(%d+)/$", { GET = "get_firewall", DELETE = "delete_firewall" } },
    { "^/firewalls/(%d+)/firewall%-rules/$", { POST = "add_firewall_rule" } },
    { "^/firewalls/(%d+)/firewall%-rules/(%d+)/$", { DELETE = "remove_firewall_rule" } },
    { "^/firewalls/(%d+)/update%-attachments/$", { POST = "attach_firewall" } },
  },
  -- The page says tcp/udp/icmp for instance rules; firewalls are assumed to take the same set
  -- (Hyperstack would take more). "Get supported protocols" returns this list.
  protocols = { "tcp", "udp", "icmp" },
  -- Regions "Norway, Canada, or US" are Hyperstack's.
  regions = { ["NORWAY-1"] = true, ["CANADA-1"] = true, ["US-1"] = true },
  standard_tier = "standard",          -- the non-legacy TierEnum value
  running = "RUNNING",                 -- [FACT] the page's wording; other VM states are guesses
  -- Rules and attachments are not effective when the 200 comes back ("wait up to 10 minutes"):
  -- they read CREATING for the task duration, then ACTIVE (or ERROR).
  status = { pending = "CREATING", done = "ACTIVE", failed = "ERROR" },
  -- Add-rule refusals: the page lists only 400/401/404/500, so a duplicate instance rule is a 400;
  -- a duplicate firewall rule is Hyperstack's 409, as is deleting a firewall still attached.
  duplicate_instance_rule_status = 400,
  duplicate_firewall_rule_status = 409,
  -- Firewalls attach to non-legacy instances of their own region; the body names Barrack
  -- instance ids and replaces the whole attachment list (Hyperstack's update-attachments).
  attach_field = "instance_ids",
  max_name_len = 255,
  max_description_len = 1024,
  max_rules = 200,
  page_size_default = 20, page_size_max = 100,
  messages = {
    rule_added = "Security rule added successfully",               -- [FACT]
    rule_removed = "Security rule removed successfully",
    firewall_created = "Firewall created successfully",
    firewall_deleted = "Firewall deleted successfully",
    firewall_rule_added = "Firewall rule added successfully",
    firewall_rule_removed = "Firewall rule removed successfully",
    attachments_updated = "Firewall attachments updated successfully",
  },
}
--------------------------------------------------------------------------------------------------

---@class BarrackRule
---@field id string|integer "sg-rule-N" on instances ([FACT] example), integers on firewalls
---@field direction string
---@field protocol string
---@field ethertype string
---@field remote_ip_prefix string
---@field port_range_min integer|nil
---@field port_range_max integer|nil
---@field created_at number
---@field task BarrackTask|nil nil once settled (seeded rules)

---@class BarrackTask
---@field started number
---@field fails boolean
---@field ended boolean? seen ended once (a later hold_tasks does not make it pending again)

---@class BarrackInstance
---@field instance_id string "BRK-123456D" style
---@field name string
---@field status string
---@field tier string
---@field region string
---@field security_rules BarrackRule[]

---@class BarrackAttachment
---@field id integer
---@field instance_id string
---@field created_at number
---@field task BarrackTask|nil

---@class BarrackFirewall
---@field id integer
---@field name string
---@field description string
---@field region string
---@field created_at number
---@field rules BarrackRule[]
---@field attachments BarrackAttachment[]

---@class BarrackState
---@field api_key string
---@field instances BarrackInstance[]
---@field firewalls BarrackFirewall[]
---@field next_id integer one counter for every numeric id and "sg-rule-N"

local M = { name = "barrack", prefix = "/barrack/api", demo_target = "web" }

M.credentials_banner = "Barrack: BARRACK_API_KEY=" .. DEMO_KEY
  .. " (Authorization: Bearer or X-API-Key); instances BRK-100001A (legacy), BRK-100003C (standard)"

---@param base_url string
---@return table<string,string>
function M.env(base_url)
  return { SGRUN_BARRACK_URL = base_url .. M.prefix, BARRACK_API_KEY = DEMO_KEY }
end

---An 8-character request id like the documented "i7j8k9l0".
---@param rand fun(): number
---@return string
local function request_id(rand)
  local alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
  local out = {}
  for i = 1, 8 do
    local k = math.floor(rand() * #alphabet) + 1
    out[i] = alphabet:sub(k, k)
  end
  return table.concat(out)
end

---The error envelope (shape [INFERRED], see the INFERRED block).
---@param message string
---@param rand fun(): number
---@return table
local function error_envelope(message, rand)
  return { success = false, message = message, request_id = request_id(rand) }
end

---For the core's injected faults (no seeded random source there).
---@param _ integer HTTP status (the body does not repeat it)
---@param message string
---@return table
function M.error_body(_, message)
  return error_envelope(message, math.random)
end

---@return integer, table
local function fail(ctx, status, message)
  return status, error_envelope(message, ctx.random)
end

---Adds the envelope fields every success response carries.
---@return integer, table
local function ok(ctx, body)
  body.success = true
  body.request_id = request_id(ctx.random)
  return 200, body
end

---@param t number epoch seconds
---@return string
local function iso(t)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t))
end

---@return BarrackTask
local function new_task(ctx)
  return { started = ctx.now(), fails = ctx.random() < (ctx.task_error_rate or 0) }
end

---Status of a rule or attachment, derived from the clock: async work is resolved lazily.
---@param item {task: BarrackTask|nil}
---@return string
local function status_of(ctx, item)
  local t, s = item.task, INFERRED.status
  if not t then return s.done end
  if not t.ended then
    if ctx.tasks_held or ctx.now() < t.started + (ctx.task_duration or 0) then return s.pending end
    t.ended = true -- seen ended: holding tasks later does not make it pending again
  end
  return t.fails and s.failed or s.done
end

---@param r BarrackRule
---@param with_state boolean add status and created_at (the documented add response has neither)
---@return table
local function render_rule(ctx, r, with_state)
  local out = {
    id = r.id, direction = r.direction, protocol = r.protocol, ethertype = r.ethertype,
    remote_ip_prefix = r.remote_ip_prefix,
    port_range_min = r.port_range_min or JSON_NULL, port_range_max = r.port_range_max or JSON_NULL,
  }
  if with_state then out.status, out.created_at = status_of(ctx, r), iso(r.created_at) end
  return out
end

---@return table
local function render_rules(ctx, rules)
  local out = {}
  for i, r in ipairs(rules) do out[i] = render_rule(ctx, r, true) end
  return out
end

---@param inst BarrackInstance
---@return table
local function render_instance(ctx, inst)
  return { instance_id = inst.instance_id, name = inst.name, status = inst.status, tier = inst.tier,
    region = inst.region, security_rules = render_rules(ctx, inst.security_rules) }
end

---@return BarrackInstance|nil
local function find_instance(state, id)
  for _, inst in ipairs(state.instances) do
    if inst.instance_id == id then return inst end
  end
end

---@return BarrackFirewall|nil, integer|nil
local function find_firewall(state, id)
  local n = math.tointeger(tonumber(id))
  for i, fw in ipairs(state.firewalls) do
    if fw.id == n then return fw, i end
  end
end

---@param fw BarrackFirewall
---@return table
local function render_firewall(ctx, state, fw)
  local attachments = {}
  for i, a in ipairs(fw.attachments) do
    local inst = find_instance(state, a.instance_id) or {}
    attachments[i] = { id = a.id, status = status_of(ctx, a), created_at = iso(a.created_at),
      instance = { instance_id = a.instance_id, name = inst.name, status = inst.status } }
  end
  return {
    id = fw.id, name = fw.name, description = fw.description, region = fw.region,
    environment = { name = "default-" .. fw.region, region = fw.region },
    created_at = iso(fw.created_at), rules = render_rules(ctx, fw.rules),
    attachments = attachments,
  }
end

---@return integer
local function next_id(state)
  -- A state loaded from a JSON dump holds floats.
  state.next_id = math.tointeger(state.next_id) + 1
  return state.next_id
end

---Validates a rule body (VMSecurityRuleRequest / AddFirewallRuleRequest, the same 6 fields).
---@return BarrackRule|nil rule, string|nil error
local function parse_rule(body)
  if not is_object(body) then return nil, "request body must be a JSON object" end
  for k in pairs(body) do
    if not RULE_FIELDS[k] then return nil, "unknown field '" .. tostring(k) .. "'" end
  end
  if type(body.direction) ~= "string" or not DIRECTIONS[body.direction] then
    return nil, "direction must be one of: ingress, egress"
  end
  local protocol_ok = false
  for _, p in ipairs(INFERRED.protocols) do protocol_ok = protocol_ok or body.protocol == p end
  if not protocol_ok then
    return nil, "protocol must be one of: " .. table.concat(INFERRED.protocols, ", ")
  end
  if type(body.ethertype) ~= "string" or not ETHERTYPES[body.ethertype] then
    return nil, "ethertype must be one of: IPv4, IPv6"
  end
  if type(body.remote_ip_prefix) ~= "string" or body.remote_ip_prefix == "" then
    return nil, "remote_ip_prefix is required (use 0.0.0.0/0 or ::/0 for any address)"
  end
  -- the emulator's own parser, not the client's: the two must not agree by construction. Host
  -- bits are taken as sent (nothing of Barrack's says otherwise).
  local net, why = sgsim.parse_cidr(body.remote_ip_prefix, true)
  if not net then return nil, "remote_ip_prefix " .. why end
  if (net.family == 6 and "IPv6" or "IPv4") ~= body.ethertype then
    return nil, "remote_ip_prefix " .. body.remote_ip_prefix .. " is not an " .. body.ethertype
      .. " network"
  end
  local rule = { direction = body.direction, protocol = body.protocol, ethertype = body.ethertype,
    remote_ip_prefix = body.remote_ip_prefix }
  for _, f in ipairs({ "port_range_min", "port_range_max" }) do
    local v = body[f]
    -- ports are omitted for all ports, never null (Hyperstack's rule)
    if v ~= nil then
      local n = math.type(v) == "integer" and v
      if not n or n < 1 or n > 65535 then return nil, f .. " must be an integer between 1 and 65535" end
      if body.protocol == "icmp" then return nil, f .. " is not allowed for protocol icmp" end
      rule[f] = n
    end
  end
  if (rule.port_range_min == nil) ~= (rule.port_range_max == nil) then
    return nil, "port_range_min and port_range_max must be given together (omit both for all ports)"
  end
  if rule.port_range_min and rule.port_range_min > rule.port_range_max then
    return nil, "port_range_min must not be greater than port_range_max"
  end
  return rule
end

---@return boolean
local function has_same_rule(rules, r)
  for _, x in ipairs(rules) do
    if x.direction == r.direction and x.protocol == r.protocol and x.ethertype == r.ethertype
      and x.remote_ip_prefix == r.remote_ip_prefix and x.port_range_min == r.port_range_min
      and x.port_range_max == r.port_range_max then
      return true
    end
  end
  return false
end

---@return string|nil error
local function check_text(body, field, max, required)
  local v = body[field]
  if v == nil then return required and (field .. " is required") or nil end
  if type(v) ~= "string" then return field .. " must be a string" .. (v == JSON_NULL and ", not null" or "") end
  if required and v == "" then return field .. " must not be empty" end
  if sgsim.chars(v) > max then return field .. " must be at most " .. max .. " characters" end
end

---@alias BarrackOp fun(state: BarrackState, req: table, ctx: table, a: string|nil, b: string|nil): integer, table
---@type table<string, BarrackOp>
local ops = {}

function ops.list_instances(state, _, ctx)
  local out = {}
  for i, inst in ipairs(state.instances) do out[i] = render_instance(ctx, inst) end
  return ok(ctx, { instances = out })
end

function ops.get_instance(state, _, ctx, id)
  local inst = find_instance(state, id)
  if not inst then return fail(ctx, 404, "Instance " .. id .. " not found") end
  return ok(ctx, { instance = render_instance(ctx, inst) })
end

function ops.add_instance_rule(state, req, ctx, id)
  local inst = find_instance(state, id)
  if not inst then return fail(ctx, 404, "Instance " .. id .. " not found") end
  local rule, err = parse_rule(req.json)
  if not rule then return fail(ctx, 400, err) end
  if inst.tier ~= LEGACY_TIER then
    return fail(ctx, 400, "Instance security rules are only available for legacy tier instances; "
      .. "use a firewall for " .. inst.tier .. " tier instance " .. id)
  end
  if inst.status ~= INFERRED.running then
    return fail(ctx, 400, "Instance must be in " .. INFERRED.running .. " state (it is "
      .. inst.status .. ")")
  end
  if has_same_rule(inst.security_rules, rule) then
    return fail(ctx, INFERRED.duplicate_instance_rule_status, "An identical security rule already exists")
  end
  if #inst.security_rules >= INFERRED.max_rules then
    return fail(ctx, 400, "At most " .. INFERRED.max_rules .. " security rules per instance")
  end
  rule.id = "sg-rule-" .. next_id(state)
  rule.created_at, rule.task = ctx.now(), new_task(ctx)
  inst.security_rules[#inst.security_rules + 1] = rule
  return ok(ctx, { message = INFERRED.messages.rule_added, security_rule = render_rule(ctx, rule, false),
    instance_id = inst.instance_id, tier = inst.tier })
end

function ops.remove_instance_rule(state, _, ctx, id, rule_id)
  local inst = find_instance(state, id)
  if not inst then return fail(ctx, 404, "Instance " .. id .. " not found") end
  for i, r in ipairs(inst.security_rules) do
    if r.id == rule_id then
      table.remove(inst.security_rules, i)
      return ok(ctx, { message = INFERRED.messages.rule_removed, instance_id = inst.instance_id,
        tier = inst.tier })
    end
  end
  return fail(ctx, 404, "Security rule " .. rule_id .. " not found on instance " .. id)
end

function ops.instance_firewalls(state, _, ctx, id)
  local inst = find_instance(state, id)
  if not inst then return fail(ctx, 404, "Instance " .. id .. " not found") end
  local out = {}
  for _, fw in ipairs(state.firewalls) do
    for _, a in ipairs(fw.attachments) do
      if a.instance_id == id then
        out[#out + 1] = { id = fw.id, name = fw.name, status = status_of(ctx, a) }
      end
    end
  end
  return ok(ctx, { instance_id = id, firewalls = out })
end

---@return integer|nil, string|nil
local function positive_arg(s, name, default, max)
  if s == nil or s == "" then return default end
  local n = math.tointeger(tonumber(s))
  if not n or n < 1 or (max and n > max) then
    return nil, name .. " must be an integer between 1 and " .. (max or "2^63")
  end
  return n
end

function ops.list_firewalls(state, req, ctx)
  local page, err = positive_arg(req.args.page, "page", 1)
  if not page then return fail(ctx, 400, err) end
  local size
  size, err = positive_arg(req.args.page_size, "page_size", INFERRED.page_size_default,
    INFERRED.page_size_max)
  if not size then return fail(ctx, 400, err) end
  local out = {}
  -- Compare before multiplying: a huge page number must not overflow into a negative index.
  if page - 1 < #state.firewalls // size + 1 then
    for i = (page - 1) * size + 1, math.min(page * size, #state.firewalls) do
      out[#out + 1] = render_firewall(ctx, state, state.firewalls[i])
    end
  end
  return ok(ctx, { firewalls = out,
    pagination = { page = page, page_size = size, count = #state.firewalls } })
end

function ops.get_firewall(state, _, ctx, id)
  local fw = find_firewall(state, id)
  if not fw then return fail(ctx, 404, "Firewall " .. id .. " not found") end
  return ok(ctx, { firewall = render_firewall(ctx, state, fw) })
end

function ops.create_firewall(state, req, ctx)
  local body = req.json
  if not is_object(body) then return fail(ctx, 400, "request body must be a JSON object") end
  for k in pairs(body) do
    if k ~= "name" and k ~= "description" and k ~= "region" then
      return fail(ctx, 400, "unknown field '" .. tostring(k) .. "'")
    end
  end
  local err = check_text(body, "name", INFERRED.max_name_len, true)
    or check_text(body, "description", INFERRED.max_description_len)
  if err then return fail(ctx, 400, err) end
  if type(body.region) ~= "string" or not INFERRED.regions[body.region] then
    return fail(ctx, 400, "region must be one of: CANADA-1, NORWAY-1, US-1")
  end
  local fw = { id = next_id(state), name = body.name, region = body.region, created_at = ctx.now(),
    description = type(body.description) == "string" and body.description or "",
    rules = {}, attachments = {} }
  state.firewalls[#state.firewalls + 1] = fw
  return ok(ctx, { message = INFERRED.messages.firewall_created,
    firewall = render_firewall(ctx, state, fw) })
end

function ops.delete_firewall(state, _, ctx, id)
  local fw, i = find_firewall(state, id)
  if not fw then return fail(ctx, 404, "Firewall " .. id .. " not found") end
  if #fw.attachments > 0 then
    return fail(ctx, 409, "Firewall " .. id .. " is attached to " .. #fw.attachments
      .. " instance(s); detach it before deleting")
  end
  table.remove(state.firewalls, i)
  return ok(ctx, { message = INFERRED.messages.firewall_deleted })
end

function ops.add_firewall_rule(state, req, ctx, id)
  local fw = find_firewall(state, id)
  if not fw then return fail(ctx, 404, "Firewall " .. id .. " not found") end
  local rule, err = parse_rule(req.json)
  if not rule then return fail(ctx, 400, err) end
  if has_same_rule(fw.rules, rule) then
    return fail(ctx, INFERRED.duplicate_firewall_rule_status, "An identical firewall rule already exists")
  end
  if #fw.rules >= INFERRED.max_rules then
    return fail(ctx, 400, "At most " .. INFERRED.max_rules .. " rules per firewall")
  end
  rule.id = next_id(state)
  rule.created_at, rule.task = ctx.now(), new_task(ctx)
  fw.rules[#fw.rules + 1] = rule
  return ok(ctx, { message = INFERRED.messages.firewall_rule_added, firewall_id = fw.id,
    firewall_rule = render_rule(ctx, rule, true) })
end

function ops.remove_firewall_rule(state, _, ctx, id, rule_id)
  local fw = find_firewall(state, id)
  if not fw then return fail(ctx, 404, "Firewall " .. id .. " not found") end
  local n = math.tointeger(tonumber(rule_id))
  for i, r in ipairs(fw.rules) do
    if r.id == n then
      table.remove(fw.rules, i)
      return ok(ctx, { message = INFERRED.messages.firewall_rule_removed, firewall_id = fw.id })
    end
  end
  return fail(ctx, 404, "Firewall rule " .. rule_id .. " not found in firewall " .. id)
end

---@return string|nil why the instance cannot take this firewall
local function not_attachable(inst, fw)
  if inst.tier == LEGACY_TIER then
    return "instance " .. inst.instance_id .. " is a legacy tier instance: use instance security rules"
  end
  if inst.region ~= fw.region then
    return "instance " .. inst.instance_id .. " is in " .. inst.region .. ", the firewall in " .. fw.region
  end
end

function ops.attach_firewall(state, req, ctx, id)
  local fw = find_firewall(state, id)
  if not fw then return fail(ctx, 404, "Firewall " .. id .. " not found") end
  local body, field = req.json, INFERRED.attach_field
  if not is_object(body) then return fail(ctx, 400, "request body must be a JSON object") end
  for k in pairs(body) do
    if k ~= field then return fail(ctx, 400, "unknown field '" .. tostring(k) .. "'") end
  end
  local ids = body[field]
  if not is_array(ids) then
    return fail(ctx, 400, field .. " must be an array of instance ids")
  end
  local kept, wanted = {}, {}
  for i, inst_id in ipairs(ids) do
    local inst = type(inst_id) == "string" and find_instance(state, inst_id)
    if not inst then
      return fail(ctx, 404, field .. "[" .. (i - 1) .. "]: instance " .. tostring(inst_id) .. " not found")
    end
    local why = not_attachable(inst, fw)
    if why then return fail(ctx, 400, why) end
    wanted[inst_id] = true
  end
  -- Replace semantics: instances left out are detached; those already attached keep their state.
  for _, a in ipairs(fw.attachments) do
    if wanted[a.instance_id] then kept[#kept + 1], wanted[a.instance_id] = a, nil end
  end
  for _, inst_id in ipairs(ids) do
    if wanted[inst_id] then
      kept[#kept + 1] = { id = next_id(state), instance_id = inst_id, created_at = ctx.now(),
        task = new_task(ctx) }
      wanted[inst_id] = nil
    end
  end
  fw.attachments = kept
  return ok(ctx, { message = INFERRED.messages.attachments_updated,
    firewall = render_firewall(ctx, state, fw) })
end

function ops.protocols(_, _, ctx)
  local out = {}
  for i, p in ipairs(INFERRED.protocols) do out[i] = p end
  return ok(ctx, { protocols = out })
end

function ops.available_instances(state, req, ctx)
  local region = req.args.region
  local out = {}
  for _, inst in ipairs(state.instances) do
    if inst.tier ~= LEGACY_TIER and (not region or region == "" or inst.region == region) then
      out[#out + 1] = { instance_id = inst.instance_id, name = inst.name, status = inst.status,
        region = inst.region }
    end
  end
  return ok(ctx, { instances = out })
end

---@return string|nil key presented by `Authorization: Bearer` or `X-API-Key`
local function presented_key(req)
  local auth = req.headers[INFERRED.auth.bearer]
  if auth then return auth:match("^[Bb]earer%s+(%S+)%s*$") end
  return req.headers[INFERRED.auth.key]
end

---@param state BarrackState
---@param req table
---@param ctx table
---@return integer status, table body, table|nil headers
function M.handle(state, req, ctx)
  local key = presented_key(req)
  if not key or key == "" then return fail(ctx, 401, "Authentication credentials were not provided") end
  if key ~= state.api_key then return fail(ctx, 401, "Invalid API key") end
  local function route(path)
    for _, r in ipairs(INFERRED.routes) do
      local found, _, a, b = path:find(r[1])
      if found then return r[2], a, b end
    end
  end
  local methods, a, b = route(req.path)
  if not methods then
    if req.path:sub(-1) ~= "/" and route(req.path .. "/") then
      return fail(ctx, 404, "Not found: Barrack API paths end with a slash (" .. req.path .. "/)")
    end
    return fail(ctx, 404, "Not found")
  end
  local name = methods[req.method]
  if not name then
    local allowed = {}
    for m in pairs(methods) do allowed[#allowed + 1] = m end
    table.sort(allowed)
    local status, body = fail(ctx, 405, "Method " .. req.method .. " not allowed")
    return status, body, { Allow = table.concat(allowed, ", ") }
  end
  return ops[name](state, req, ctx, a, b)
end

---Seeded demo account: a legacy RUNNING instance with one rule, a stopped legacy instance, and
---a standard-tier instance with a firewall attached.
---@param ctx table
---@return BarrackState
function M.new_state(ctx)
  local now = ctx.now()
  local region = "NORWAY-1"
  return {
    api_key = DEMO_KEY,
    next_id = 100,
    instances = {
      { instance_id = "BRK-100001A", name = "demo-legacy", status = INFERRED.running,
        tier = LEGACY_TIER, region = region, security_rules = {
          { id = "sg-rule-1", direction = "ingress", protocol = "tcp", ethertype = "IPv4",
            remote_ip_prefix = "0.0.0.0/0", port_range_min = 22, port_range_max = 22, created_at = now },
        } },
      { instance_id = "BRK-100002B", name = "demo-legacy-stopped", status = "STOPPED",
        tier = LEGACY_TIER, region = region, security_rules = {} },
      { instance_id = "BRK-100003C", name = "demo-standard", status = INFERRED.running,
        tier = INFERRED.standard_tier, region = region, security_rules = {} },
    },
    firewalls = {
      { id = 1, name = "demo-firewall", description = "seeded demo firewall", region = region,
        created_at = now,
        rules = {
          { id = 2, direction = "ingress", protocol = "tcp", ethertype = "IPv4",
            remote_ip_prefix = "0.0.0.0/0", port_range_min = 22, port_range_max = 22, created_at = now },
        },
        attachments = { { id = 3, instance_id = "BRK-100003C", created_at = now } } },
    },
  }
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
  st.api_key = string.format("barrack-account-key-%08d", n)
  local demo = st.firewalls[1]
  local refs = { demo.name }
  for i = 2, groups do
    local f = ctx.json.decode(ctx.json.encode(demo))
    f.id, f.name, f.attachments = next_id(st), demo.name .. "-" .. i, {}
    for _, r in ipairs(f.rules) do r.id = next_id(st) end
    st.firewalls[#st.firewalls + 1] = f
    refs[i] = f.name
  end
  return st, { key = st.api_key, credentials = { api_key = st.api_key }, groups = refs, source = demo.name }
end

M.account_key = presented_key

return M
