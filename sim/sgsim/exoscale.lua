-- Exoscale API v2 emulator: security groups, their rules, external sources, instance attachment
-- and async operations, faithful to ../shared/reference/exoscale.md.
--
-- Every request must carry a valid EXO2-HMAC-SHA256 signature over the path as sent on the wire
-- (prefix included: /exoscale/v2/...), verified with the same C signer the client uses
-- (require "_sg.exoscale"). Mutations answer 200 with an operation that stays "pending" for the
-- task duration; its effect on the state is applied when it completes (advance()), so a
-- security group shows a new rule only once the operation reads "success".

local sgsim = require "sgsim"
local is_int = sgsim.is_int
local signer = require "_sg.exoscale"

---@class ExoRule
---@field id string
---@field ["flow-direction"] string
---@field protocol string
---@field ["start-port"] integer|nil
---@field ["end-port"] integer|nil
---@field network string|nil
---@field ["security-group"] {id: string, name: string, visibility: string}|nil
---@field icmp {type: integer, code: integer}|nil
---@field description string|nil

---@class ExoGroup
---@field id string
---@field name string
---@field description string
---@field ["external-sources"] string[]
---@field rules ExoRule[]

---@class ExoOperation
---@field id string
---@field created_at number
---@field done_at number
---@field outcome "success"|"failure"
---@field state "pending"|"success"|"failure"
---@field reason string|nil
---@field message string|nil
---@field reference {id: string, link: string, command: string}
---@field action table what to apply on success

---@class ExoState
---@field credentials table<string,string> API key -> secret
---@field groups table<string,ExoGroup> private groups by id
---@field group_order string[] ids in creation order (the list order)
---@field public_groups table<string,ExoGroup> Exoscale-managed public groups by id
---@field instances table<string,{id: string, name: string, state: string, ["security-groups"]: string[]}>
---@field instance_order string[]
---@field operations table<string,ExoOperation>
---@field pending string[] ids of operations not yet applied, oldest first

local DEMO_KEY = "EXO" .. "5167a0de5167a0de5167a0de"
local DEMO_SECRET = "sgrun-sim-exoscale-demo-secret-00000000000"

local PROTOCOLS = { tcp = true, udp = true, icmp = true, icmpv6 = true, esp = true, ah = true,
  gre = true, ipip = true, all = true } -- `all` only in the newest spec (§3.3); accepted
local PORT_PROTOCOLS = { tcp = true, udp = true }
local ICMP_PROTOCOLS = { icmp = true, icmpv6 = true }
local RULE_FIELDS = { ["flow-direction"] = true, protocol = true, ["start-port"] = true,
  ["end-port"] = true, network = true, ["security-group"] = true, icmp = true, description = true }

------------------------------------------------------------------------------------------------
-- INFERRED (reference/exoscale.md does not pin these down; kept here and only here):
-- * statuses and texts of refusals: the messages are the ones observed in issues (§5.1, §6), the
--   status for conflicts is 409 (EGO maps every non-404 4xx to "invalid request: <message>");
-- * signature failures are 403 {"message": ...} (PYX: auth errors are 403), an expired request
--   says so; `expires` has no upper bound (none is documented);
-- * ports are required for tcp/udp and refused for other protocols; icmp only for icmp/icmpv6,
--   type/code default to -1 (any) when the icmp object or one of its fields is left out;
-- * operation reference for every call on a group, attach/detach included: the group
--   (link /v2/security-group/<id>, command get-security-group, §4.1);
-- * a failed operation (task_error knob) reads state "failure", reason "fault";
-- * deleting an already-deleted group or rule is 404. A duplicate rule, attaching twice,
--   detaching a group that is not attached, adding a source twice and removing an absent source
--   are accepted (200, an operation) and the operation ends in state "failure", reason
--   "conflict": the vendor reports them there (reference/exoscale.md: "A 200 submission can
--   still end with state: failure"), so a client that does not wait for the operation is caught.
--   An operation whose group, rule or instance is gone by the time it runs (a second delete
--   accepted while the first was pending) ends with reason "not-found", from the same enum.
local INFERRED = {
  conflict_status = 409,
  auth_status = 403,
  msg_bad_signature = "Invalid request signature",
  msg_expired = "Request expired",
  msg_name_in_use = "Security Group name is already in use",
  msg_in_use = "Cannot delete group when it's in use by virtual machines",
  msg_referenced = "conflict",
  msg_duplicate_rule = "No new rule would be created: an identical rule exists",
  failure_reason = "fault",
}

local M = { name = "exoscale", prefix = "/exoscale/v2", demo_target = "web" }

M.credentials_banner = string.format(
  "Exoscale: EXOSCALE_API_KEY=%s EXOSCALE_API_SECRET=%s (EXO2-HMAC-SHA256, path signed with the /exoscale/v2 prefix)",
  DEMO_KEY, DEMO_SECRET)

---@param base_url string
---@return table<string,string>
function M.env(base_url)
  return { SGRUN_EXOSCALE_URL = base_url .. M.prefix, EXOSCALE_API_KEY = DEMO_KEY,
    EXOSCALE_API_SECRET = DEMO_SECRET }
end

---Exoscale's classic error body (§5.1).
---@param status integer
---@param message string
---@return table
function M.error_body(status, message)
  local _ = status
  return { message = message }
end

---@return integer status, table body
local function fail(status, message)
  return status, M.error_body(status, message)
end

------------------------------------------------------------------------------------------------
-- Demo data.

---@param ctx table
---@param spec table
---@return ExoRule
local function demo_rule(ctx, spec)
  spec.id = ctx.new_id("exoscale-rule")
  return spec
end

---@param ctx table
---@return ExoState
function M.new_state(ctx)
  local st = { credentials = { [DEMO_KEY] = DEMO_SECRET }, groups = {}, group_order = {},
    public_groups = {}, instances = {}, instance_order = {}, operations = {}, pending = {} }
  local function add_group(g)
    st.groups[g.id] = g
    st.group_order[#st.group_order + 1] = g.id
    return g
  end
  local web = add_group({ id = ctx.new_id("exoscale-sg"), name = "web",
    description = "Demo web servers", ["external-sources"] = {}, rules = {} })
  web.rules = {
    demo_rule(ctx, { ["flow-direction"] = "ingress", protocol = "tcp", ["start-port"] = 22,
      ["end-port"] = 22, network = "0.0.0.0/0", description = "ssh" }),
    demo_rule(ctx, { ["flow-direction"] = "ingress", protocol = "tcp", ["start-port"] = 80,
      ["end-port"] = 80, network = "0.0.0.0/0", description = "http" }),
    demo_rule(ctx, { ["flow-direction"] = "ingress", protocol = "tcp", ["start-port"] = 443,
      ["end-port"] = 443, network = "0.0.0.0/0", description = "https" }),
    demo_rule(ctx, { ["flow-direction"] = "ingress", protocol = "tcp", ["start-port"] = 443,
      ["end-port"] = 443, network = "::/0", description = "https (IPv6)" }),
    demo_rule(ctx, { ["flow-direction"] = "ingress", protocol = "icmp", network = "0.0.0.0/0",
      icmp = { type = 8, code = 0 }, description = "ping" }),
  }
  local db = add_group({ id = ctx.new_id("exoscale-sg"), name = "db",
    description = "Demo database, reachable from web", ["external-sources"] = {}, rules = {} })
  db.rules = {
    demo_rule(ctx, { ["flow-direction"] = "ingress", protocol = "tcp", ["start-port"] = 5432,
      ["end-port"] = 5432, ["security-group"] = { id = web.id, name = "web", visibility = "private" },
      description = "postgres from web" }),
  }
  for _, name in ipairs({ "public-nlb-healthcheck-sources", "public-sos-endpoints",
    "public-sks-apiservers" }) do
    local id = ctx.new_id("exoscale-public-sg")
    st.public_groups[id] = { id = id, name = name, description = "Exoscale-managed public group",
      ["external-sources"] = { "194.182.160.0/19" }, rules = {} }
  end
  local function add_instance(name, groups)
    local id = ctx.new_id("exoscale-instance")
    st.instances[id] = { id = id, name = name, state = "running", ["security-groups"] = groups }
    st.instance_order[#st.instance_order + 1] = id
  end
  add_instance("web-1", { web.id })
  add_instance("web-2", { web.id })
  add_instance("db-1", { db.id })
  add_instance("spare-1", {})
  return st
end

------------------------------------------------------------------------------------------------
-- Signature verification (§1).

---Checks the Authorization header; returns nil when the request may proceed.
---@param st ExoState
---@param req table
---@return integer|nil status, table|nil body
local function authenticate(st, req)
  local h = req.headers["authorization"]
  if not h or h == "" then
    return fail(INFERRED.auth_status, "Missing Authorization header (EXO2-HMAC-SHA256 signature required)")
  end
  local rest = h:match("^EXO2%-HMAC%-SHA256 (.*)$")
  if not rest then return fail(INFERRED.auth_status, "Unsupported authorization scheme (expected EXO2-HMAC-SHA256)") end
  -- The documented grammar, exactly (reference/exoscale.md §1): credential,
  -- [signed-query-args,] expires, signature, in that order, nothing else, no spaces.
  local f, keys = {}, {}
  for item in (rest .. ","):gmatch("([^,]*),") do
    local k, v = item:match("^([%w%-]+)=(%S*)$")
    if not k or f[k] then return fail(INFERRED.auth_status, "Malformed Authorization header") end
    f[k] = v
    keys[#keys + 1] = k
  end
  local order = table.concat(keys, ",")
  if order ~= "credential,expires,signature" and order ~= "credential,signed-query-args,expires,signature" then
    return fail(INFERRED.auth_status, "Malformed Authorization header: expected credential=,"
      .. "[signed-query-args=,]expires=,signature= in this order")
  end
  local secret = st.credentials[f.credential]
  if not secret then return fail(INFERRED.auth_status, "Invalid API key") end
  local expires = f.expires:match("^%d+$") and math.tointeger(tonumber(f.expires))
  if not expires then return fail(INFERRED.auth_status, "Malformed Authorization header: expires") end
  if expires < req.now then return fail(INFERRED.auth_status, INFERRED.msg_expired) end
  local ok, expected = pcall(signer.sign, { method = req.method, path = req.wire_path,
    query = req.query, body = req.body, key = f.credential, secret = secret, expires = expires })
  if not ok then return fail(INFERRED.auth_status, INFERRED.msg_bad_signature) end
  local want_sig = expected:match("signature=(.*)$")
  local want_args = expected:match("signed%-query%-args=([^,]*)") or ""
  if f.signature ~= want_sig or (f["signed-query-args"] or "") ~= want_args then
    return fail(INFERRED.auth_status, INFERRED.msg_bad_signature)
  end
  return nil
end

------------------------------------------------------------------------------------------------
-- Views.

---@param r ExoRule
---@return table
local function rule_view(r)
  local out = {}
  for k, v in pairs(r) do out[k] = v end
  return out
end

---@param g ExoGroup
---@return table
local function group_view(g)
  local rules = {}
  for i, r in ipairs(g.rules or {}) do rules[i] = rule_view(r) end
  local out = { id = g.id, name = g.name, ["external-sources"] = g["external-sources"] or {},
    rules = rules }
  if g.description and g.description ~= "" then out.description = g.description end
  return out
end

---@param op ExoOperation
---@return table
local function op_view(op)
  local out = { id = op.id, state = op.state, reference = op.reference }
  if op.reason then out.reason = op.reason end
  if op.message then out.message = op.message end
  return out
end

---@param st ExoState
---@return table
local function instance_view(st, inst)
  local groups = {}
  for i, id in ipairs(inst["security-groups"] or {}) do groups[i] = { id = id } end
  local _ = st
  return { id = inst.id, name = inst.name, state = inst.state, ["security-groups"] = groups }
end

------------------------------------------------------------------------------------------------
-- Operations: created pending, applied lazily when their time has come.

local apply_action -- forward

---@param st ExoState
---@param ctx table
---@param group_id string
---@param action table
---@return integer status, table body
local function new_operation(st, ctx, group_id, action)
  local now = ctx.now()
  local op = {
    id = ctx.new_id("exoscale-operation"),
    created_at = now, done_at = now + (ctx.task_duration or 0),
    outcome = (ctx.random() < (ctx.task_error_rate or 0)) and "failure" or "success",
    state = "pending",
    reference = { id = group_id, link = "/v2/security-group/" .. group_id,
      command = "get-security-group" },
    action = action,
  }
  st.operations[op.id] = op
  st.pending[#st.pending + 1] = op.id
  M.advance(st, ctx) -- a zero task duration completes at once
  return 200, op_view(op)
end

---Applies every pending operation whose time has come, oldest first.
---@param st ExoState
---@param ctx table
function M.advance(st, ctx)
  local now = ctx.now()
  local keep = {}
  for _, id in ipairs(st.pending or {}) do
    local op = st.operations[id]
    if op and op.state == "pending" then
      if not ctx.tasks_held and now >= op.done_at then
        if op.outcome == "failure" then
          op.state, op.reason = "failure", INFERRED.failure_reason
          op.message = "operation failed (simulated by the sgrun sim task_error knob)"
        else
          local err, reason = apply_action(st, op.action)
          if err then
            op.state, op.reason, op.message = "failure", reason or "conflict", err
          else
            op.state = "success"
          end
        end
      else
        keep[#keep + 1] = id
      end
    end
  end
  st.pending = keep
end

---@param st ExoState
---@param id string
---@return ExoGroup|nil
local function find_group(st, id)
  return st.groups[id]
end

---Rule identity for duplicate detection: everything but id and description.
---@param r table
---@return string
local function rule_key(r)
  local sg = r["security-group"]
  local icmp = r.icmp
  local function n(v) return v == nil and "" or tostring(math.tointeger(v) or v) end
  return table.concat({ r["flow-direction"], r.protocol, n(r["start-port"]), n(r["end-port"]),
    r.network or "", sg and sg.id or "", icmp and (n(icmp.type) .. "/" .. n(icmp.code)) or "" }, "|")
end

---@param st ExoState
---@param action table
---@return string|nil err why it could not be applied
---@return string|nil reason the operation's failure reason when not "conflict"
function apply_action(st, action)
  local kind = action.kind
  if kind == "create_group" then
    for _, g in pairs(st.groups) do
      if g.name == action.group.name then return INFERRED.msg_name_in_use end
    end
    st.groups[action.group.id] = action.group
    st.group_order[#st.group_order + 1] = action.group.id
    return nil
  end
  local g = find_group(st, action.group_id)
  if not g then return "security group not found", "not-found" end
  if kind == "delete_group" then
    st.groups[g.id] = nil
    for i, id in ipairs(st.group_order) do
      if id == g.id then
        table.remove(st.group_order, i)
        break
      end
    end
  elseif kind == "add_rule" then
    local key = rule_key(action.rule)
    for _, r in ipairs(g.rules) do
      if rule_key(r) == key then return INFERRED.msg_duplicate_rule end
    end
    g.rules[#g.rules + 1] = action.rule
  elseif kind == "delete_rule" then
    for i, r in ipairs(g.rules) do
      if r.id == action.rule_id then
        table.remove(g.rules, i)
        return nil
      end
    end
    return "rule not found", "not-found"
  elseif kind == "add_source" then
    for _, c in ipairs(g["external-sources"]) do
      if c == action.cidr then return "external source already present" end
    end
    table.insert(g["external-sources"], action.cidr)
  elseif kind == "remove_source" then
    for i, c in ipairs(g["external-sources"]) do
      if c == action.cidr then
        table.remove(g["external-sources"], i)
        return nil
      end
    end
    return "external source not found"
  elseif kind == "attach" or kind == "detach" then
    local inst = st.instances[action.instance_id]
    if not inst then return "instance not found", "not-found" end
    local list = inst["security-groups"]
    for i, id in ipairs(list) do
      if id == g.id then
        if kind == "attach" then return "instance already attached to this security group" end
        table.remove(list, i)
        return nil
      end
    end
    if kind == "detach" then return "instance is not attached to this security group" end
    list[#list + 1] = g.id
  end
  return nil
end

---Pending operations of a kind on a group, for checks that must see work in flight.
---@param st ExoState
---@return table[] actions
local function pending_actions(st, kind)
  local out = {}
  for _, id in ipairs(st.pending or {}) do
    local op = st.operations[id]
    if op and op.state == "pending" and op.action.kind == kind then out[#out + 1] = op.action end
  end
  return out
end

------------------------------------------------------------------------------------------------
-- Validation.

---The decoded request body when it is a JSON object.
---@param req table
---@return table|nil obj, string|nil err
local function json_object(req)
  if req.body == "" then return nil, "request body is required" end
  if type(req.json) ~= "table" or req.json[1] ~= nil then return nil, "request body must be a JSON object" end
  return req.json
end

---@param obj table
---@param allowed table<string,boolean>
---@return string|nil err
local function unknown_fields(obj, allowed)
  for k in pairs(obj) do
    if not allowed[k] then return "unknown field: " .. tostring(k) end
  end
  return nil
end

---@param st ExoState
---@param body table
---@return ExoRule|nil rule, string|nil err, integer|nil status
local function validate_rule(st, body)
  local err = unknown_fields(body, RULE_FIELDS)
  if err then return nil, err end
  local dir, proto = body["flow-direction"], body.protocol
  if dir == nil then return nil, "missing required field: flow-direction" end
  if dir ~= "ingress" and dir ~= "egress" then
    return nil, "invalid value for flow-direction (expected ingress or egress)"
  end
  if proto == nil then return nil, "missing required field: protocol" end
  if type(proto) ~= "string" or not PROTOCOLS[proto] then
    return nil, "invalid value for protocol (expected one of tcp, udp, icmp, icmpv6, esp, ah, gre, ipip, all)"
  end
  local rule = { ["flow-direction"] = dir, protocol = proto }
  local sp, ep = body["start-port"], body["end-port"]
  for name, v in pairs({ ["start-port"] = sp, ["end-port"] = ep }) do
    if v ~= nil and (not is_int(v) or v < 1 or v > 65535) then
      return nil, "invalid value for " .. name .. " (expected an integer 1..65535)"
    end
  end
  if PORT_PROTOCOLS[proto] then
    if sp == nil or ep == nil then return nil, "start-port and end-port are required for protocol " .. proto end
    if ep < sp then return nil, "end-port must not be lower than start-port" end
    rule["start-port"], rule["end-port"] = math.tointeger(sp), math.tointeger(ep)
  elseif sp ~= nil or ep ~= nil then
    return nil, "ports are only allowed for tcp and udp"
  end
  if body.icmp ~= nil then
    -- the schema types icmp as an object: null is refused, not read as "absent"
    if not sgsim.is_object(body.icmp) then return nil, "icmp must be an object {type, code}" end
    if not ICMP_PROTOCOLS[proto] then return nil, "icmp is only allowed for protocol icmp or icmpv6" end
    local e = unknown_fields(body.icmp, { type = true, code = true })
    if e then return nil, "icmp: " .. e end
    local icmp = {}
    for _, k in ipairs({ "type", "code" }) do
      local v = body.icmp[k]
      if v == nil or v == sgsim.json.null then v = -1 end
      if not is_int(v) or v < -1 or v > 254 then return nil, "icmp." .. k .. " must be an integer -1..254" end
      icmp[k] = math.tointeger(v)
    end
    rule.icmp = icmp
  elseif ICMP_PROTOCOLS[proto] then
    rule.icmp = { type = -1, code = -1 }
  end
  local net, sg = body.network, body["security-group"]
  if (net == nil) == (sg == nil) then
    return nil, "exactly one of network or security-group is required"
  end
  if net ~= nil then
    local c, cerr = sgsim.parse_cidr(net)
    if not c then return nil, "invalid network " .. tostring(net) .. ": " .. cerr end
    rule.network = net
  else
    if not sgsim.is_object(sg) then return nil, "security-group must be an object" end
    local e = unknown_fields(sg, { id = true, name = true, visibility = true })
    if e then return nil, "security-group: " .. e end
    local vis = sg.visibility or "private"
    if vis ~= "private" and vis ~= "public" then
      return nil, "security-group.visibility must be private or public"
    end
    local pool = vis == "public" and st.public_groups or st.groups
    local found
    for id, g in pairs(pool) do
      if (sg.id ~= nil and id == sg.id) or (sg.id == nil and sg.name ~= nil and g.name == sg.name) then
        found = g
      end
    end
    if sg.id == nil and sg.name == nil then return nil, "security-group needs an id or a name" end
    if not found then return nil, "security group not found: " .. tostring(sg.id or sg.name), 404 end
    rule["security-group"] = { id = found.id, name = found.name, visibility = vis }
  end
  if body.description ~= nil then
    if type(body.description) ~= "string" or sgsim.chars(body.description) > 255 then
      return nil, "description must be a string of at most 255 characters"
    end
    if body.description ~= "" then rule.description = body.description end
  end
  return rule
end

------------------------------------------------------------------------------------------------
-- Handlers.

local function list_groups(st, req)
  local vis = req.args.visibility
  if vis ~= nil and vis ~= "private" and vis ~= "public" then
    return fail(400, "invalid value for visibility (expected private or public)")
  end
  local out = {}
  if vis == "public" then
    local ids = {}
    for id in pairs(st.public_groups) do ids[#ids + 1] = id end
    table.sort(ids, function(a, b) return st.public_groups[a].name < st.public_groups[b].name end)
    for _, id in ipairs(ids) do out[#out + 1] = group_view(st.public_groups[id]) end
  else
    for _, id in ipairs(st.group_order) do
      if st.groups[id] then out[#out + 1] = group_view(st.groups[id]) end
    end
  end
  return 200, { ["security-groups"] = out }
end

local function create_group(st, req, ctx)
  local body, err = json_object(req)
  if not body then return fail(400, err) end
  err = unknown_fields(body, { name = true, description = true })
  if err then return fail(400, err) end
  if body.name == nil then return fail(400, "missing required field: name") end
  if type(body.name) ~= "string" or body.name == "" or sgsim.chars(body.name) > 255 then
    return fail(400, "name must be a string of 1 to 255 characters")
  end
  if body.description ~= nil and (type(body.description) ~= "string" or sgsim.chars(body.description) > 255) then
    return fail(400, "description must be a string of at most 255 characters")
  end
  for _, g in pairs(st.groups) do
    if g.name == body.name then return fail(INFERRED.conflict_status, INFERRED.msg_name_in_use) end
  end
  for _, a in ipairs(pending_actions(st, "create_group")) do
    if a.group.name == body.name then return fail(INFERRED.conflict_status, INFERRED.msg_name_in_use) end
  end
  local id = ctx.new_id("exoscale-sg")
  local group = { id = id, name = body.name, description = body.description or "",
    ["external-sources"] = {}, rules = {} }
  return new_operation(st, ctx, id, { kind = "create_group", group = group })
end

local function delete_group(st, g, ctx)
  for _, inst in pairs(st.instances) do
    for _, id in ipairs(inst["security-groups"]) do
      if id == g.id then return fail(INFERRED.conflict_status, INFERRED.msg_in_use) end
    end
  end
  -- rules that reference this group (its own included, cli#413) block the delete
  for _, other in pairs(st.groups) do
    for _, r in ipairs(other.rules) do
      if r["security-group"] and r["security-group"].id == g.id then
        return fail(INFERRED.conflict_status, INFERRED.msg_referenced)
      end
    end
  end
  return new_operation(st, ctx, g.id, { kind = "delete_group", group_id = g.id })
end

local function add_rule(st, g, req, ctx)
  local body, err = json_object(req)
  if not body then return fail(400, err) end
  local rule, rerr, status = validate_rule(st, body)
  if not rule then return fail(status or 400, rerr) end
  rule.id = ctx.new_id("exoscale-rule")
  return new_operation(st, ctx, g.id, { kind = "add_rule", group_id = g.id, rule = rule })
end

local function delete_rule(st, g, rule_id, ctx)
  for _, r in ipairs(g.rules) do
    if r.id == rule_id then
      return new_operation(st, ctx, g.id, { kind = "delete_rule", group_id = g.id, rule_id = rule_id })
    end
  end
  return fail(404, "security group rule not found")
end

local function group_action(st, g, verb, req, ctx)
  local body, err = json_object(req)
  if not body then return fail(400, err) end
  if verb == "add-source" or verb == "remove-source" then
    err = unknown_fields(body, { cidr = true })
    if err then return fail(400, err) end
    if body.cidr == nil then return fail(400, "missing required field: cidr") end
    local c, cerr = sgsim.parse_cidr(body.cidr)
    if not c then return fail(400, "invalid cidr " .. tostring(body.cidr) .. ": " .. cerr) end
    if verb == "add-source" then
      return new_operation(st, ctx, g.id, { kind = "add_source", group_id = g.id, cidr = body.cidr })
    end
    return new_operation(st, ctx, g.id, { kind = "remove_source", group_id = g.id, cidr = body.cidr })
  end
  -- attach / detach
  err = unknown_fields(body, { instance = true })
  if err then return fail(400, err) end
  if type(body.instance) ~= "table" or type(body.instance.id) ~= "string" then
    return fail(400, 'missing required field: instance ({"id": "<uuid>"})')
  end
  local inst = st.instances[body.instance.id]
  if not inst then return fail(404, "instance not found: " .. body.instance.id) end
  if verb == "attach" then
    return new_operation(st, ctx, g.id, { kind = "attach", group_id = g.id, instance_id = inst.id })
  end
  return new_operation(st, ctx, g.id, { kind = "detach", group_id = g.id, instance_id = inst.id })
end

local function method_not_allowed()
  return fail(405, "Method Not Allowed")
end

---@param st ExoState
---@param req table
---@param ctx table
---@return integer status, table|string|nil body, table|nil headers
function M.handle(st, req, ctx)
  local path, m = req.path, req.method
  -- list-zones is public data: PYX sends it unsigned (§3.1)
  if path == "/zone" then
    if m ~= "GET" then return method_not_allowed() end
    return 200, { zones = { { name = "ch-gva-2", ["api-endpoint"] = "https://api-ch-gva-2.exoscale.com/v2",
      ["sos-endpoint"] = "https://sos-ch-gva-2.exo.io" } } }
  end
  local s, b = authenticate(st, req)
  if s then return s, b end

  if path == "/security-group" then
    if m == "GET" then return list_groups(st, req) end
    if m == "POST" then return create_group(st, req, ctx) end
    return method_not_allowed()
  end
  local id, verb = path:match("^/security%-group/([^/:]+):([%w%-]+)$")
  if id then
    if verb ~= "add-source" and verb ~= "remove-source" and verb ~= "attach" and verb ~= "detach" then
      return fail(404, "not found: " .. path)
    end
    if m ~= "PUT" then return method_not_allowed() end
    local g = find_group(st, id)
    if not g then return fail(404, "security group not found: " .. id) end
    return group_action(st, g, verb, req, ctx)
  end
  id = path:match("^/security%-group/([^/:]+)$")
  if id then
    local g = find_group(st, id) or st.public_groups[id]
    if not g then return fail(404, "security group not found: " .. id) end
    if m == "GET" then return 200, group_view(g) end
    if m == "DELETE" then
      if st.public_groups[id] then return fail(403, "public security groups cannot be deleted") end
      return delete_group(st, g, ctx)
    end
    return method_not_allowed()
  end
  id = path:match("^/security%-group/([^/:]+)/rules$")
  if id then
    if m ~= "POST" then return method_not_allowed() end
    local g = find_group(st, id)
    if not g then return fail(404, "security group not found: " .. id) end
    return add_rule(st, g, req, ctx)
  end
  local rule_id
  id, rule_id = path:match("^/security%-group/([^/:]+)/rules/([^/]+)$")
  if id then
    if m ~= "DELETE" then return method_not_allowed() end
    local g = find_group(st, id)
    if not g then return fail(404, "security group not found: " .. id) end
    return delete_rule(st, g, rule_id, ctx)
  end
  id = path:match("^/operation/([^/]+)$")
  if id then
    if m ~= "GET" then return method_not_allowed() end
    local op = st.operations[id]
    if not op then return fail(404, "operation not found: " .. id) end
    return 200, op_view(op)
  end
  if path == "/instance" then
    if m ~= "GET" then return method_not_allowed() end
    local out = {}
    for _, iid in ipairs(st.instance_order) do
      if st.instances[iid] then out[#out + 1] = instance_view(st, st.instances[iid]) end
    end
    return 200, { instances = out }
  end
  id = path:match("^/instance/([^/]+)$")
  if id then
    if m ~= "GET" then return method_not_allowed() end
    local inst = st.instances[id]
    if not inst then return fail(404, "instance not found: " .. id) end
    return 200, instance_view(st, inst)
  end
  return fail(404, "not found: " .. path)
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
  local key, secret = string.format("EXOacct%017d", n), string.format("sgrun-sim-exoscale-account-%08d", n)
  st.credentials = { [key] = secret }
  local web, refs = st.groups[st.group_order[1]], { "web" }
  for i = 2, groups do
    local g = ctx.json.decode(ctx.json.encode(web))
    g.id, g.name = ctx.new_id("exoscale-sg"), "web-" .. i
    for _, r in ipairs(g.rules) do r.id = ctx.new_id("exoscale-rule") end
    st.groups[g.id] = g
    st.group_order[#st.group_order + 1] = g.id
    refs[i] = g.name
  end
  return st, { key = key, credentials = { key = key, secret = secret }, groups = refs, source = "web" }
end

---The API key a request presents (its account), or nil.
---@param req table
---@return string|nil
function M.account_key(req)
  return (req.headers["authorization"] or ""):match("credential=([^,%s]+)")
end

return M
