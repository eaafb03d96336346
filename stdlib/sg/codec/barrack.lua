--- Barrack (barrack.ai) rules <-> canonical rules.
--
-- INFERRED SHAPE. Barrack publishes one readable API page (add instance security rule); the rest of
-- its model is inferred from Hyperstack, which Barrack appears to wrap
-- (reference/genesis_barrack_hostup.md §2.0). This file is the one place that guess lives:
-- * rule body {direction, protocol, ethertype, remote_ip_prefix, port_range_min, port_range_max},
--   the same for instance rules and firewall rules; responses add id (and status, created_at);
-- * protocols tcp, udp and icmp only (the page text); "any" in a response is read as any;
--   ICMP over IPv6 is "icmp" with ethertype "IPv6" (both in the body's enums), canonical icmpv6;
-- * remote_ip_prefix is required ("0.0.0.0/0" for any); ports are left out for all ports;
-- * no description, no ICMP type/code, no remote groups, allow rules only.
-- Groups on the wire (firewalls, legacy instances): stdlib/sg/groups/barrack.lua.
local rule = require "sg.rule"
local codec = require "sg.codec"

local M = { name = "barrack" }

local DECODE_OPTS = { clear_host_bits = true, where = "barrack rule" }

---@type sg.Capabilities
M.capabilities = {
  provider = "Barrack",
  -- icmpv6 is written as icmp + IPv6 (see encode): the rule read back is the same icmpv6 rule
  protocols = codec.set { "tcp", "udp", "icmp", "icmpv6" },
  ports = true,
  icmp_type = false,
  icmp_code = false,
  cidr = true,
  remote_group = false,
  ipv6 = true,
  egress = true,
  actions = { accept = true },
  description = false,
  ordered = false,
  max_rules = nil, -- unknown
  -- no documented length or range limits (reference §2): a Barrack rule has no description and no
  -- ICMP type/code, so no description_max or icmp_max; firewall names have no documented limit
}

---@param raw table a security rule / firewall rule object
---@param _ctx sg.GroupContext? unused: Barrack rules reference nothing
---@return sg.Rule
function M.decode(raw, _ctx)
  local protocol = rule.protocol(raw.protocol, "barrack rule")
  local pmin, pmax = codec.port_range(protocol, raw, "barrack rule " .. tostring(raw.id),
    M.capabilities.provider)
  return rule.normalize({
    direction = raw.direction,
    protocol = protocol,
    ethertype = raw.ethertype,
    port_min = pmin,
    port_max = pmax,
    cidr = raw.remote_ip_prefix,
  }, DECODE_OPTS)
end

---@param r sg.Rule a rule translated for Barrack
---@return table body of add-rule (instance security rule or firewall rule)
function M.encode(r)
  return {
    direction = r.direction,
    -- the documented protocol enum has no icmpv6: the ethertype (IPv6 here) says which ICMP
    protocol = r.protocol == "icmpv6" and "icmp" or r.protocol,
    ethertype = r.ethertype,
    remote_ip_prefix = r.cidr,
    port_range_min = r.port_min,
    port_range_max = r.port_max,
  }
end

return codec.define(M)
