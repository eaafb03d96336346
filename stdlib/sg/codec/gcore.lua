--- Gcore Cloud (OpenStack Neutron underneath) rules <-> canonical rules.
--
-- Rule JSON (reference/gcore.md §3.2, §4.10): direction, ethertype, protocol, port_range_min,
-- port_range_max, remote_ip_prefix, remote_group_id, description.
-- Decisions:
-- * "any protocol" is null: responses may say null, "any" or (legacy) "0"; the v2 request enum
--   has no "any", so encode leaves protocol out (null).
-- * ICMP: as in Neutron, port_range_min/max carry the ICMP type/code [inferred for Gcore].
-- * IPv6 ICMP is "ipv6-icmp" on the wire and "icmpv6" in the canonical rule.
-- * No remote means any address of the rule's ethertype (IPv4 when absent); ports both 0 or both
--   null, and 1-65535, all mean every port (Neutron stores a full range as null); one end alone is
--   refused (codec.exact_ports).
-- Groups on the wire: stdlib/sg/groups/gcore.lua.
local rule = require "sg.rule"
local codec = require "sg.codec"
local json = require "sg.json"

local M = { name = "gcore" }

local DECODE_OPTS = { clear_host_bits = true, where = "gcore rule" }

-- SecurityGroupProtocolEnumV2 in canonical spelling, plus "any" (sent as null)
local PROTOCOLS = { "ah", "dccp", "egp", "esp", "gre", "icmp", "igmp", "ipip", "ipv6-encap",
  "ipv6-frag", "icmpv6", "ipv6-nonxt", "ipv6-opts", "ipv6-route", "ospf", "pgm", "rsvp", "sctp",
  "tcp", "udp", "udplite", "vrrp", "any" }

---@type sg.Capabilities
M.capabilities = {
  provider = "Gcore",
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
  max_rules = 250, -- inbound and outbound together (SPEC maxItems, firewall docs)
  -- CreateSecurityGroupRuleSerializerV2 description maxLength 255; port_range_min/max (which carry
  -- ICMP type and code) are 0..65535, so every canonical ICMP type/code fits
  description_max = 255,
}

-- Gcore lets a rule set remote_ip_prefix and remote_group_id together ("Both options can be
-- combined", reference §7.2; the emulator holds such rules), but says nothing of what the pair
-- matches: either source, or only the group's members inside the prefix (Neutron, underneath,
-- refuses the pair, so there is no upstream meaning to borrow). A canonical rule has one source,
-- and reading the pair as either guess could widen it when it is copied or restored, so the read
-- refuses it and says how to make it readable.
local function both_sources(raw, protocol, remote)
  local ports = ""
  if not rule.absent(raw.port_range_min) then
    ports = string.format(" %s-%s", tostring(raw.port_range_min), tostring(raw.port_range_max))
  end
  local group = tostring(raw.remote_group_id)
  if remote ~= raw.remote_group_id then group = string.format("%s (%s)", group, tostring(remote)) end
  return string.format("gcore rule %s (%s %s%s) sets both remote_ip_prefix %s and remote_group_id %s; " ..
    "Gcore does not say whether such a rule matches either source or only that group's members " ..
    "inside the prefix, and sgrun reads a rule with one source, so it does not guess: in Gcore, " ..
    "replace the rule with rules that set one of the two each (or remove it), then read the group again",
    tostring(raw.id), tostring(raw.direction), protocol, ports, tostring(raw.remote_ip_prefix), group)
end

-- A source the rule names but sgrun cannot read, raised before the rule would read as "from
-- anywhere" (no remote): a remote_group_id that is not a group id (the schema: uuid4 or null), or
-- an address group (remote_address_group_id, which the schema does not have: Neutron's address
-- groups, a set of networks kept apart from the rule, which a canonical rule cannot hold).
local function refuse_unreadable_source(raw, where)
  local gid, agid = raw.remote_group_id, raw.remote_address_group_id
  if not rule.absent(agid) then
    error(string.format("%s takes its source from address group remote_address_group_id %s, which " ..
      "sgrun cannot model (a rule's source is one network or one security group): in Gcore, " ..
      "replace the rule with rules that set remote_ip_prefix for each network of the address group " ..
      "(or remove it), then read the group again", where, tostring(agid)), 0)
  end
  if not rule.absent(gid) and (type(gid) ~= "string" or gid == "") then
    error(string.format("%s has remote_group_id %s, which names no group, so sgrun cannot tell what " ..
      "it lets in: in Gcore, replace the rule with one that sets remote_group_id to a group's id or " ..
      "remote_ip_prefix to a network (or remove it), then read the group again", where,
      json.encode(gid)), 0)
  end
end

---@param raw table a SecurityGroupRule object
---@param ctx sg.GroupContext?
---@return sg.Rule
function M.decode(raw, ctx)
  local protocol = raw.protocol
  if protocol == "0" or protocol == 0 then protocol = nil end -- legacy SDK spelling of "any"
  protocol = rule.protocol(protocol, "gcore rule")
  local where = "gcore rule " .. (rule.absent(raw.id) and "(no id)" or tostring(raw.id))
  local pmin, pmax, itype, icode
  if protocol == "icmp" or protocol == "icmpv6" then
    itype, icode = codec.int(raw.port_range_min), codec.int(raw.port_range_max)
    if itype == nil then icode = nil end -- a code alone matches nothing narrower in Neutron
  elseif rule.PORT_PROTOCOLS[protocol] then
    pmin, pmax = codec.exact_ports(raw, "port_range_min", "port_range_max", where, M.capabilities.provider)
  end
  refuse_unreadable_source(raw, where)
  local remote
  local gid = raw.remote_group_id
  if not rule.absent(gid) then
    local group = ctx and ctx.group
    remote = (ctx and ctx.group_names and ctx.group_names[gid]) or
      (group and group.id == gid and group.name) or gid
    if not rule.absent(raw.remote_ip_prefix) then error(both_sources(raw, protocol, remote), 0) end
  end
  return rule.normalize({
    direction = raw.direction,
    protocol = protocol,
    ethertype = raw.ethertype,
    port_min = pmin,
    port_max = pmax,
    cidr = raw.remote_ip_prefix,
    remote_group = remote,
    icmp_type = itype,
    icmp_code = icode,
    description = raw.description,
  }, DECODE_OPTS)
end

---@param r sg.Rule a rule translated for Gcore
---The v2 request's protocol for a canonical one: nil for any (the schema's default, null).
---@param protocol string a canonical protocol (sg.rule.protocol)
---@return string|nil
function M.wire_protocol(protocol)
  if protocol == "any" then return nil end
  return protocol == "icmpv6" and "ipv6-icmp" or protocol
end

---@param ctx sg.GroupContext?
---@return table one CreateSecurityGroupRuleSerializerV2 (also an element of the PATCH rules list)
function M.encode(r, ctx)
  -- a rule past the schema's limits is refused here too, before its request (a plan refuses it
  -- earlier: codec.check)
  local over = codec.limit_problem(M.capabilities, r)
  if over then error("gcore: " .. rule.tostring(r) .. ": " .. over, 0) end
  local body = {
    direction = r.direction,
    ethertype = r.ethertype,
    description = r.description,
  }
  body.protocol = M.wire_protocol(r.protocol)
  if r.port_min then
    body.port_range_min, body.port_range_max = r.port_min, r.port_max
  elseif r.icmp_type then
    body.port_range_min, body.port_range_max = r.icmp_type, r.icmp_code
  end
  if r.remote_group then
    local group = ctx and ctx.group
    local id = (ctx and ctx.group_ids and ctx.group_ids[r.remote_group]) or
      (group and group.name == r.remote_group and group.id)
    if not id then
      error(string.format("gcore: remote group %q has no id; pass ctx.group_ids", r.remote_group), 0)
    end
    body.remote_group_id = id
  else
    body.remote_ip_prefix = r.cidr
  end
  return body
end

return codec.define(M)
