--- The sixth provider's rules <-> canonical rules: {direction, protocol, port_min, port_max,
-- cidr}; tcp, udp and any; allow rules only; no description, ICMP type or remote group.
local rule = require "sg.rule"
local codec = require "sg.codec"

local M = { name = "sixth" }

---@type sg.Capabilities
M.capabilities = {
  provider = "Sixth", protocols = codec.set { "tcp", "udp", "any" }, ports = true,
  icmp_type = false, icmp_code = false, cidr = true, remote_group = false, ipv6 = true,
  egress = true, actions = { accept = true }, description = false, ordered = false,
}

function M.decode(raw)
  return rule.normalize({ direction = raw.direction, protocol = raw.protocol,
    port_min = codec.int(raw.port_min), port_max = codec.int(raw.port_max), cidr = raw.cidr },
    { where = "sixth rule" })
end

function M.encode(r)
  return { direction = r.direction, protocol = r.protocol, port_min = r.port_min,
    port_max = r.port_max, cidr = r.cidr }
end

return codec.define(M)
