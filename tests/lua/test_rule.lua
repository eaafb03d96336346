-- Canonical rule model: normalisation, identity, printing, CIDR canonicalisation.
local t = require "testlib"
local rule = require "sg.rule"
local cjson = require "cjson"

local function n(r) return rule.normalize(r) end
local function plain(r)
  local out = {}
  for k, v in pairs(r) do out[k] = v end
  return out
end

-- input -> expected canonical fields (description-free)
local CASES = {
  { "upper case", { direction = "INGRESS", protocol = "TCP", port_min = 22, port_max = 22,
      cidr = "0.0.0.0/0" },
    { direction = "ingress", protocol = "tcp", port_min = 22, port_max = 22, cidr = "0.0.0.0/0",
      ethertype = "IPv4", action = "accept" } },
  { "bare address is /32", { direction = "ingress", protocol = "tcp", port_min = 22, cidr = "10.0.0.1" },
    { direction = "ingress", protocol = "tcp", port_min = 22, port_max = 22, cidr = "10.0.0.1/32",
      ethertype = "IPv4", action = "accept" } },
  { "full port range is nil", { direction = "ingress", protocol = "udp", port_min = 1,
      port_max = 65535, cidr = "10.0.0.0/8" },
    { direction = "ingress", protocol = "udp", cidr = "10.0.0.0/8", ethertype = "IPv4",
      action = "accept" } },
  { "port range string", { direction = "ingress", protocol = "tcp", port = "8000-8080" },
    { direction = "ingress", protocol = "tcp", port_min = 8000, port_max = 8080, cidr = "0.0.0.0/0",
      ethertype = "IPv4", action = "accept" } },
  { "float ports from JSON", { direction = "ingress", protocol = "tcp", port_min = 443.0,
      port_max = 443.0 },
    { direction = "ingress", protocol = "tcp", port_min = 443, port_max = 443, cidr = "0.0.0.0/0",
      ethertype = "IPv4", action = "accept" } },
  { "implicit any source", { direction = "egress" },
    { direction = "egress", protocol = "any", cidr = "0.0.0.0/0", ethertype = "IPv4",
      action = "accept" } },
  { "implicit any source IPv6", { direction = "ingress", protocol = "tcp", port = 22,
      ethertype = "ipv6" },
    { direction = "ingress", protocol = "tcp", port_min = 22, port_max = 22, cidr = "::/0",
      ethertype = "IPv6", action = "accept" } },
  { "IPv6 compressed", { direction = "ingress", protocol = "tcp", port = 22,
      cidr = "2001:DB8:0:0:0:0:0:0/32" },
    { direction = "ingress", protocol = "tcp", port_min = 22, port_max = 22, cidr = "2001:db8::/32",
      ethertype = "IPv6", action = "accept" } },
  { "icmp over IPv6 is icmpv6", { direction = "ingress", protocol = "icmp", cidr = "::/0",
      icmp_type = 128 },
    { direction = "ingress", protocol = "icmpv6", cidr = "::/0", ethertype = "IPv6",
      icmp_type = 128, action = "accept" } },
  { "icmp -1 is any", { direction = "ingress", protocol = "icmp", icmp_type = -1, icmp_code = -1 },
    { direction = "ingress", protocol = "icmp", cidr = "0.0.0.0/0", ethertype = "IPv4",
      action = "accept" } },
  { "remote group", { direction = "ingress", protocol = "tcp", port = 5432, remote_group = "web" },
    { direction = "ingress", protocol = "tcp", port_min = 5432, port_max = 5432,
      remote_group = "web", ethertype = "IPv4", action = "accept" } },
  { "action aliases", { direction = "ingress", action = "DROP", cidr = "192.0.2.0/24" },
    { direction = "ingress", protocol = "any", cidr = "192.0.2.0/24", ethertype = "IPv4",
      action = "drop" } },
  { "json nulls", { direction = "ingress", protocol = cjson.null, port_min = cjson.null,
      cidr = cjson.null, description = cjson.null },
    { direction = "ingress", protocol = "any", cidr = "0.0.0.0/0", ethertype = "IPv4",
      action = "accept" } },
}

for _, c in ipairs(CASES) do
  t.test("normalize: " .. c[1], function()
    t.eq(plain(n(c[2])), c[3])
  end)
end

t.test("protocol aliases and numbers", function()
  for input, want in pairs { any = "any", all = "any", ALL = "any", ["-1"] = "any", [-1] = "any",
    [6] = "tcp", ["17"] = "udp", [1] = "icmp", [58] = "icmpv6", ["ipv6-icmp"] = "icmpv6",
    [50] = "esp", ESP = "esp", [132] = "sctp", [253] = "253", GRE = "gre" } do
    t.eq(rule.protocol(input), want, tostring(input))
  end
  t.eq(rule.protocol(nil), "any")
  t.eq(n { direction = "ingress" }.protocol, "any")
end)

t.test("equal rules have equal keys", function()
  local a = n { direction = "ingress", protocol = "TCP", port_min = 22, cidr = "10.0.0.1",
    description = "ssh" }
  local b = n { direction = "Ingress", protocol = 6, port_min = 22, port_max = 22,
    cidr = "10.0.0.1/32" }
  t.ok(rule.equal(a, b))
  t.eq(rule.key(a), rule.key(b))
  t.ok(not rule.equal(a, n { direction = "egress", protocol = "tcp", port = 22, cidr = "10.0.0.1" }))
  t.ok(rule.equal(n { direction = "ingress", protocol = "tcp" },
    n { direction = "ingress", protocol = "tcp", port_min = 1, port_max = 65535,
      cidr = "0.0.0.0/0" }))
  t.ok(rule.equal(n { direction = "egress", protocol = "all" }, n { direction = "egress" }))
end)

t.test("key of a hand-built table equals key of its normalised form", function()
  local r = n { direction = "ingress", protocol = "tcp", port = 22 }
  t.eq(rule.key(plain(r)), rule.key(r))
  t.ok(rule.is_normalized(r))
  t.ok(not rule.is_normalized(plain(r)))
end)

t.test("tostring", function()
  t.eq(rule.tostring(n { direction = "ingress", protocol = "tcp", port = 22 }),
    "ingress tcp 22 from 0.0.0.0/0")
  t.eq(rule.tostring(n { direction = "egress", protocol = "tcp", port = "8000-8080",
    cidr = "10.0.0.0/8", description = "app" }), "egress tcp 8000-8080 to 10.0.0.0/8  # app")
  t.eq(rule.tostring(n { direction = "ingress", protocol = "icmp", icmp_type = 8, icmp_code = 0 }),
    "ingress icmp type 8 code 0 from 0.0.0.0/0")
  t.eq(rule.tostring(n { direction = "ingress", remote_group = "web", ethertype = "IPv6" }),
    "ingress any from group web (IPv6)")
  t.eq(rule.tostring(n { direction = "ingress", action = "reject", cidr = "::/0" }),
    "reject ingress any from ::/0")
end)

t.test("cidr canonicalisation", function()
  for input, want in pairs {
    ["10.0.0.1"] = "10.0.0.1/32", ["0.0.0.0/0"] = "0.0.0.0/0", ["::"] = "::/128",
    ["::/0"] = "::/0", ["2001:DB8::1"] = "2001:db8::1/128",
    ["2001:0db8:0000:0000:0001:0000:0000:0001"] = "2001:db8::1:0:0:1/128",
    ["1:0:0:1:0:0:0:1/128"] = "1:0:0:1::1/128", ["fe80:0:0:0:0:0:0:0/10"] = "fe80::/10",
    ["2001:db8:0:1:1:1:1:1"] = "2001:db8:0:1:1:1:1:1/128", ["::ffff:1.2.3.4"] = "::ffff:102:304/128",
  } do
    t.eq((rule.parse_cidr(input)), want, input)
  end
  t.eq(select(2, rule.parse_cidr("2001:db8::/32")), "IPv6")
  t.eq(select(2, rule.parse_cidr("10.0.0.0/8")), "IPv4")
end)

t.test("host bits: an error by default, cleared for provider data", function()
  t.raises(function() n { direction = "ingress", cidr = "10.0.0.1/8" } end,
    'rule: cidr "10.0.0.1/8" has host bits set (did you mean 10.0.0.0/8 or 10.0.0.1/32?)')
  t.eq(rule.normalize({ direction = "ingress", cidr = "10.0.0.1/8" }, { clear_host_bits = true }).cidr,
    "10.0.0.0/8")
  t.eq(rule.normalize({ direction = "ingress", cidr = "2001:db8::1/32" },
    { clear_host_bits = true }).cidr, "2001:db8::/32")
end)

local INVALID = {
  { { direction = "ingress", protocol = "tcp", port_min = 70000 },
    "rule: port_min 70000 is out of range 1..65535" },
  { { direction = "ingress", protocol = "tcp", port_min = 0 }, "rule: port_min 0 is out of range" },
  { { direction = "ingress", protocol = "tcp", port_min = 100, port_max = 20 },
    "rule: port_min 100 is above port_max 20" },
  { { direction = "ingress", protocol = "tcp", port_min = 2.5 }, "rule: port_min 2.5 is not an integer" },
  { { protocol = "tcp" }, "rule: direction is missing" },
  { { direction = "inbound" }, 'rule: direction "inbound" is not ingress or egress' },
  { { direction = "ingress", cidr = "10.0.0.300" },
    'rule: cidr "10.0.0.300" is not a valid IPv4 or IPv6 network' },
  { { direction = "ingress", cidr = "10.0.0.0/33" }, "prefix length above 32" },
  { { direction = "ingress", cidr = "::/129" }, "prefix length above 128" },
  { { direction = "ingress", cidr = "1::2::3" }, "is not a valid IPv4 or IPv6 network" },
  { { direction = "ingress", cidr = "010.0.0.1" }, "is not a valid IPv4 or IPv6 network" },
  { { direction = "ingress", cidr = "10.0.0.0/8", ethertype = "IPv6" },
    "rule: ethertype IPv6 does not match cidr 10.0.0.0/8" },
  { { direction = "ingress", protocol = "icmp", port_min = 1 }, "rule: protocol icmp has no ports" },
  { { direction = "ingress", protocol = "tcp", icmp_type = 8 },
    "rule: icmp_type/icmp_code need protocol icmp or icmpv6, not tcp" },
  { { direction = "ingress", protocol = "icmp", icmp_type = 300 },
    "rule: icmp_type 300 is out of range 0..255" },
  { { direction = "ingress", protocol = "icmp", icmp_code = 0 }, "icmp_code 0 needs an icmp_type" },
  { { direction = "ingress", protocol = "icmpv6", cidr = "10.0.0.0/8" },
    "protocol icmpv6 needs an IPv6 cidr" },
  { { direction = "ingress", cidr = "10.0.0.0/8", remote_group = "web" },
    "give either cidr or remote_group, not both" },
  { { direction = "ingress", action = "permit" }, 'rule: action "permit" is not accept, drop or reject' },
  { { direction = "ingress", protocol = 300 }, "rule: protocol 300 is not an IANA protocol number" },
  { { direction = "ingress", protocol = "t c p" }, 'rule: protocol "t c p" is not a protocol name' },
  { { direction = "ingress", prot = "tcp" }, 'rule: unknown field "prot"' },
  { { direction = "ingress", description = 5 }, "rule: description 5 is not a string" },
  { "tcp", "rule: expected a table, got string" },
}

for i, c in ipairs(INVALID) do
  t.test("invalid " .. i .. ": " .. c[2], function()
    t.raises(function() n(c[1]) end, c[2])
  end)
end

t.test("where prefixes messages", function()
  t.raises(function() rule.normalize({ direction = "x" }, { where = "web.json: rules[3]" }) end,
    'web.json: rules[3]: direction "x"')
end)

t.test("with keeps the rule canonical and keyed", function()
  local r = n { direction = "ingress", protocol = "tcp", port = 22, cidr = "10.0.0.0/8" }
  local w = rule.with(r, { cidr = "0.0.0.0/0", description = rule.NULL })
  t.eq(w.cidr, "0.0.0.0/0")
  t.eq(r.cidr, "10.0.0.0/8")
  t.eq(rule.key(w), rule.key(n { direction = "ingress", protocol = "tcp", port = 22 }))
end)

t.test("sort orders by direction, protocol, numeric port", function()
  local rules = { n { direction = "ingress", protocol = "tcp", port = 443 },
    n { direction = "ingress", protocol = "tcp", port = 22 },
    n { direction = "egress", protocol = "tcp", port = 1000 } }
  rule.sort(rules)
  t.eq({ rules[1].port_min, rules[2].port_min, rules[3].port_min }, { 1000, 22, 443 })
end)

t.run()
