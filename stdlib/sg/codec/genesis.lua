--- Genesis Cloud rules <-> canonical rules.
--
-- Rule JSON (reference/genesis_barrack_hostup.md §1.2): protocol ("tcp"|"udp"|"icmp"|"all"),
-- direction, port_range_min, port_range_max (null = all ports / icmp). That is all: a Genesis rule
-- has no network, so it is open to every address, and it has no ICMP type and no description.
-- Decisions:
-- * The schema has no address family; sgrun models Genesis rules as IPv4 ("0.0.0.0/0") and treats
--   IPv6 rules as inexpressible [inferred: nothing in the clients mentions IPv6].
-- * Rules live inside the group and are written as a full list (PATCH rules); encode gives one
--   element of that list.
-- Groups on the wire: stdlib/sg/groups/genesis.lua.
local rule = require "sg.rule"
local codec = require "sg.codec"

local M = { name = "genesis" }

local DECODE_OPTS = { where = "genesis rule" }

---@type sg.Capabilities
M.capabilities = {
  provider = "Genesis Cloud",
  protocols = codec.set { "tcp", "udp", "icmp", "any" },
  ports = true,
  icmp_type = false,
  icmp_code = false,
  cidr = false,
  remote_group = false,
  ipv6 = false,
  egress = true,
  actions = { accept = true },
  description = false,
  ordered = false,
  max_rules = nil, -- unknown
  -- no documented length or range limits (reference §1.2, §1.6): no description_max, no icmp_max
  -- (a Genesis rule has neither field); group names: see groups/genesis.lua name_problem
}

---@param raw table a SecurityGroupRule object
---@param _ctx sg.GroupContext? unused: Genesis rules reference nothing
---@return sg.Rule
function M.decode(raw, _ctx)
  local protocol = rule.protocol(raw.protocol, "genesis rule")
  local pmin, pmax = codec.port_range(protocol, raw, "genesis rule " .. tostring(raw.id),
    M.capabilities.provider)
  return rule.normalize({
    direction = raw.direction,
    protocol = protocol,
    port_min = pmin,
    port_max = pmax,
    cidr = rule.ANY_V4,
  }, DECODE_OPTS)
end

---@param r sg.Rule a rule translated for Genesis Cloud
---@return table one element of the security group's rules list
function M.encode(r)
  -- explicit nulls, as the documented examples send them
  return {
    protocol = r.protocol == "any" and "all" or r.protocol,
    direction = r.direction,
    port_range_min = r.port_min or rule.NULL,
    port_range_max = r.port_max or rule.NULL,
  }
end

return codec.define(M)
