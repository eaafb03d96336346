--- Exoscale (API v2) rules <-> canonical rules.
--
-- Rule JSON (reference/exoscale.md §3.3): flow-direction, protocol, start-port, end-port,
-- network | security-group {id | name, visibility}, icmp {type, code} (-1 = any), description.
-- Decisions:
-- * protocol "all" (any protocol) is only in the newest OpenAPI (python-exoscale 2026-08-07);
--   older specs lack it. sgrun follows the newest spec, so "any" rules encode as "all".
-- * tcp/udp rules need ports: all ports encode as 1-65535.
-- * A remote group encodes by id when ctx.group_ids knows it, else by name with visibility
--   "public" for Exoscale's documented public groups; anything else raises before a request.
-- * The add-rule schema's limits (description, ICMP type/code) are capabilities: a rule past
--   them is inexpressible (codec.limit_problem).
-- Groups on the wire: stdlib/sg/groups/exoscale.lua.
local rule = require "sg.rule"
local codec = require "sg.codec"
local json = require "sg.json"

local M = { name = "exoscale" }

local DECODE_OPTS = { clear_host_bits = true, where = "exoscale rule" }

local PROTOCOLS = { "tcp", "udp", "icmp", "icmpv6", "esp", "ah", "gre", "ipip", "any" }

---@type sg.Capabilities
M.capabilities = {
  provider = "Exoscale",
  protocols = codec.set(PROTOCOLS),
  ports = true,
  icmp_type = true,
  icmp_code = true,
  cidr = true,
  remote_group = true,
  ipv6 = true,
  egress = true,
  actions = { accept = true },
  description = true,
  ordered = false,
  max_rules = nil, -- not published
  -- add-rule-to-security-group (OpenAPI): description maxLength 255, icmp.type and icmp.code
  -- -1..254 (-1 = any), so ICMP type or code 255, which canonical rules allow, cannot be sent
  description_max = 255,
  icmp_max = 254,
  -- public groups any organisation may reference by name (community docs, security groups)
  public_groups = codec.set { "public-nlb-healthcheck-sources", "public-sos-endpoints",
    "public-sks-apiservers" },
}

-- Why a security-group field names no group, or nil: a reference is an object with an id or a
-- name (reference §3.3), each a non-empty string where present.
local function unnamed(sg)
  if type(sg) ~= "table" or json.is_array(sg) then return "not an object" end
  local named = false
  for _, f in ipairs { "id", "name" } do
    local v = sg[f]
    if not rule.absent(v) then
      if type(v) ~= "string" or v == "" then return f .. " " .. json.encode(v) .. " is not a group " .. f end
      named = true
    end
  end
  if not named then return "neither id nor name" end
  return nil
end

-- The rule's remote group (a name where it can be told), or nil for a network rule. A rule has
-- exactly one of network and security-group (reference §3.3: the CLI refuses a rule with neither,
-- and the schema has no other source). Anything else has no exact reading, and taken for a rule
-- without a source it would read as "from anywhere": refused, saying what to do.
local function remote_of(raw, ctx, where)
  local sg, has_network = raw["security-group"], not rule.absent(raw.network)
  local problem
  if rule.absent(sg) then
    if has_network then return nil end
    problem = "has neither network nor security-group"
  elseif has_network then
    problem = "sets both network and security-group"
  else
    local why = unnamed(sg)
    if not why then
      if not rule.absent(sg.name) then return sg.name end
      return (ctx and ctx.group_names and ctx.group_names[sg.id]) or sg.id
    end
    problem = "has security-group " .. json.encode(sg) .. ", which names no group (" .. why .. ")"
  end
  error(string.format("%s %s, and Exoscale rules have exactly one of the two, so sgrun cannot tell " ..
    "what it lets in: in Exoscale, replace the rule with one that sets a network or a security " ..
    "group (or remove it), then read the group again", where, problem), 0)
end

---@param raw table an Exoscale rule object
---@param ctx sg.GroupContext?
---@return sg.Rule
function M.decode(raw, ctx)
  local protocol = rule.protocol(raw.protocol, "exoscale rule")
  local where = "exoscale rule " .. (rule.absent(raw.id) and "(no id)" or tostring(raw.id))
  local remote = remote_of(raw, ctx, where)
  -- responses may carry placeholder ports or icmp on rules they do not apply to: read each only
  -- where the protocol has it (both ports 0 is such a placeholder: codec.exact_ports)
  local pmin, pmax, itype, icode
  if rule.PORT_PROTOCOLS[protocol] then
    pmin, pmax = codec.exact_ports(raw, "start-port", "end-port", where, M.capabilities.provider)
  end
  local icmp = raw.icmp
  if (protocol == "icmp" or protocol == "icmpv6") and not rule.absent(icmp) then
    itype, icode = codec.int(icmp.type), codec.int(icmp.code)
  end
  return rule.normalize({
    direction = raw["flow-direction"],
    protocol = protocol,
    port_min = pmin,
    port_max = pmax,
    cidr = raw.network,
    remote_group = remote,
    icmp_type = itype,
    icmp_code = icode,
    description = raw.description,
  }, DECODE_OPTS)
end

---@param r sg.Rule a rule translated for Exoscale
---@param ctx sg.GroupContext?
---@return table body of add-rule-to-security-group
function M.encode(r, ctx)
  -- a rule past the schema's limits is refused here too, before its request (a plan refuses it
  -- earlier: codec.check)
  local over = codec.limit_problem(M.capabilities, r)
  if over then error("exoscale: " .. rule.tostring(r) .. ": " .. over, 0) end
  local body = {
    ["flow-direction"] = r.direction,
    protocol = r.protocol == "any" and "all" or r.protocol,
    description = r.description,
  }
  if rule.PORT_PROTOCOLS[r.protocol] then
    body["start-port"], body["end-port"] = r.port_min or 1, r.port_max or 65535
  end
  if r.protocol == "icmp" or r.protocol == "icmpv6" then
    -- 0 is a real type (echo reply) and must be sent; -1 means any
    body.icmp = { type = r.icmp_type or -1, code = r.icmp_code or -1 }
  end
  if r.remote_group then
    local id = ctx and ctx.group_ids and ctx.group_ids[r.remote_group]
    if id then
      body["security-group"] = { id = id }
    elseif M.capabilities.public_groups[r.remote_group] then
      body["security-group"] = { name = r.remote_group, visibility = "public" }
    else
      error(string.format("exoscale: remote group %q has no id; pass ctx.group_ids", r.remote_group), 0)
    end
  else
    body.network = r.cidr
  end
  return body
end

return codec.define(M)
