-- Exposure audit.
local t = require "testlib"
local audit = require "sg.audit"

local function one(r, policy)
  local f = audit.check({ r }, policy)
  return f[1], #f
end

t.test("any-source ssh, rdp and database ports", function()
  for port, name in pairs { [22] = "ssh", [3389] = "rdp", [3306] = "mysql", [5432] = "postgresql",
    [1433] = "mssql", [27017] = "mongodb", [6379] = "redis", [9200] = "elasticsearch" } do
    local f = one { direction = "ingress", protocol = "tcp", port = port, cidr = "0.0.0.0/0" }
    t.ok(f, "port " .. port)
    t.eq(f.severity, "high")
    t.eq(f.ports, { port })
    t.eq(f.why, "tcp " .. port .. " (" .. name .. ") open to 0.0.0.0/0")
  end
  t.eq(one { direction = "ingress", protocol = "tcp", port = 22, cidr = "::/0" }.why,
    "tcp 22 (ssh) open to ::/0")
end)

t.test("implicit any-source is caught", function()
  local f = one { direction = "ingress", protocol = "tcp", port_min = 22, port_max = 22 }
  t.eq(f.why, "tcp 22 (ssh) open to 0.0.0.0/0")
end)

t.test("ranges, all ports and any protocol", function()
  local f = one { direction = "ingress", protocol = "tcp", port = "3000-6000", cidr = "0.0.0.0/0" }
  t.eq(f.ports, { 3306, 3389, 5432, 5601, 5984 })
  t.eq(one { direction = "ingress", protocol = "tcp" }.severity, "critical")
  local any = one { direction = "ingress", protocol = "all", cidr = "::/0" }
  t.eq({ any.severity, any.why }, { "critical", "every protocol and port is open to ::/0" })
end)

t.test("not exposures: restricted sources, egress, other ports, groups, drop rules", function()
  local _, count = one { direction = "ingress", protocol = "tcp", port = 22, cidr = "10.0.0.0/8" }
  t.eq(count, 0)
  t.eq(#audit.check {
    { direction = "egress", protocol = "tcp", port = 22 },
    { direction = "ingress", protocol = "tcp", port = 443 },
    { direction = "ingress", protocol = "tcp", port = 22, remote_group = "bastion" },
    { direction = "ingress", protocol = "tcp", port = 22, action = "drop" },
    { direction = "ingress", protocol = "udp", port = 53 },
    { direction = "ingress", protocol = "icmp" },
  }, 0)
end)

t.test("policy: add and ignore ports, trusted networks", function()
  local _, count = one({ direction = "ingress", protocol = "tcp", port = 22 }, { ignore_ports = { 22 } })
  t.eq(count, 0)
  local f = one({ direction = "ingress", protocol = "tcp", port = 8443 }, { ports = { [8443] = "admin" } })
  t.eq(f.why, "tcp 8443 (admin) open to 0.0.0.0/0")
  local office = { allow_cidrs = { "203.0.113.0/24" } }
  t.eq(#audit.check({ { direction = "ingress", protocol = "tcp", port = 22, cidr = "203.0.113.8/29" } },
    office), 0)
  local outside = one({ direction = "ingress", protocol = "tcp", port = 22, cidr = "198.51.100.0/24" }, office)
  t.eq({ outside.severity, outside.why },
    { "medium", "tcp 22 (ssh) open to 198.51.100.0/24, outside the allowed networks" })
  local world_ok = { allow_cidrs = { "0.0.0.0/0" } }
  t.eq(#audit.check({ { direction = "ingress", protocol = "tcp", port = 22 } }, world_ok), 0)
  t.raises(function() audit.check({}, { allow_cidrs = { "nope" } }) end, 'audit: allow_cidrs[1] "nope"')
end)

t.test("findings in input order; invalid rules named", function()
  local f = audit.check {
    { direction = "ingress", protocol = "tcp", port = 3389 },
    { direction = "ingress", protocol = "tcp", port = 22 },
  }
  t.eq({ f[1].ports[1], f[2].ports[1] }, { 3389, 22 })
  t.raises(function() audit.check { { direction = "ingress", protocol = "tcp", port = 0 } } end,
    "audit: rules[1]: port_min 0 is out of range")
end)

t.run()
