-- HostUp (cloud.hostup.se) v1 API emulator: the per-VM Proxmox firewall.
--
-- Faithful to ../shared/reference/genesis_barrack_hostup.md section 3: `X-API-Key`, the
-- `{success, timestamp, requestId, data}` envelope, the v1 error body, `?pos=` addressing and
-- Proxmox position semantics (a new rule is inserted at position 0 and every other rule shifts
-- down; a delete shifts the later ones up), Proxmox's dport/source syntax, the rule limit.
-- Guesses are in the INFERRED block below and only there.

local sgsim = require "sgsim"
local is_object = sgsim.is_object

local DEMO_KEY = "hostup-demo-key-0123456789abcdef"

-- [FACT] v1 rule field enums and the options body.
local TYPES = { ["in"] = true, out = true, group = true }
local ACTIONS = { ACCEPT = true, DROP = true, REJECT = true }
local PROTOS = { icmp = true, tcp = true, udp = true }
local POLICIES = { ACCEPT = true, DROP = true }
local RULE_FIELDS = { "type", "action", "proto", "dport", "source", "comment", "enable" }
-- [FACT for Proxmox] rule options a VM rule may carry that the v1 body has no field for: a rule
-- made in Proxmox's panel (loaded through /_sim/load) keeps and lists them, and a v1 write that
-- sends one is refused ("Unknown option").
local PANEL_FIELDS = { "dest", "sport", "iface", "log", "icmp-type", "macro" }
-- [FACT for Proxmox] port list syntax limits and the source length limit.
local MAX_PORT_NUMBERS = 15
-- [FACT for Proxmox] the common ICMP type names it takes (the full list is iptables')
local ICMP_TYPE_NAMES = { any = true, ["echo-reply"] = true, ["destination-unreachable"] = true,
  redirect = true, ["echo-request"] = true, ["router-advertisement"] = true,
  ["router-solicitation"] = true, ["time-exceeded"] = true, ["parameter-problem"] = true,
  ["timestamp-request"] = true, ["timestamp-reply"] = true }
local MAX_SOURCE_LEN = 512

local TITLES = {
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [409] = "Conflict", [413] = "Payload Too Large",
  [429] = "Too Many Requests", [500] = "Internal Server Error", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [504] = "Gateway Timeout",
}

--------------------------------------------------------------------------------------------------
-- INFERRED: the reference marks these unknown or inferred. Keep guesses here, only here.
--------------------------------------------------------------------------------------------------
local INFERRED = {
  -- "Both headers work on v1 [INFERRED, strong]": X-API-Key (documented) and Authorization: Bearer.
  -- Only UNAUTHORIZED and INTERNAL_ERROR are documented codes; the others are guesses.
  codes = { [400] = "INVALID_REQUEST", [401] = "UNAUTHORIZED", [404] = "NOT_FOUND",
    [405] = "METHOD_NOT_ALLOWED", [413] = "PAYLOAD_TOO_LARGE", [429] = "RATE_LIMITED" },
  -- maxRules 100 is the v2 example value (GET /api/v2/vps/{id}/firewall reports it per VPS; the
  -- v1 API reports none): applied to v1 adds too, the add that would cross it refused as a 400 in
  -- the documented v1 error body; status and code are guesses. stdlib/sg/groups/hostup.lua
  -- assumes the same number (VM_RULE_LIMIT) and refuses a change that would cross it.
  max_rules = 100,
  rule_limit_code = "RULE_LIMIT_REACHED",
  max_comment_len = 512,
  -- Proxmox answers "no rule at position N" with a plain die, i.e. a 500; the one documented
  -- DELETE error is exactly such a 500 ("Failed to delete firewall rule"). A pos past the end is
  -- therefore a 500 INTERNAL_ERROR here, which clients must not blindly retry.
  missing_pos_status = 500,
  -- Every documented body field is required; `dport` for icmp must be "" (Proxmox refuses ports
  -- on icmp), `source` must be an address (whether "" means any is unknown). Ports are numeric
  -- only (Proxmox also takes /etc/services names). Aliases and +ipsets are not emulated.
  -- A `type: group` rule names a Proxmox security group in `action` and is otherwise validated
  -- like the others, since the page marks every field required.
  -- The 429 body carries retryAfter in seconds.
  retry_after_default = 1,
}
--------------------------------------------------------------------------------------------------

---@class HostupRule  one Proxmox VM firewall rule; its position is its index - 1
---@field type string
---@field action string
---@field proto string? nil (or "") only for a rule made in Proxmox's panel: every protocol
---@field dport string "" when the rule has no port restriction
---@field source string? nil only for a rule made in Proxmox's panel (any address)
---@field dest string? only on a rule made in Proxmox's panel: the v1 body has no dest
---@field iface string? like dest (also sport, log, icmp-type, macro: PANEL_FIELDS)
---@field comment string
---@field enable integer

---@class HostupVM
---@field vmid integer
---@field rules HostupRule[]
---@field options {enable: integer, policy_in: string}

---@class HostupState
---@field api_key string
---@field vms HostupVM[]

local M = { name = "hostup", prefix = "/hostup/api", demo_target = "vm=10000" }

M.credentials_banner = "HostUp: HOSTUP_API_KEY=" .. DEMO_KEY .. " (X-API-Key); VMs 10000 and 10001"

---@param base_url string
---@return table<string,string>
function M.env(base_url)
  return { SGRUN_HOSTUP_URL = base_url .. M.prefix, HOSTUP_API_KEY = DEMO_KEY }
end

---ISO 8601 UTC with milliseconds, as in "2026-02-10T00:00:00.000Z".
---@param t number epoch seconds
---@return string
local function iso(t)
  local s = math.floor(t)
  return os.date("!%Y-%m-%dT%H:%M:%S", s) .. string.format(".%03dZ", math.floor((t - s) * 1000))
end

---A version-4 UUID, the documented requestId format.
---@param rand fun(): number
---@return string
local function uuid(rand)
  return (("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx"):gsub("[xy]", function(c)
    local v = math.floor(rand() * 16)
    if c == "y" then v = 8 + v % 4 end
    return string.format("%x", v)
  end))
end

---The v1 error body `{error, message, code, timestamp, requestId}`; for 429 the documented
---`{error, message, retryAfter, requestId}`.
---@param status integer
---@param message string
---@param code string|nil machine code; defaults by status
---@param now number epoch seconds
---@param rand fun(): number
---@return table
local function error_shape(status, message, code, now, rand)
  local title = TITLES[status] or (status >= 500 and "Internal Server Error" or "Error")
  if status == 429 then
    return { error = title, message = message, retryAfter = INFERRED.retry_after_default,
      requestId = uuid(rand) }
  end
  return { error = title, message = message, requestId = uuid(rand), timestamp = iso(now),
    code = code or INFERRED.codes[status] or (status >= 500 and "INTERNAL_ERROR" or "ERROR") }
end

---For the core's injected faults (no ctx there: wall clock, unseeded ids).
---@param status integer
---@param message string
---@return table
function M.error_body(status, message)
  return error_shape(status, message, nil, os.time(), math.random)
end

---@return integer, table
local function fail(ctx, status, message, code)
  return status, error_shape(status, message, code, ctx.now(), ctx.random)
end

---@return integer, table
local function envelope(ctx, status, data)
  return status, { success = true, timestamp = iso(ctx.now()), requestId = uuid(ctx.random), data = data }
end

---Checks a Proxmox port list: "443", "80,443", "1000:2000"; a range counts as two numbers.
---@param s string
---@return string|nil error
local function check_dport(s)
  local count = 0
  for item in (s .. ","):gmatch("([^,]*),") do
    local a, b = item:match("^(%d+):(%d+)$")
    if not a then a = item:match("^(%d+)$") end
    if not a then return "invalid port '" .. item .. "' (numbers, ranges a:b and comma lists only)" end
    a, b = tonumber(a), b and tonumber(b)
    if a > 65535 or (b and b > 65535) then return "port '" .. item .. "' is out of range 0..65535" end
    if b and a > b then return "backwards range '" .. item .. "' not allowed" end
    count = count + (b and 2 or 1)
  end
  if count > MAX_PORT_NUMBERS then
    return "too many entries in port list (> " .. MAX_PORT_NUMBERS .. " numbers)"
  end
end

---Checks a Proxmox address list (addresses, CIDRs, ranges a-b; no mixing of IPv4 and IPv6).
---@param s string
---@return integer|nil ipversion, string|nil error
local function check_source(s)
  if #s > MAX_SOURCE_LEN then return nil, "source is longer than " .. MAX_SOURCE_LEN .. " characters" end
  local family
  for item in (s .. ","):gmatch("([^,]*),") do
    local lo, hi = item:match("^([^-]+)%-([^-]+)$")
    for _, part in ipairs(lo and { lo, hi } or { item }) do
      if lo and part:find("/", 1, true) then return nil, "invalid address range '" .. item .. "'" end
      -- the emulator's own parser, not the client's: the two must not agree by construction
      local net, why = sgsim.parse_cidr(part, true)
      if not net then return nil, "source '" .. part .. "' " .. why end
      -- host bits are taken as sent: HostUp's own example rule has "2001:db8::1/32"
      local fam = net.family == 6 and "IPv6" or "IPv4"
      if family and fam ~= family then return nil, "detected mixed ipv4/ipv6 addresses in rule" end
      family = fam
    end
  end
  return family == "IPv6" and 6 or 4
end

---Validates a full rule body (POST and PUT take the same seven fields).
---@return HostupRule|nil rule, string|nil error
local function parse_rule(body)
  if not is_object(body) then return nil, "request body must be a JSON object" end
  local known = {}
  for _, f in ipairs(RULE_FIELDS) do known[f] = true end
  for k in pairs(body) do
    if not known[k] then return nil, "Unknown option: " .. tostring(k) end
  end
  for _, f in ipairs(RULE_FIELDS) do
    if body[f] == nil then return nil, f .. " is required" end
  end
  if type(body.type) ~= "string" or not TYPES[body.type] then return nil, "type must be one of: in, out, group" end
  if type(body.action) ~= "string" then return nil, "action must be a string" end
  if body.type == "group" then
    -- For a group rule Proxmox takes the security group's name as the action.
    if not body.action:match("^[A-Za-z][A-Za-z0-9_-]+$") or #body.action > 20 then
      return nil, "action must be a security group name for type group"
    end
  elseif not ACTIONS[body.action] then
    return nil, "action must be one of: ACCEPT, DROP, REJECT"
  end
  if type(body.proto) ~= "string" or not PROTOS[body.proto] then return nil, "proto must be one of: icmp, tcp, udp" end
  if type(body.dport) ~= "string" then return nil, "dport must be a string" end
  if body.proto == "icmp" then
    -- Proxmox keeps an ICMP type in dport for icmp rules [inferred from PVE's verify_rule]
    if body.dport ~= "" and not ICMP_TYPE_NAMES[body.dport] and
        not (body.dport:match("^%d+$") and tonumber(body.dport) <= 255) then
      return nil, "invalid ICMP type '" .. body.dport .. "' for protocol 'icmp'"
    end
  else
    local err = check_dport(body.dport)
    if err then return nil, "dport: " .. err end
  end
  if type(body.source) ~= "string" or body.source == "" then
    return nil, "source must be an address, CIDR or range (e.g. 0.0.0.0/0)"
  end
  local ipversion, err = check_source(body.source)
  if err then return nil, err end
  -- icmp is ICMP for IPv4: Proxmox refuses it with IPv6 addresses [inferred from PVE]
  if body.proto == "icmp" and ipversion == 6 then
    return nil, "detected mixed ipv4/ipv6 addresses in rule (proto icmp is IPv4 only)"
  end
  if type(body.comment) ~= "string" then return nil, "comment must be a string" end
  if sgsim.chars(body.comment) > INFERRED.max_comment_len then
    return nil, "comment is longer than " .. INFERRED.max_comment_len .. " characters"
  end
  local enable = math.type(body.enable) == "integer" and body.enable
  if enable ~= 0 and enable ~= 1 then return nil, "enable must be 0 or 1" end
  return { type = body.type, action = body.action, proto = body.proto, dport = body.dport,
    source = body.source, comment = body.comment, enable = enable }
end

---The rule as the POST/PUT responses echo it (no pos: the documented create response has none).
---@param r HostupRule
---@return table
local function echo_rule(r)
  local out = {}
  for _, f in ipairs(RULE_FIELDS) do out[f] = r[f] end
  return out
end

---Proxmox config digest: changes whenever the rule list changes.
---@return string
local function digest(ctx, vm)
  local parts = {}
  for i, r in ipairs(vm.rules) do
    -- a rule made in Proxmox's panel may leave any option out, proto included (every protocol)
    local fields = {}
    for _, f in ipairs(RULE_FIELDS) do fields[#fields + 1] = tostring(r[f] or "") end
    for _, f in ipairs(PANEL_FIELDS) do fields[#fields + 1] = tostring(r[f] or "") end
    parts[i] = table.concat(fields, "\0")
  end
  return ctx.crypto.hex_encode(ctx.crypto.sha256(table.concat(parts, "\n"))):sub(1, 40)
end

---@return HostupVM|nil
local function find_vm(state, vmid)
  for _, vm in ipairs(state.vms) do
    if vm.vmid == vmid then return vm end
  end
end

---Reads `?pos=`: a non-negative integer, and a rule must be there.
---@return integer|nil index, integer status, string|nil error
local function rule_at(vm, req, what)
  local pos = req.args.pos
  if pos == nil or pos == "" then return nil, 400, "pos query parameter is required" end
  if not pos:match("^%d+$") then return nil, 400, "pos must be a non-negative integer" end
  local i = tonumber(pos) + 1
  if i > #vm.rules then return nil, INFERRED.missing_pos_status, "Failed to " .. what .. " firewall rule" end
  return i
end

---@alias HostupOp fun(state: HostupState, req: table, ctx: table, vm: HostupVM): integer, table
---@type table<string, HostupOp>
local ops = {}

function ops.list_rules(_, _, ctx, vm)
  local d = digest(ctx, vm)
  local out = {}
  for i, r in ipairs(vm.rules) do
    local row = echo_rule(r)
    -- Proxmox leaves unset options out: an empty comment or dport, and a rule made in its panel
    -- without a protocol (it matches every protocol; the v1 body cannot write one)
    if row.comment == "" then row.comment = nil end
    if row.dport == "" then row.dport = nil end
    if row.proto == "" then row.proto = nil end
    -- rules made in Proxmox's panel (loaded through /_sim/load) may have no source (any
    -- address) and options the v1 body cannot write; ipversion comes from the addresses
    for _, f in ipairs(PANEL_FIELDS) do
      if r[f] ~= "" then row[f] = r[f] end
    end
    local address = r.source or r.dest
    row.pos, row.digest, row.ipversion = i - 1, d, address and check_source(address) or nil
    out[i] = row
  end
  return envelope(ctx, 200, out)
end

function ops.add_rule(_, req, ctx, vm)
  local rule, err = parse_rule(req.json)
  if not rule then return fail(ctx, 400, err) end
  if #vm.rules >= INFERRED.max_rules then
    return fail(ctx, 400, "Firewall rule limit reached (" .. INFERRED.max_rules .. " rules)",
      INFERRED.rule_limit_code)
  end
  table.insert(vm.rules, 1, rule)
  return envelope(ctx, 200, { success = true, rule = echo_rule(rule),
    message = "Firewall rule added successfully" })
end

function ops.update_rule(_, req, ctx, vm)
  local i, status, err = rule_at(vm, req, "update")
  if not i then return fail(ctx, status, err) end
  local rule
  rule, err = parse_rule(req.json)
  if not rule then return fail(ctx, 400, err) end
  vm.rules[i] = rule
  return envelope(ctx, 200, { success = true, rule = echo_rule(rule), pos = tostring(i - 1),
    message = "Firewall rule updated successfully" })
end

function ops.delete_rule(_, req, ctx, vm)
  local i, status, err = rule_at(vm, req, "delete")
  if not i then return fail(ctx, status, err) end
  table.remove(vm.rules, i)
  return envelope(ctx, 200, { success = true, pos = tostring(i - 1) })
end

function ops.set_options(_, req, ctx, vm)
  local body = req.json
  if not is_object(body) then return fail(ctx, 400, "request body must be a JSON object") end
  for k in pairs(body) do
    if k ~= "enable" and k ~= "policy_in" then return fail(ctx, 400, "Unknown option: " .. tostring(k)) end
  end
  if body.enable == nil and body.policy_in == nil then
    return fail(ctx, 400, "send at least one of enable, policy_in")
  end
  local enable = body.enable
  if enable ~= nil then
    enable = math.type(enable) == "integer" and enable
    if enable ~= 0 and enable ~= 1 then return fail(ctx, 400, "enable must be 0 or 1") end
  end
  if body.policy_in ~= nil and not (type(body.policy_in) == "string" and POLICIES[body.policy_in]) then
    return fail(ctx, 400, "policy_in must be one of: ACCEPT, DROP")
  end
  if enable then vm.options.enable = enable end
  if body.policy_in then vm.options.policy_in = body.policy_in end
  return envelope(ctx, 200, { success = true, message = "Firewall options updated successfully" })
end

------------------------------------------------------------------------------------------------
-- Firewall groups (reference 3.2: list, create, replace; a VM's assignment read and removed).
-- INFERRED: group rules are checked like v1 rules where the fields overlap, `enable` may be a
-- boolean or 0/1 (boolean on replace, line 315), `pos` is renumbered from the list order; how a
-- group is assigned to a VM is unknown, so assignments only change through DELETE (and dumps).

local GROUP_RULE_FIELDS = { id = true, pos = true, type = true, action = true, proto = true, enable = true,
  dport = true, sport = true, source = true, dest = true, comment = true, iface = true, macro = true }

---@return table|nil group fields, string|nil error
local function parse_group(body)
  if not is_object(body) then return nil, "request body must be a JSON object" end
  for k in pairs(body) do
    if k ~= "name" and k ~= "description" and k ~= "rules" then return nil, "Unknown option: " .. tostring(k) end
  end
  if type(body.name) ~= "string" or body.name == "" or sgsim.chars(body.name) > 255 then
    return nil, "name must be a non-empty string of at most 255 characters"
  end
  if type(body.description) ~= "string" or sgsim.chars(body.description) > 1024 then
    return nil, "description must be a string of at most 1024 characters"
  end
  if not sgsim.is_array(body.rules) then return nil, "rules must be an array" end
  local rules = {}
  for i, r in ipairs(body.rules) do
    local where = "rules[" .. (i - 1) .. "]"
    if not is_object(r) then return nil, where .. " must be an object" end
    for k in pairs(r) do
      if not GROUP_RULE_FIELDS[k] then return nil, where .. ": Unknown option: " .. tostring(k) end
    end
    for _, f in ipairs({ "type", "action", "proto", "enable", "dport", "comment" }) do
      if r[f] == nil then return nil, where .. "." .. f .. " is required" end
    end
    if r.type ~= "in" and r.type ~= "out" then return nil, where .. ".type must be one of: in, out" end
    if type(r.action) ~= "string" or not ACTIONS[r.action] then
      return nil, where .. ".action must be one of: ACCEPT, DROP, REJECT"
    end
    if type(r.proto) ~= "string" or not PROTOS[r.proto] then return nil, where .. ".proto must be one of: icmp, tcp, udp" end
    local enable = r.enable
    if type(enable) == "boolean" then enable = enable and 1 or 0 end
    if enable ~= 0 and enable ~= 1 then return nil, where .. ".enable must be a boolean or 0/1" end
    for _, f in ipairs({ "dport", "sport", "source", "dest", "comment", "iface", "macro" }) do
      if r[f] ~= nil and type(r[f]) ~= "string" then return nil, where .. "." .. f .. " must be a string" end
    end
    if r.pos ~= nil and not (math.type(r.pos) == "integer" and r.pos >= 0) then
      return nil, where .. ".pos must be a non-negative integer"
    end
    if r.id ~= nil and type(r.id) ~= "string" and math.type(r.id) ~= "integer" then
      return nil, where .. ".id must be a string or an integer"
    end
    if sgsim.chars(r.comment) > INFERRED.max_comment_len then return nil, where .. ".comment is too long" end
    if r.proto ~= "icmp" and r.dport ~= "" then
      local err = check_dport(r.dport)
      if err then return nil, where .. ".dport: " .. err end
    end
    if r.source ~= nil and r.source ~= "" then
      local _, err = check_source(r.source)
      if err then return nil, where .. ".source: " .. err end
    end
    rules[i] = { pos = i - 1, type = r.type, action = r.action, proto = r.proto, enable = enable == 1,
      dport = r.dport, sport = r.sport, source = r.source, dest = r.dest, comment = r.comment,
      iface = r.iface, macro = r.macro }
  end
  return { name = body.name, description = body.description, rules = rules }
end

local function group_view(g)
  return { id = g.id, client_id = g.client_id, name = g.name, description = g.description,
    is_system = g.is_system, rules_count = #g.rules, created_at = g.created_at, updated_at = g.updated_at }
end

local group_ops = {}

function group_ops.list(state, _, ctx)
  local out = {}
  for i, g in ipairs(state.groups) do out[i] = group_view(g) end
  return envelope(ctx, 200, { groups = out })
end

function group_ops.create(state, req, ctx)
  local g, err = parse_group(req.json)
  if not g then return fail(ctx, 400, err) end
  local now = iso(ctx.now())
  g.id, g.client_id, g.is_system, g.created_at, g.updated_at = uuid(ctx.random), state.client_id, false, now, now
  state.groups[#state.groups + 1] = g
  local view = group_view(g)
  view.rules_count = nil
  return envelope(ctx, 200, { group = view, message = "Firewall group created successfully" })
end

function group_ops.replace(state, req, ctx, id)
  local target
  for _, g in ipairs(state.groups) do
    if g.id == id then target = g end
  end
  if not target then return fail(ctx, 404, "Firewall group not found", "group_not_found") end
  if target.is_system then return fail(ctx, 403, "System firewall groups cannot be changed") end
  local g, err = parse_group(req.json)
  if not g then return fail(ctx, 400, err) end
  target.name, target.description, target.rules = g.name, g.description, g.rules
  target.updated_at = iso(ctx.now())
  return envelope(ctx, 200, { id = target.id, message = "Firewall group updated successfully" })
end

function ops.get_group_assignment(_, _, ctx, vm)
  return envelope(ctx, 200, { assignment = vm.group or sgsim.json.null })
end

function ops.remove_group_assignment(_, _, ctx, vm)
  vm.group = nil
  return envelope(ctx, 200, { success = true })
end

local routes = {
  { "^/vm/([^/]+)/firewall/group$", { GET = ops.get_group_assignment, DELETE = ops.remove_group_assignment } },
  { "^/vm/([^/]+)/firewall$",
    { GET = ops.list_rules, POST = ops.add_rule, PUT = ops.update_rule, DELETE = ops.delete_rule } },
  { "^/vm/([^/]+)/firewall/options$", { PUT = ops.set_options } },
}

---@param state HostupState
---@param req table
---@param ctx table
---@return integer status, table body, table|nil headers
function M.handle(state, req, ctx)
  local key = req.headers["x-api-key"]
  if not key and req.headers["authorization"] then
    key = req.headers["authorization"]:match("^[Bb]earer%s+(%S+)%s*$")
  end
  if not key or key == "" then return fail(ctx, 401, "Authentication required") end
  if key ~= state.api_key then return fail(ctx, 401, "Invalid API key") end
  state.groups = state.groups or {} -- dumps from before firewall groups
  if req.path == "/firewall-groups" then
    if req.method == "GET" then return group_ops.list(state, req, ctx) end
    if req.method == "POST" then return group_ops.create(state, req, ctx) end
    return fail(ctx, 405, "Method " .. req.method .. " not allowed")
  end
  local gid = req.path:match("^/firewall%-groups/([^/]+)$")
  if gid then
    if req.method == "PUT" then return group_ops.replace(state, req, ctx, gid) end
    return fail(ctx, 405, "Method " .. req.method .. " not allowed")
  end
  for _, route in ipairs(routes) do
    local vmid = req.path:match(route[1])
    if vmid then
      local op = route[2][req.method]
      if not op then
        local allowed = {}
        for m in pairs(route[2]) do allowed[#allowed + 1] = m end
        table.sort(allowed)
        local status, body = fail(ctx, 405, "Method " .. req.method .. " not allowed")
        return status, body, { Allow = table.concat(allowed, ", ") }
      end
      local n = vmid:match("^%d+$") and math.tointeger(tonumber(vmid))
      if not n or n < 1 then return fail(ctx, 400, "vmid must be an integer >= 1") end
      local vm = find_vm(state, n)
      if not vm then return fail(ctx, 404, "VM " .. vmid .. " not found") end
      return op(state, req, ctx, vm)
    end
  end
  return fail(ctx, 404, "Route not found")
end

---Seeded demo account: VM 10000 with three rules and the firewall on, VM 10001 without rules.
---@return HostupState
function M.new_state()
  return {
    api_key = DEMO_KEY,
    client_id = 4711,
    groups = {},
    vms = {
      { vmid = 10000, options = { enable = 1, policy_in = "DROP" }, rules = {
        { type = "in", action = "ACCEPT", proto = "tcp", dport = "22", source = "198.51.100.10",
          comment = "Allow SSH from office", enable = 1 },
        { type = "in", action = "ACCEPT", proto = "tcp", dport = "80,443", source = "0.0.0.0/0",
          comment = "Web", enable = 1 },
        { type = "in", action = "ACCEPT", proto = "icmp", dport = "", source = "0.0.0.0/0",
          comment = "Ping", enable = 1 },
      } },
      { vmid = 10001, options = { enable = 0, policy_in = "ACCEPT" }, rules = {} },
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
  st.api_key = string.format("hostup-account-key-%08d", n)
  local refs = { "vm=10000" }
  for i = 2, groups do
    local vm = ctx.json.decode(ctx.json.encode(st.vms[1]))
    vm.vmid = 10000 + i
    st.vms[#st.vms + 1] = vm
    refs[i] = "vm=" .. vm.vmid
  end
  return st, { key = st.api_key, credentials = { api_key = st.api_key }, groups = refs, source = "vm=10000" }
end

---The API key a request presents (its account), or nil.
---@param req table
---@return string|nil
function M.account_key(req)
  return req.headers["x-api-key"] or (req.headers["authorization"] or ""):match("^[Bb]earer%s+(%S+)%s*$")
end

return M
