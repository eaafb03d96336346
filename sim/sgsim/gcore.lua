-- Gcore Cloud API emulator: security groups (v1 list/get/delete/copy/revert, v2 create/update/
-- add rule/delete rule), instance assignment by name, and the tasks API, faithful to
-- ../shared/reference/gcore.md and the schemas in gcore_openapi_extract.json.
--
-- The v2 mutations answer {"tasks": [id]} at once; a task reads NEW, then RUNNING, then FINISHED
-- (or ERROR) as the task duration passes, and its change is applied to the state when it
-- finishes (advance()). Authorization is "APIKey <token>"; project 1 / region 76 exist.

local sgsim = require "sgsim"
local is_int = sgsim.is_int
local crypto = require "_sg.crypto"

local null = sgsim.json.null

---@class GcoreRule
---@field id string
---@field direction string
---@field ethertype string
---@field protocol string|nil nil means every protocol
---@field port_range_min integer|nil
---@field port_range_max integer|nil
---@field remote_ip_prefix string|nil
---@field remote_group_id string|nil
---@field description string|nil
---@field revision_number integer
---@field created_at number
---@field updated_at number

---@class GcoreGroup
---@field id string
---@field name string
---@field description string
---@field created_at number
---@field updated_at number
---@field revision_number integer
---@field tags table<string,string>
---@field rules GcoreRule[]
---@field is_default boolean|nil

---@class GcoreTask
---@field id string
---@field task_type string
---@field created_at number
---@field duration number seconds
---@field outcome "FINISHED"|"ERROR"
---@field applied boolean
---@field data any the request parameters
---@field action table what to apply when it finishes
---@field created table<string,string[]> created resources by kind

---@class GcoreState
---@field api_key string
---@field project_id integer
---@field region_id integer
---@field region string
---@field groups table<string,GcoreGroup>
---@field group_order string[]
---@field instances table<string,{id: string, name: string, status: string, security_groups: string[]}>
---@field instance_order string[]
---@field tasks table<string,GcoreTask>
---@field task_order string[]
---@field pending string[] task ids not applied yet, oldest first

local DEMO_TOKEN = "4242_sgrunsimgcoredemo0123456789abcdef"
local PROJECT_ID, REGION_ID, REGION_NAME = 1, 76, "Luxembourg 2"
local MAX_RULES = 250 -- per group, inbound and outbound together (DOC-FW, SPEC maxItems)

-- SecurityGroupProtocolEnumV2: the v1 enum without "any" (null means every protocol).
local PROTOCOLS_V2 = {}
for p in ("ah dccp egp esp gre icmp igmp ipencap ipip ipv6-encap ipv6-frag ipv6-icmp ipv6-nonxt " ..
  "ipv6-opts ipv6-route ospf pgm rsvp sctp tcp udp udplite vrrp"):gmatch("%S+") do
  PROTOCOLS_V2[p] = true
end
local RULE_FIELDS = { direction = true, ethertype = true, protocol = true, port_range_min = true,
  port_range_max = true, remote_ip_prefix = true, remote_group_id = true, description = true }
local CREATED_KINDS = { "ai_clusters", "api_keys", "caas_containers", "clusters", "ddos_profiles",
  "faas_functions", "faas_namespaces", "file_shares", "floatingips", "healthmonitors", "images",
  "inference_instances", "instances", "k8s_clusters", "k8s_pools", "l7polices", "l7rules",
  "laas_topic", "listeners", "loadbalancers", "members", "networks", "pools", "ports",
  "postgresql_clusters", "projects", "registry_registries", "registry_users", "routers", "secrets",
  "security_group_rules", "security_groups", "servergroups", "snapshots", "subnets", "volumes" }

------------------------------------------------------------------------------------------------
-- INFERRED (reference/gcore.md leaves these open; kept here and only here):
-- * which protocols take ports: tcp, udp, udplite, sctp, dccp take a port range; icmp and
--   ipv6-icmp take type/code in the same fields (Neutron); others refuse ports. Both bounds or
--   neither, min <= max (§7.2);
-- * a duplicate rule (same direction, ethertype, protocol, ports, remote prefix and group; the
--   description does not count) is refused 409 ConflictError (§11: "409 ConflictError?");
-- * v2 PATCH matches request rules to existing ones on every field, description included; rules
--   omitted leave the rules alone, "rules": [] removes them all (§4.5);
-- * deleting a group assigned to instances: 409 ConflictError; the default group: 403;
-- * assigning a group an instance already has is a no-op 204; unassigning one it does not have
--   is 404;
-- * 401 bodies carry exception_class "not_authenticated" (no credentials) or "token_not_valid";
-- * a task spends the first quarter of the task duration NEW, the rest RUNNING;
-- * an unknown project or region is 404 NotFoundError.
local INFERRED = {
  port_protocols = { tcp = true, udp = true, udplite = true, sctp = true, dccp = true },
  icmp_protocols = { icmp = true, ["ipv6-icmp"] = true },
  duplicate_status = 409,
  in_use_status = 409,
  default_delete_status = 403,
  new_fraction = 0.25,
}

local EXCEPTION_CLASS = { [400] = "ValidationError", [401] = "not_authenticated",
  [403] = "ForbiddenError", [404] = "NotFoundError", [405] = "HTTPError", [409] = "ConflictError",
  [413] = "ValidationError", [429] = "TooManyRequestsError", [500] = "InternalServerError",
  [502] = "BadGatewayError", [503] = "ServiceUnavailableError" }

local M = { name = "gcore", prefix = "/gcore", demo_target = "web" }

M.credentials_banner = string.format(
  "Gcore: GCORE_API_KEY=%s GCORE_CLOUD_PROJECT_ID=%d GCORE_CLOUD_REGION_ID=%d (Authorization: APIKey <token>)",
  DEMO_TOKEN, PROJECT_ID, REGION_ID)

---@param base_url string
---@return table<string,string>
function M.env(base_url)
  return { SGRUN_GCORE_URL = base_url .. M.prefix, GCORE_API_KEY = DEMO_TOKEN,
    GCORE_CLOUD_PROJECT_ID = tostring(PROJECT_ID), GCORE_CLOUD_REGION_ID = tostring(REGION_ID) }
end

---@return string
local function request_id()
  return crypto.hex_encode(crypto.random_bytes(16))
end

---Gcore's error body (DOC-ERR): exception_class, message, request_id, and invalid_fields for
---validation errors.
---@param status integer
---@param message string
---@param invalid_fields table|nil
---@param class string|nil
---@return table
function M.error_body(status, message, invalid_fields, class)
  local body = { exception_class = class or EXCEPTION_CLASS[status] or (status >= 500 and "InternalServerError" or "HTTPError"),
    message = message, request_id = request_id() }
  if invalid_fields then body.invalid_fields = setmetatable(invalid_fields, sgsim.json.object_mt) end
  return body
end

---@return integer status, table body
local function fail(status, message, class)
  return status, M.error_body(status, message, nil, class)
end

---A pydantic-style validation failure: {field: [messages]} in both message and invalid_fields.
---@param errors table<string,string[]>
---@return integer status, table body
local function invalid(errors)
  local keys = {}
  for k in pairs(errors) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local msgs = {}
    for _, m in ipairs(errors[k]) do msgs[#msgs + 1] = "'" .. m .. "'" end
    parts[#parts + 1] = string.format("'%s': [%s]", k, table.concat(msgs, ", "))
  end
  return 400, M.error_body(400, "Validation Error: {" .. table.concat(parts, ", ") .. "}", errors)
end

---@param v any
---@return boolean
local function absent(v) return v == nil or v == null end

---@param t number epoch seconds
---@return string e.g. 2019-06-18T11:56:16+0000 (the SG timestamps)
local function sg_time(t) return os.date("!%Y-%m-%dT%H:%M:%S+0000", math.floor(t)) end

---@param t number epoch seconds
---@return string e.g. 2019-06-25T08:42:42 (task timestamps carry no zone)
local function task_time(t) return os.date("!%Y-%m-%dT%H:%M:%S", math.floor(t)) end

-- SG name pattern ^[a-zA-Z0-9][a-zA-Z 0-9._\-]{1,61}[a-zA-Z0-9._]$ (SPEC).
---@param name any
---@return boolean
local function valid_name(name)
  return type(name) == "string" and #name >= 3 and #name <= 63 and
      name:match("^[%w][%w %._%-]*[%w%._]$") ~= nil and not name:find("[\128-\255]")
end
local NAME_MESSAGE = "String should match pattern '^[a-zA-Z0-9][a-zA-Z 0-9._\\-]{1,61}[a-zA-Z0-9._]$'"

------------------------------------------------------------------------------------------------
-- Rules.

---@param r table
---@return string identity for duplicates (description left out)
local function rule_key(r)
  local function n(v) return absent(v) and "" or tostring(math.tointeger(v) or v) end
  return table.concat({ r.direction, r.ethertype or "IPv4", n(r.protocol), n(r.port_range_min),
    n(r.port_range_max), n(r.remote_ip_prefix), n(r.remote_group_id) }, "|")
end

---@param r table
---@return string identity for PATCH matching (description included)
local function rule_patch_key(r)
  return rule_key(r) .. "|" .. (absent(r.description) and "" or r.description)
end

-- The first rule of `rules` not yet in `matched` with the same fields as `want` (marked as
-- matched), or nil: a full-list PATCH keeps such rules, ids included.
local function take_same_rule(rules, matched, want)
  local wk = rule_patch_key(want)
  for i, r in ipairs(rules) do
    if not matched[i] and rule_patch_key(r) == wk then
      matched[i] = true
      return r
    end
  end
end

---@param r GcoreRule
---@param group_id string
---@return table the SecurityGroupRuleSerializer shape: every key present, null when unset
local function rule_view(r, group_id)
  local function v(x) if absent(x) then return null end return x end
  return { id = r.id, security_group_id = group_id, direction = r.direction,
    ethertype = v(r.ethertype), protocol = v(r.protocol), port_range_min = v(r.port_range_min),
    port_range_max = v(r.port_range_max), remote_ip_prefix = v(r.remote_ip_prefix),
    remote_group_id = v(r.remote_group_id), description = v(r.description),
    revision_number = r.revision_number or 0, created_at = sg_time(r.created_at or 0),
    updated_at = sg_time(r.updated_at or r.created_at or 0) }
end

---@param st GcoreState
---@param g GcoreGroup
---@return table the SecurityGroupSerializer shape
local function group_view(st, g)
  local rules = {}
  for i, r in ipairs(g.rules or {}) do rules[i] = rule_view(r, g.id) end
  local keys = {}
  for k in pairs(g.tags or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  local tags = {}
  for i, k in ipairs(keys) do tags[i] = { key = k, value = g.tags[k], read_only = false } end
  return { id = g.id, name = g.name, description = g.description or "", project_id = st.project_id,
    region_id = st.region_id, region = st.region, created_at = sg_time(g.created_at or 0),
    updated_at = sg_time(g.updated_at or g.created_at or 0), revision_number = g.revision_number or 0,
    tags_v2 = tags, security_group_rules = rules }
end

---Validates one CreateSecurityGroupRuleSerializerV2; errors go into errs under prefix.
---@param st GcoreState
---@param body any
---@param prefix string e.g. "" or "rules.3."
---@param errs table<string,string[]>
---@param self_id string|nil the group's own id (a rule may reference its own group)
---@return table|nil rule without id/timestamps, or nil when errs got something
local function validate_rule(st, body, prefix, errs, self_id)
  local function bad(field, msg)
    local k = prefix .. field
    errs[k] = errs[k] or {}
    table.insert(errs[k], msg)
  end
  if not sgsim.is_object(body) then
    bad("body", "Input should be a valid dictionary")
    return nil
  end
  for k in pairs(body) do
    if not RULE_FIELDS[k] then bad(tostring(k), "Extra inputs are not permitted") end
  end
  local r = {}
  if absent(body.direction) then
    bad("direction", "Field required")
  elseif body.direction ~= "ingress" and body.direction ~= "egress" then
    bad("direction", "Input should be 'egress' or 'ingress'")
  else
    r.direction = body.direction
  end
  -- null and absent differ wherever the schema does not allow null (ethertype, remote_group_id,
  -- description): absent takes the default, null is a validation error
  if body.ethertype == nil then
    r.ethertype = "IPv4"
  elseif body.ethertype ~= "IPv4" and body.ethertype ~= "IPv6" then
    bad("ethertype", "Input should be 'IPv4' or 'IPv6'")
  else
    r.ethertype = body.ethertype
  end
  if not absent(body.protocol) then
    if type(body.protocol) ~= "string" or not PROTOCOLS_V2[body.protocol] then
      bad("protocol", "Input should be one of the SecurityGroupProtocolEnumV2 values (ah, dccp, egp, esp, gre, icmp, igmp, ipencap, ipip, ipv6-encap, ipv6-frag, ipv6-icmp, ipv6-nonxt, ipv6-opts, ipv6-route, ospf, pgm, rsvp, sctp, tcp, udp, udplite, vrrp); use null for all protocols") -- luacheck: ignore 631 (the vendor's message, verbatim)
    else
      r.protocol = body.protocol
    end
  end
  -- Neutron refuses the IPv6-only protocols with ethertype IPv4 (and takes "icmp" for IPv6 as
  -- ICMPv6) [inferred]
  if r.protocol and r.protocol:match("^ipv6%-") and r.ethertype == "IPv4" then
    bad("ethertype", "protocol " .. r.protocol .. " conflicts with ethertype IPv4 (use IPv6)")
  end
  local pmin, pmax = body.port_range_min, body.port_range_max
  local ports_typed = true
  for name, v in pairs({ port_range_min = pmin, port_range_max = pmax }) do
    if not absent(v) and (not is_int(v) or v < 0 or v > 65535) then
      bad(name, "Input should be an integer between 0 and 65535")
      ports_typed = false
    end
  end
  if ports_typed and (not absent(pmin) or not absent(pmax)) then
    local p = r.protocol
    local icmp = p and INFERRED.icmp_protocols[p]
    -- ICMP carries type in port_range_min and code in port_range_max: a type alone means any
    -- code (Neutron); a code without a type means nothing
    if icmp and absent(pmin) then
      bad("port_range_min", "an ICMP code (port_range_max) needs an ICMP type (port_range_min)")
    elseif not icmp and (absent(pmin) or absent(pmax)) then
      bad("port_range_min", "port_range_min and port_range_max must be given together")
    elseif not (p and (INFERRED.port_protocols[p] or icmp)) then
      bad("protocol", "port ranges are only allowed for tcp, udp, udplite, sctp, dccp (icmp: type/code)")
    elseif not icmp and pmin > pmax then
      bad("port_range_max", "port_range_max must be greater than or equal to port_range_min")
    elseif icmp and (pmin > 255 or (not absent(pmax) and pmax > 255)) then
      -- Neutron: ICMP type and code are 0..255 [inferred]
      bad("port_range_min", "ICMP type (port_range_min) and code (port_range_max) must be 0..255")
    else
      r.port_range_min, r.port_range_max = math.tointeger(pmin), pmax ~= nil and math.tointeger(pmax) or nil
    end
  end
  if not absent(body.remote_ip_prefix) then
    local c, err = sgsim.parse_cidr(body.remote_ip_prefix, true)
    if not c then
      bad("remote_ip_prefix", "Input is not a valid IPv4 or IPv6 network: " .. tostring(err))
    elseif c.host_bits then
      bad("remote_ip_prefix", "Input is not a valid IPv4 or IPv6 network: host bits set")
    elseif r.ethertype and (c.family == 6) ~= (r.ethertype == "IPv6") then
      bad("ethertype", "addresses represented in CIDR must match the ethertype (" .. r.ethertype .. ")")
    else
      r.remote_ip_prefix = c.cidr
    end
  end
  if body.remote_group_id ~= nil then
    local id = body.remote_group_id
    if type(id) ~= "string" or not id:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") then
      bad("remote_group_id", "Input should be a valid UUID")
    elseif not st.groups[id] and id ~= self_id then
      bad("remote_group_id", "security group " .. id .. " not found")
    else
      r.remote_group_id = id
    end
  end
  if body.description ~= nil then
    if type(body.description) ~= "string" then
      bad("description", "Input should be a valid string")
    elseif sgsim.chars(body.description) > 255 then
      bad("description", "String should have at most 255 characters")
    else
      r.description = body.description
    end
  end
  if next(errs) then return nil end
  return r
end

---@param ctx table
---@param r table validated fields
---@return GcoreRule
local function new_rule(ctx, r)
  local now = ctx.now()
  local rule = {}
  for k, v in pairs(r) do rule[k] = v end
  rule.id, rule.revision_number, rule.created_at, rule.updated_at = ctx.new_id("gcore-rule"), 0, now, now
  return rule
end

---The default template (DOC-FW "Restore Default"): inbound ICMP/ICMPv6, SSH, RDP; outbound all.
---@return table[]
local function default_rule_specs()
  local out = {}
  for _, et in ipairs({ "IPv4", "IPv6" }) do
    out[#out + 1] = { direction = "ingress", ethertype = et, protocol = et == "IPv4" and "icmp" or "ipv6-icmp" }
    out[#out + 1] = { direction = "ingress", ethertype = et, protocol = "tcp", port_range_min = 22, port_range_max = 22 }
    out[#out + 1] = { direction = "ingress", ethertype = et, protocol = "tcp", port_range_min = 3389, port_range_max = 3389 }
    out[#out + 1] = { direction = "ingress", ethertype = et, protocol = "udp", port_range_min = 3389, port_range_max = 3389 }
    out[#out + 1] = { direction = "egress", ethertype = et }
  end
  return out
end

---The v2 create template when "rules" is omitted (newest SPEC): ingress + egress allow-all.
---@return table[]
local function allow_all_specs()
  return { { direction = "ingress", ethertype = "IPv4" }, { direction = "ingress", ethertype = "IPv6" },
    { direction = "egress", ethertype = "IPv4" }, { direction = "egress", ethertype = "IPv6" } }
end

------------------------------------------------------------------------------------------------
-- State.

---@param ctx table
---@return GcoreState
function M.new_state(ctx)
  local now = ctx.now()
  local st = { api_key = DEMO_TOKEN, project_id = PROJECT_ID, region_id = REGION_ID,
    region = REGION_NAME, groups = {}, group_order = {}, instances = {}, instance_order = {},
    tasks = {}, task_order = {}, pending = {} }
  local function add_group(name, description, specs, is_default)
    local g = { id = ctx.new_id("gcore-sg"), name = name, description = description,
      created_at = now, updated_at = now, revision_number = 0, tags = {}, rules = {},
      is_default = is_default or nil }
    for _, s in ipairs(specs) do g.rules[#g.rules + 1] = new_rule(ctx, s) end
    st.groups[g.id] = g
    st.group_order[#st.group_order + 1] = g.id
    return g
  end
  local default = add_group("default", "Default security group", default_rule_specs(), true)
  local web = add_group("web", "Demo web servers", {
    { direction = "egress", ethertype = "IPv4" },
    { direction = "ingress", ethertype = "IPv4", protocol = "tcp", port_range_min = 22, port_range_max = 22, remote_ip_prefix = "0.0.0.0/0", description = "ssh" },
    { direction = "ingress", ethertype = "IPv4", protocol = "tcp", port_range_min = 80, port_range_max = 80, remote_ip_prefix = "0.0.0.0/0", description = "http" },
    { direction = "ingress", ethertype = "IPv4", protocol = "tcp", port_range_min = 443, port_range_max = 443, remote_ip_prefix = "0.0.0.0/0", description = "https" },
    { direction = "ingress", ethertype = "IPv6", protocol = "tcp", port_range_min = 443, port_range_max = 443, remote_ip_prefix = "::/0", description = "https (IPv6)" },
    { direction = "ingress", ethertype = "IPv4", protocol = "icmp", remote_ip_prefix = "0.0.0.0/0", description = "ping" },
  })
  web.tags = { environment = "demo" }
  local function add_instance(name, groups)
    local id = ctx.new_id("gcore-instance")
    st.instances[id] = { id = id, name = name, status = "ACTIVE", security_groups = groups }
    st.instance_order[#st.instance_order + 1] = id
  end
  add_instance("web-1", { web.id })
  add_instance("web-2", { web.id })
  add_instance("spare-1", { default.id })
  return st
end

------------------------------------------------------------------------------------------------
-- Tasks.

---@param st GcoreState
---@param task GcoreTask
---@return string|nil err why the change could not be applied
local function apply_task(st, task, ctx)
  local a = task.action
  local now = ctx.now()
  if a.kind == "create_group" then
    st.groups[a.group.id] = a.group
    st.group_order[#st.group_order + 1] = a.group.id
    return nil
  end
  local g = st.groups[a.group_id]
  if not g then return "security group " .. tostring(a.group_id) .. " not found" end
  if a.kind == "add_rule" then
    local key = rule_key(a.rule)
    for _, r in ipairs(g.rules) do
      if rule_key(r) == key then return "Security group rule already exists" end
    end
    if #g.rules >= MAX_RULES then return "Security group rule limit (" .. MAX_RULES .. ") exceeded" end
    g.rules[#g.rules + 1] = a.rule
  elseif a.kind == "delete_rule" then
    local found = false
    for i, r in ipairs(g.rules) do
      if r.id == a.rule_id then
        table.remove(g.rules, i)
        found = true
        break
      end
    end
    if not found then return "security group rule " .. a.rule_id .. " not found" end
  elseif a.kind == "update_group" then
    if a.name then g.name = a.name end
    if a.description then g.description = a.description end
    if a.tags then
      for k, v in pairs(a.tags) do
        if v == null then g.tags[k] = nil else g.tags[k] = v end
      end
    end
    if a.tags_clear then g.tags = {} end
    if a.rules then
      local keep, matched = {}, {}
      for _, want in ipairs(a.rules) do
        keep[#keep + 1] = take_same_rule(g.rules, matched, want) or want
      end
      g.rules = keep
    end
  end
  g.revision_number = (g.revision_number or 0) + 1
  g.updated_at = now
  return nil
end

---@param task GcoreTask
---@param now number
---@return string state NEW | RUNNING | FINISHED | ERROR
local function task_state(task, now)
  if task.applied then return task.failed and "ERROR" or "FINISHED" end
  -- not applied yet: advance() has not seen it due, so it is still in progress
  if now - task.created_at < task.duration * INFERRED.new_fraction then return "NEW" end
  return "RUNNING"
end

---Applies every finished task, oldest first.
---@param st GcoreState
---@param ctx table
---@param now number|nil the instant to advance to (default ctx.now())
function M.advance(st, ctx, now)
  now = now or ctx.now()
  local keep = {}
  for _, id in ipairs(st.pending or {}) do
    local t = st.tasks[id]
    if t and not t.applied then
      if not ctx.tasks_held and now - t.created_at >= t.duration then
        t.applied = true
        t.finished_at = t.created_at + t.duration
        if t.outcome == "ERROR" then
          t.failed, t.error = true, "Task failed (simulated by the sgrun sim task_error knob)"
        else
          local err = apply_task(st, t, ctx)
          if err then t.failed, t.error = true, err end
        end
      else
        keep[#keep + 1] = id
      end
    end
  end
  st.pending = keep
end

---@param st GcoreState
---@param ctx table
---@param task_type string
---@param data any the request body, echoed as task.data
---@param action table
---@param created table<string,string[]>
---@return string id
local function new_task(st, ctx, task_type, data, action, created)
  local t = { id = ctx.new_id("gcore-task"), task_type = task_type, created_at = ctx.now(),
    duration = ctx.task_duration or 0, applied = false, data = data, action = action,
    created = created or {},
    outcome = (ctx.random() < (ctx.task_error_rate or 0)) and "ERROR" or "FINISHED" }
  st.tasks[t.id] = t
  st.task_order[#st.task_order + 1] = t.id
  st.pending[#st.pending + 1] = t.id
  M.advance(st, ctx) -- a zero task duration finishes at once
  return t.id
end

---@param st GcoreState
---@param t GcoreTask
---@param now number
---@return table the TaskSerializer shape
local function task_view(st, t, now)
  local state = task_state(t, now)
  local created = null
  if state == "FINISHED" then
    created = {}
    for _, k in ipairs(CREATED_KINDS) do created[k] = t.created[k] or {} end
  end
  local finished = (state == "FINISHED" or state == "ERROR") and t.finished_at
  local updated = state == "NEW" and null or task_time(finished or now)
  local data = t.data
  if data == nil or (type(data) == "table" and next(data) == nil) then data = null end
  return { id = t.id, task_type = t.task_type, state = state, detailed_state = null,
    error = state == "ERROR" and (t.error or "Task failed") or null, created_resources = created,
    data = data, created_on = task_time(t.created_at), updated_on = updated,
    finished_on = finished and task_time(finished) or null,
    acknowledged_at = t.acknowledged_at and task_time(t.acknowledged_at) or null,
    acknowledged_by = t.acknowledged_at and 3 or null, project_id = st.project_id, region_id = st.region_id, client_id = 2,
    user_id = 3, user_client_id = 2, request_id = null, job_id = null, schedule_id = null,
    lifecycle_policy_id = null }
end

------------------------------------------------------------------------------------------------
-- Request helpers.

---@param req table
---@return boolean ok, integer|nil status, table|nil body
local function authenticate(st, req)
  local h = req.headers["authorization"]
  if not h or h:match("^%s*$") then
    return false, fail(401, "Authentication credentials were not provided.", "not_authenticated")
  end
  -- "the word apikey, followed by a single space and then your token" (the vendor's schema)
  local scheme, token = h:match("^(%S+) (%S+)$")
  if not scheme or scheme:lower() ~= "apikey" then
    return false, fail(401, "Given token not valid for any token type", "token_not_valid")
  end
  if token ~= st.api_key then
    local id = token:match("^(%d+)[%$_]")
    if not id then
      return false, fail(401, "Bad permanent token: " .. token:sub(1, 8), "token_not_valid")
    end
    return false, fail(401, "Token is invalid or expired", "token_not_valid")
  end
  return true
end

---@return table|nil obj, integer|nil status, table|nil body
local function json_object(req, required)
  if req.body == "" then
    if required then return nil, invalid({ body = { "Field required" } }) end
    return {}
  end
  if not sgsim.is_object(req.json) then
    return nil, invalid({ body = { "Input should be a valid dictionary" } })
  end
  return req.json
end

---@param st GcoreState
---@param g GcoreGroup
---@return integer count rules now plus rules on their way
local function rule_count_with_pending(st, g)
  local n = #g.rules
  for _, id in ipairs(st.pending) do
    local t = st.tasks[id]
    if t and t.action.kind == "add_rule" and t.action.group_id == g.id then n = n + 1 end
  end
  return n
end

---Validates a "rules" list (create or update). Returns validated rule field tables.
---@return table[]|nil rules, table|nil errs
local function validate_rule_list(st, list, errs, self_id)
  if not sgsim.is_array(list) then
    errs.rules = { "Input should be a valid list" }
    return nil
  end
  if #list > MAX_RULES then
    errs.rules = { string.format("List should have at most %d items after validation, not %d", MAX_RULES, #list) }
    return nil
  end
  local out = {}
  for i, item in ipairs(list) do
    out[i] = validate_rule(st, item, "rules." .. (i - 1) .. ".", errs, self_id)
  end
  if next(errs) then return nil end
  local seen = {}
  for i, r in ipairs(out) do
    local k = rule_key(r)
    if seen[k] then
      errs["rules." .. (i - 1)] = { "duplicate of rules." .. (seen[k] - 1) }
      return nil
    end
    seen[k] = i
  end
  return out
end

local TAG_KEY_RULE = "tag keys are 1..255 characters without spaces or '='"

---@return boolean
local function valid_tag_key(k)
  return type(k) == "string" and k ~= "" and sgsim.chars(k) <= 255 and not k:find("[%s=]")
end

---@return table|nil tags, string|nil field, string|nil err
local function validate_tags(tags, allow_null)
  if type(tags) ~= "table" or tags[1] ~= nil then return nil, "tags", "Input should be a valid dictionary" end
  for k, v in pairs(tags) do
    if not valid_tag_key(k) then return nil, "tags." .. tostring(k), TAG_KEY_RULE end
    if not (allow_null and v == null) and (type(v) ~= "string" or v == "" or sgsim.chars(v) > 255) then
      return nil, "tags." .. k, "tag values are strings of 1..255 characters"
    end
  end
  return tags
end

------------------------------------------------------------------------------------------------
-- Handlers.

---A query integer as the SPEC's parser reads one: digits with an optional sign, nothing else
---(Lua's tonumber would also take "0x10", " 5" and "2.0").
---@param text string|nil
---@return integer|nil
local function query_integer(text)
  return text and text:match("^[+-]?%d+$") and math.tointeger(tonumber(text)) or nil
end

---The limit and offset of a paged listing (SPEC: limit 1..1000, default 10; offset >= 0).
---@return integer|nil limit, integer|nil offset, table|nil errors (for invalid)
local function page_args(req)
  local errs = {}
  -- SPEC default limit 10 (§4.1; DOC-PAG says 1000: clients pass limit)
  local l = req.args.limit == nil and 10 or query_integer(req.args.limit)
  local o = req.args.offset == nil and 0 or query_integer(req.args.offset)
  if not l or l < 1 or l > 1000 then errs.limit = { "Input should be an integer between 1 and 1000" } end
  if not o or o < 0 then errs.offset = { "Input should be an integer greater than or equal to 0" } end
  if next(errs) then return nil, nil, errs end
  return l, o
end

---One page of a listing: {count = all of them, results = view(item) of the page's}.
local function page(items, l, o, view)
  local results = {}
  for i = o + 1, math.min(#items, o + l) do results[#results + 1] = view(items[i]) end
  return 200, { count = #items, results = results }
end

local function list_groups(st, req)
  local l, o, errs = page_args(req)
  if errs then return invalid(errs) end
  -- tag_key (repeatable): the group has the key; tag_key_value: a JSON object of key -> value
  local tag_keys = req.args_all.tag_key or {}
  for _, k in ipairs(tag_keys) do
    if not valid_tag_key(k) then return invalid({ tag_key = { TAG_KEY_RULE } }) end
  end
  local tag_values = {}
  if req.args.tag_key_value ~= nil then
    local v = sgsim.json.decode(req.args.tag_key_value)
    if type(v) ~= "table" or v[1] ~= nil or not validate_tags(v, false) then
      return invalid({ tag_key_value = { "Input should be a JSON object of tag key to value; " .. TAG_KEY_RULE ..
        ", values 1..255 characters" } })
    end
    tag_values = v
  end
  local matches = {}
  for _, id in ipairs(st.group_order) do
    local g = st.groups[id]
    local ok = g ~= nil and (req.args.name == nil or g.name == req.args.name)
    for _, k in ipairs(tag_keys) do
      if ok and (g.tags or {})[k] == nil then ok = false end
    end
    for k, v in pairs(tag_values) do
      if ok and (g.tags or {})[k] ~= v then ok = false end
    end
    if ok then matches[#matches + 1] = g end
  end
  return page(matches, l, o, function(g) return group_view(st, g) end)
end

local function create_group(st, req, ctx)
  local body, s, b = json_object(req, true)
  if not body then return s, b end
  local errs = {}
  for k in pairs(body) do
    if k ~= "name" and k ~= "description" and k ~= "rules" and k ~= "tags" then
      errs[tostring(k)] = { "Extra inputs are not permitted" }
    end
  end
  if absent(body.name) then
    errs.name = { "Field required" }
  elseif not valid_name(body.name) then
    errs.name = { NAME_MESSAGE }
  end
  if body.description ~= nil and (type(body.description) ~= "string" or sgsim.chars(body.description) > 255) then
    errs.description = { "Input should be a valid string of at most 255 characters" }
  end
  local id = ctx.new_id("gcore-sg")
  local specs
  if body.rules == nil then
    specs = allow_all_specs()
  else
    specs = validate_rule_list(st, body.rules, errs, id)
  end
  local tags = {}
  if body.tags ~= nil then -- null too: the schema's tags is an object, not nullable
    local t, field, err = validate_tags(body.tags)
    if not t then errs[field] = { err } else tags = t end
  end
  if next(errs) then return invalid(errs) end
  local now = ctx.now()
  local g = { id = id, name = body.name, description = absent(body.description) and "" or body.description,
    created_at = now, updated_at = now, revision_number = 0, tags = {}, rules = {} }
  for k, v in pairs(tags) do g.tags[k] = v end
  local rule_ids = {}
  for _, spec in ipairs(specs) do
    local r = new_rule(ctx, spec)
    g.rules[#g.rules + 1] = r
    rule_ids[#rule_ids + 1] = r.id
  end
  local tid = new_task(st, ctx, "create_security_group", body, { kind = "create_group", group = g },
    { security_groups = { id }, security_group_rules = rule_ids })
  return 200, { tasks = { tid } }
end

local function update_group(st, g, req, ctx)
  local body, s, b = json_object(req, true)
  if not body then return s, b end
  local errs = {}
  for k in pairs(body) do
    if k ~= "name" and k ~= "description" and k ~= "rules" and k ~= "tags" then
      errs[tostring(k)] = { "Extra inputs are not permitted" }
    end
  end
  local action = { kind = "update_group", group_id = g.id }
  local changed = false
  if body.name ~= nil then
    if not valid_name(body.name) then
      errs.name = { NAME_MESSAGE }
    elseif body.name ~= g.name then
      action.name, changed = body.name, true
    end
  end
  if body.description ~= nil then
    if type(body.description) ~= "string" or sgsim.chars(body.description) > 255 then
      errs.description = { "Input should be a valid string of at most 255 characters" }
    elseif body.description ~= g.description then
      action.description, changed = body.description, true
    end
  end
  local new_ids = {}
  if body.rules ~= nil then
    local specs = validate_rule_list(st, body.rules, errs, g.id)
    if specs then
      -- rules already present (same fields) are kept with their ids; the rest are new
      local desired, matched = {}, {}
      for _, spec in ipairs(specs) do
        local same = take_same_rule(g.rules, matched, spec)
        if same then
          desired[#desired + 1] = same
        else
          local r = new_rule(ctx, spec)
          desired[#desired + 1] = r
          new_ids[#new_ids + 1] = r.id
          changed = true
        end
      end
      for i in ipairs(g.rules) do
        if not matched[i] then changed = true end
      end
      action.rules = desired
    end
  end
  if body.tags == null then
    if next(g.tags or {}) then action.tags_clear, changed = true, true end
  elseif body.tags ~= nil then
    local t, field, err = validate_tags(body.tags, true)
    if not t then
      errs[field] = { err }
    else
      for k, v in pairs(t) do
        if (v == null and g.tags[k] ~= nil) or (v ~= null and g.tags[k] ~= v) then changed = true end
      end
      action.tags = t
    end
  end
  if next(errs) then return invalid(errs) end
  if not changed then return 200, { tasks = {} } end -- SPEC: no change, no task
  local tid = new_task(st, ctx, "update_security_group", body, action,
    { security_group_rules = new_ids })
  return 200, { tasks = { tid } }
end

local function add_rule(st, g, req, ctx)
  local body, s, b = json_object(req, true)
  if not body then return s, b end
  local errs = {}
  local spec = validate_rule(st, body, "", errs, g.id)
  if not spec then return invalid(errs) end
  local key = rule_key(spec)
  for _, r in ipairs(g.rules) do
    if rule_key(r) == key then
      return fail(INFERRED.duplicate_status, "Security group rule already exists: " .. r.id)
    end
  end
  for _, id in ipairs(st.pending) do
    local t = st.tasks[id]
    if t and t.action.kind == "add_rule" and t.action.group_id == g.id and rule_key(t.action.rule) == key then
      return fail(INFERRED.duplicate_status, "Security group rule already exists (being created by task " .. t.id .. ")")
    end
  end
  if rule_count_with_pending(st, g) >= MAX_RULES then
    return fail(403, string.format("Security group %s has reached the limit of %d rules", g.id, MAX_RULES),
      "QuotaLimitExceed")
  end
  local rule = new_rule(ctx, spec)
  local tid = new_task(st, ctx, "create_security_group_rule", body,
    { kind = "add_rule", group_id = g.id, rule = rule }, { security_group_rules = { rule.id } })
  return 200, { tasks = { tid } }
end

local function delete_rule(st, g, rule_id, ctx)
  for _, r in ipairs(g.rules) do
    if r.id == rule_id then
      local tid = new_task(st, ctx, "delete_security_group_rule", nil,
        { kind = "delete_rule", group_id = g.id, rule_id = rule_id }, {})
      return 200, { tasks = { tid } }
    end
  end
  return fail(404, "Security group rule " .. rule_id .. " not found")
end

local function delete_group(st, g)
  if g.is_default then
    return fail(INFERRED.default_delete_status, "The default security group cannot be deleted")
  end
  for _, inst in pairs(st.instances) do
    for _, id in ipairs(inst.security_groups) do
      if id == g.id then
        return fail(INFERRED.in_use_status,
          "Security group " .. g.id .. " is in use by instance " .. inst.id .. ": detach it from all instances first")
      end
    end
  end
  st.groups[g.id] = nil
  for i, id in ipairs(st.group_order) do
    if id == g.id then
      table.remove(st.group_order, i)
      break
    end
  end
  return 204, nil
end

local function copy_group(st, g, req, ctx)
  local body, s, b = json_object(req, true)
  if not body then return s, b end
  local errs = {}
  for k in pairs(body) do
    if k ~= "name" then errs[tostring(k)] = { "Extra inputs are not permitted" } end
  end
  if absent(body.name) then
    errs.name = { "Field required" }
  elseif not valid_name(body.name) then
    errs.name = { NAME_MESSAGE }
  end
  if next(errs) then return invalid(errs) end
  local now = ctx.now()
  local c = { id = ctx.new_id("gcore-sg"), name = body.name, description = g.description,
    created_at = now, updated_at = now, revision_number = 0, tags = {}, rules = {} }
  for k, v in pairs(g.tags or {}) do c.tags[k] = v end
  for _, r in ipairs(g.rules) do
    local spec = {}
    for k, v in pairs(r) do spec[k] = v end
    if spec.remote_group_id == g.id then spec.remote_group_id = c.id end -- a deep copy
    c.rules[#c.rules + 1] = new_rule(ctx, spec)
  end
  st.groups[c.id] = c
  st.group_order[#st.group_order + 1] = c.id
  return 200, group_view(st, c)
end

local function revert_group(st, g, ctx)
  g.rules = {}
  for _, spec in ipairs(default_rule_specs()) do g.rules[#g.rules + 1] = new_rule(ctx, spec) end
  g.revision_number = (g.revision_number or 0) + 1
  g.updated_at = ctx.now()
  return 200, group_view(st, g)
end

---@return table
local function instance_view(st, inst)
  local groups = {}
  for _, id in ipairs(inst.security_groups) do
    if st.groups[id] then groups[#groups + 1] = { name = st.groups[id].name } end
  end
  return { id = inst.id, name = inst.name, status = inst.status, vm_state = "active",
    project_id = st.project_id, region_id = st.region_id, region = st.region,
    security_groups = groups }
end

---@return string[]|nil names, integer|nil status, table|nil body
local function names_from_body(req)
  local body, s, b = json_object(req, true)
  if not body then return nil, s, b end
  local names = {}
  if body.name ~= nil then
    if type(body.name) ~= "string" then return nil, invalid({ name = { "Input should be a valid string" } }) end
    names[1] = body.name
  elseif body.ports_security_group_names ~= nil then
    local list = body.ports_security_group_names
    if type(list) ~= "table" then
      return nil, invalid({ ports_security_group_names = { "Input should be a valid list" } })
    end
    for i, item in ipairs(list) do
      if type(item) ~= "table" or type(item.security_group_names) ~= "table" then
        return nil, invalid({ ["ports_security_group_names." .. (i - 1)] = { "security_group_names is required" } })
      end
      for _, n in ipairs(item.security_group_names) do
        if type(n) ~= "string" then
          return nil, invalid({ ["ports_security_group_names." .. (i - 1)] = { "names must be strings" } })
        end
        names[#names + 1] = n
      end
    end
  else
    return nil, invalid({ name = { "Field required" } })
  end
  for k in pairs(body) do
    if k ~= "name" and k ~= "ports_security_group_names" then
      return nil, invalid({ [tostring(k)] = { "Extra inputs are not permitted" } })
    end
  end
  return names
end

local function assign(st, inst, req, add)
  local names, s, b = names_from_body(req)
  if not names then return s, b end
  local ids = {}
  for _, n in ipairs(names) do
    local found
    for _, gid in ipairs(st.group_order) do
      if st.groups[gid] and st.groups[gid].name == n then
        found = gid
        break
      end
    end
    if not found then return fail(404, "Security group " .. n .. " not found") end
    ids[#ids + 1] = found
  end
  for _, gid in ipairs(ids) do
    local idx
    for i, have in ipairs(inst.security_groups) do
      if have == gid then idx = i end
    end
    if add then
      if not idx then table.insert(inst.security_groups, gid) end
    else
      if not idx then
        return fail(404, "Security group " .. st.groups[gid].name .. " is not assigned to instance " .. inst.id)
      end
      table.remove(inst.security_groups, idx)
    end
  end
  return 204, nil
end

---Is text a date-time as the SPEC's format says (RFC 3339, the zone optional)?
---@param text string
---@return boolean
local function rfc3339(text)
  local rest = text:match("^%d%d%d%d%-%d%d%-%d%d[Tt ]%d%d:%d%d:%d%d(.*)$")
  if not rest then return false end
  rest = rest:gsub("^%.%d+", "", 1)
  return rest == "" or rest == "Z" or rest == "z" or rest:match("^[+-]%d%d:?%d%d$") ~= nil
end

local TASK_STATES = { NEW = true, RUNNING = true, FINISHED = true, ERROR = true }
local ORDER_BY = { asc = true, desc = true }

---Adds to errs what breaks the SPEC's types in the filters of GET /cloud/v1/tasks. The emulator
---applies state, task_type and order_by and only checks the others, so that a malformed filter
---is refused, as the vendor refuses it, rather than ignored.
---@param errs table<string,string[]>
local function check_task_filters(req, errs)
  local ack = req.args.is_acknowledged
  if ack ~= nil and ack ~= "true" and ack ~= "false" then errs.is_acknowledged = { "Input should be a valid boolean" } end
  for _, f in ipairs({ "from_timestamp", "to_timestamp" }) do
    if req.args[f] ~= nil and not rfc3339(req.args[f]) then errs[f] = { "Input should be a valid datetime" } end
  end
  for _, f in ipairs({ "project_id", "region_id" }) do
    for _, v in ipairs(req.args_all[f] or {}) do
      if not query_integer(v) then errs[f] = { "Input should be a valid integer" } end
    end
  end
  for _, v in ipairs(req.args_all.state or {}) do
    if not TASK_STATES[v] then errs.state = { "Input should be 'ERROR', 'FINISHED', 'NEW' or 'RUNNING'" } end
  end
  for _, f in ipairs({ "order_by", "sorting" }) do
    if req.args[f] ~= nil and not ORDER_BY[req.args[f]] then errs[f] = { "Input should be 'asc' or 'desc'" } end
  end
end

local function list_tasks(st, req, now)
  local l, o, errs = page_args(req)
  errs = errs or {}
  check_task_filters(req, errs)
  if next(errs) then return invalid(errs) end
  local states = {}
  for _, v in ipairs(req.args_all.state or {}) do states[v] = true end
  local matches = {}
  for i = #st.task_order, 1, -1 do -- order_by desc (the default)
    local t = st.tasks[st.task_order[i]]
    if t and (next(states) == nil or states[task_state(t, now)]) and
        (req.args.task_type == nil or req.args.task_type == t.task_type) then
      matches[#matches + 1] = t
    end
  end
  if req.args.order_by == "asc" then
    local rev = {}
    for i = #matches, 1, -1 do rev[#rev + 1] = matches[i] end
    matches = rev
  end
  return page(matches, l, o, function(t) return task_view(st, t, now) end)
end

local function method_not_allowed()
  return fail(405, "HTTP 405: Method Not Allowed")
end

---Checks project and region path parameters.
---@return integer|nil status, table|nil body
local function check_scope(st, p, r)
  local pi, ri = math.tointeger(tonumber(p)), math.tointeger(tonumber(r))
  if not pi or not p:match("^%d+$") then return invalid({ project_id = { "Input should be a valid integer" } }) end
  if not ri or not r:match("^%d+$") then return invalid({ region_id = { "Input should be a valid integer" } }) end
  if pi ~= st.project_id then return fail(404, "Project " .. p .. " not found") end
  if ri ~= st.region_id then return fail(404, "Region " .. r .. " not found") end
  return nil
end

---@param st GcoreState
---@param req table
---@param ctx table
---@return integer status, table|string|nil body, table|nil headers
function M.handle(st, req, ctx)
  local ok, s, b = authenticate(st, req)
  if not ok then return s, b end
  local path, m = req.path, req.method
  -- one instant for the whole request, so that a task's state and its effect agree
  local now = ctx.now()
  M.advance(st, ctx, now)

  -- tasks: no project or region in the path (a task id is globally unique)
  if path == "/cloud/v1/tasks" then
    if m ~= "GET" then return method_not_allowed() end
    return list_tasks(st, req, now)
  end
  -- Acknowledging marks finished tasks as seen (acknowledged_at/by): the documented task API.
  if path == "/cloud/v1/tasks/acknowledge_all" then
    if m ~= "POST" then return method_not_allowed() end
    local scope_status, scope_body = check_scope(st, req.args.project_id or "", req.args.region_id or "")
    if scope_status then return scope_status, scope_body end
    for _, id in ipairs(st.task_order) do
      local t = st.tasks[id]
      if t and not t.acknowledged_at then t.acknowledged_at = now end
    end
    return 204, nil
  end
  local ack = path:match("^/cloud/v1/tasks/([^/]+)/acknowledge$")
  if ack then
    if m ~= "POST" then return method_not_allowed() end
    local t = st.tasks[ack]
    if not t then return fail(404, "Task " .. ack .. " not found") end
    t.acknowledged_at = t.acknowledged_at or now
    return 200, task_view(st, t, now)
  end
  local ap, ar = path:match("^/cloud/v1/tasks/([^/]+)/([^/]+)/active$")
  if ap then
    if m ~= "GET" then return method_not_allowed() end
    local scope_status, scope_body = check_scope(st, ap, ar)
    if scope_status then return scope_status, scope_body end
    local l, o, errs = page_args(req)
    if errs then return invalid(errs) end
    local active = {}
    for _, id in ipairs(st.task_order) do
      local t = st.tasks[id]
      local state = t and task_state(t, now)
      if state == "NEW" or state == "RUNNING" then active[#active + 1] = t end
    end
    return page(active, l, o, function(t) return task_view(st, t, now) end)
  end
  local tid = path:match("^/cloud/v1/tasks/([^/]+)$")
  if tid then
    if m ~= "GET" then return method_not_allowed() end
    local t = st.tasks[tid]
    if not t then return fail(404, "Task " .. tid .. " not found") end
    return 200, task_view(st, t, now)
  end

  local ver, kind, p, r, rest = path:match("^/cloud/(v[12])/([%w_]+)/([^/]+)/([^/]+)(.*)$")
  if not ver then return fail(404, "Not found: " .. path) end
  local scope_status, scope_body = check_scope(st, p, r)

  if ver == "v1" and kind == "securitygroups" then
    if scope_status then return scope_status, scope_body end
    if rest == "" or rest == "/" then
      if m == "GET" then return list_groups(st, req) end
      return method_not_allowed()
    end
    local gid, sub = rest:match("^/([^/]+)(.*)$")
    local g = st.groups[gid]
    if not g then return fail(404, "Security group " .. gid .. " not found") end
    if sub == "" then
      if m == "GET" then return 200, group_view(st, g) end
      if m == "DELETE" then return delete_group(st, g) end
      return method_not_allowed()
    elseif sub == "/copy" then
      if m ~= "POST" then return method_not_allowed() end
      return copy_group(st, g, req, ctx)
    elseif sub == "/revert" then
      if m ~= "POST" then return method_not_allowed() end
      return revert_group(st, g, ctx)
    elseif sub == "/instances" then
      if m ~= "GET" then return method_not_allowed() end
      local results = {}
      for _, iid in ipairs(st.instance_order) do
        local inst = st.instances[iid]
        for _, have in ipairs(inst and inst.security_groups or {}) do
          if have == g.id then results[#results + 1] = instance_view(st, inst) end
        end
      end
      return 200, { count = #results, results = results }
    end
    return fail(404, "Not found: " .. path)
  elseif ver == "v2" and kind == "security_groups" then
    if scope_status then return scope_status, scope_body end
    if rest == "" or rest == "/" then
      if m == "POST" then return create_group(st, req, ctx) end
      return method_not_allowed()
    end
    local gid, sub = rest:match("^/([^/]+)(.*)$")
    local g = st.groups[gid]
    if not g then return fail(404, "Security group " .. gid .. " not found") end
    if sub == "" then
      if m == "PATCH" then return update_group(st, g, req, ctx) end
      return method_not_allowed()
    elseif sub == "/rules" then
      if m == "POST" then return add_rule(st, g, req, ctx) end
      return method_not_allowed()
    end
    local rule_id = sub:match("^/rules/([^/]+)$")
    if rule_id then
      if m == "DELETE" then return delete_rule(st, g, rule_id, ctx) end
      return method_not_allowed()
    end
    return fail(404, "Not found: " .. path)
  elseif ver == "v1" and kind == "instances" then
    if scope_status then return scope_status, scope_body end
    if rest == "" or rest == "/" then
      if m ~= "GET" then return method_not_allowed() end
      local results = {}
      for _, iid in ipairs(st.instance_order) do
        if st.instances[iid] then results[#results + 1] = instance_view(st, st.instances[iid]) end
      end
      return 200, { count = #results, results = results }
    end
    local iid, sub = rest:match("^/([^/]+)(.*)$")
    local inst = st.instances[iid]
    if not inst then return fail(404, "Instance " .. iid .. " not found") end
    if sub == "" then
      if m ~= "GET" then return method_not_allowed() end
      return 200, instance_view(st, inst)
    elseif sub == "/addsecuritygroup" or sub == "/delsecuritygroup" then
      if m ~= "POST" then return method_not_allowed() end
      return assign(st, inst, req, sub == "/addsecuritygroup")
    elseif sub == "/securitygroups" then
      if m ~= "GET" then return method_not_allowed() end
      local results = {}
      for _, gid in ipairs(inst.security_groups) do
        local g = st.groups[gid]
        if g then results[#results + 1] = { id = g.id, name = g.name } end
      end
      return 200, { count = #results, results = results }
    end
  end
  return fail(404, "Not found: " .. path)
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
  st.api_key = string.format("%d$sgrunsimgcoreaccount%08d", 5000 + n, n)
  local web
  for _, id in ipairs(st.group_order) do
    if st.groups[id].name == "web" then web = st.groups[id] end
  end
  local refs = { "web" }
  for i = 2, groups do
    local g = ctx.json.decode(ctx.json.encode(web))
    g.id, g.name = ctx.new_id("gcore-sg"), "web-" .. i
    for k, r in ipairs(g.rules) do g.rules[k] = new_rule(ctx, r) end
    st.groups[g.id] = g
    st.group_order[#st.group_order + 1] = g.id
    refs[i] = g.name
  end
  return st, { key = st.api_key, credentials = { api_key = st.api_key, project_id = PROJECT_ID,
    region_id = REGION_ID }, groups = refs, source = "web" }
end

---The API token a request presents (its account), or nil.
---@param req table
---@return string|nil
function M.account_key(req)
  return (req.headers["authorization"] or ""):match("^%S+%s+(%S+)%s*$")
end

return M
