-- Vendor schema limits, checked before anything is sent: a codec's check makes a rule past a
-- documented limit inexpressible (and its encode refuses it), and a new group's name or
-- description past the create-group schema is refused by sg.groups.name_problem, which sg.plan
-- and every adapter's create_group go through.
local t = require "testlib"
local rule = require "sg.rule"
local codecs = require "sg.codec"
local groups = require "sg.groups"
local plan = require "sg.plan"

local function icmp(itype, icode)
  return rule.normalize { direction = "ingress", protocol = "icmp", icmp_type = itype, icmp_code = icode,
    cidr = "0.0.0.0/0" }
end

local function described(text)
  return rule.normalize { direction = "ingress", protocol = "tcp", port = 443, cidr = "0.0.0.0/0",
    description = text }
end

local function status(provider, r)
  local s, out, why = codecs.get(provider).check(r)
  return s, out, why
end

t.test("Exoscale: ICMP type and code 255 are inexpressible, 254 and any are exact", function()
  local s, out, why = status("exoscale", icmp(255, 0))
  t.eq(s, "inexpressible")
  t.eq(out, nil)
  t.ok(why:find("Exoscale takes an ICMP type of at most 254 (icmp.type), not 255", 1, true), why)
  t.ok(why:find("choose a type of 0..254", 1, true), why)
  local s2, _, why2 = status("exoscale", icmp(3, 255))
  t.eq(s2, "inexpressible")
  t.ok(why2:find("ICMP code of at most 254 (icmp.code), not 255", 1, true), why2)
  t.eq((status("exoscale", icmp(254, 254))), "exact")
  t.eq((status("exoscale", icmp(nil, nil))), "exact")
  t.eq(codecs.get("exoscale").translate(icmp(255, nil)).status, "inexpressible")
  -- icmpv6 too
  local v6 = rule.normalize { direction = "ingress", protocol = "icmpv6", icmp_type = 255, cidr = "::/0" }
  t.eq((status("exoscale", v6)), "inexpressible")
end)

t.test("Exoscale and Gcore: a rule description of more than 255 characters is inexpressible; others take it", function()
  for _, provider in ipairs({ "exoscale", "gcore" }) do
    local s, _, why = status(provider, described(string.rep("d", 256)))
    t.eq(s, "inexpressible", provider)
    t.ok(why:find("description of at most 255 characters, and this one has 256: shorten the description",
      1, true), why)
    -- characters, not bytes: 255 two-byte characters fit
    t.eq((status(provider, described(string.rep("é", 255)))), "exact", provider)
    t.eq((status(provider, described(string.rep("é", 256)))), "inexpressible", provider)
  end
  -- Gcore takes ICMP type and code 255 (port_range 0..65535)
  t.eq((status("gcore", icmp(255, 255))), "exact")
  -- Genesis, Barrack and HostUp document no length limit: a long description is no refusal
  local long = described(string.rep("d", 1000))
  for _, provider in ipairs({ "genesis", "barrack", "hostup" }) do
    local s = status(provider, long)
    t.ok(s ~= "inexpressible", provider .. ": " .. tostring(s))
  end
end)

t.test("encode refuses a rule past a limit, naming the rule (before its request)", function()
  local ctx = { group = { id = "g1", name = "web" } }
  t.raises(function() codecs.get("exoscale").encode(icmp(255, 0), ctx) end,
    "exoscale: ingress icmp type 255 code 0 from 0.0.0.0/0: Exoscale takes an ICMP type of at most 254")
  t.raises(function() codecs.get("exoscale").encode(described(string.rep("d", 256)), ctx) end,
    "description of at most 255 characters")
  t.raises(function() codecs.get("gcore").encode(described(string.rep("d", 256)), ctx) end,
    "gcore: ingress tcp 443 from 0.0.0.0/0  # ddd")
  t.raises(function() codecs.get("gcore").encode(described(string.rep("d", 256)), ctx) end,
    "d: Gcore takes a rule description of at most 255 characters")
  t.eq(codecs.get("exoscale").encode(icmp(254, 254), ctx).icmp, { type = 254, code = 254 })
end)

t.test("a plan refuses the over-limit rule by name unless lossy = allow skips it", function()
  local good = rule.normalize { direction = "ingress", protocol = "tcp", port = 22, cidr = "0.0.0.0/0" }
  local bad = icmp(255, 0)
  local err = t.raises(function()
    plan.compute { target = { provider = "exoscale", group = "web" }, current = {}, desired = { good, bad },
      codec = "exoscale" }
  end, "inexpressible: ingress icmp type 255 code 0 from 0.0.0.0/0: Exoscale takes an ICMP type")
  t.eq(#err.findings, 1)
  local p = plan.compute { target = { provider = "exoscale", group = "web" }, current = {},
    desired = { good, bad }, codec = "exoscale", lossy = "allow" }
  t.eq(#p.add, 1)
  t.eq(rule.key(p.add[1]), rule.key(good))
end)

t.test("Exoscale group names and descriptions: at most 255 characters", function()
  t.eq(groups.name_problem("exoscale", string.rep("n", 255)), nil)
  t.eq(groups.name_problem("exoscale", string.rep("é", 255), string.rep("é", 255)), nil)
  local why = groups.name_problem("exoscale", string.rep("n", 256))
  t.ok(why and why:find("group name (name) of at most 255 characters, and this one has 256", 1, true), why)
  why = groups.name_problem("exoscale", "web", string.rep("x", 256))
  t.ok(why and why:find("group description (description) of at most 255 characters", 1, true), why)
end)

t.test("Gcore group names follow the schema's pattern", function()
  for _, name in ipairs({ "web", "a.b", "Web servers_1", "a-b.", string.rep("a", 63) }) do
    t.eq(groups.name_problem("gcore", name), nil, name)
  end
  for _, name in ipairs({ "ab", "-web", " web", "web-", "web ", "web/1", "wéb", string.rep("a", 64) }) do
    local why = groups.name_problem("gcore", name)
    t.ok(why and why:find("Gcore takes a group name (name) of 3 to 63 characters", 1, true), name)
  end
end)

t.test("reserved names still refused; Barrack and HostUp names have no documented limit", function()
  t.ok(groups.name_problem("genesis", "default"), "genesis reserves default")
  t.eq(groups.name_problem("genesis", string.rep("n", 300)), nil)
  t.eq(groups.name_problem("barrack", string.rep("n", 300)), nil)
end)

t.test("sg.plan refuses to create a group the schema would refuse, before any request", function()
  local apply = require "sg.apply"
  local conn = { provider = "gcore" } -- plan_group reads nothing when the group is given as absent
  t.raises(function()
    apply.plan_group(conn, "ab", nil, "no such group", {}, { create = true })
  end, "sg.plan: gcore has no group ab to change, and Gcore takes a group name (name)")
  conn = { provider = "exoscale" }
  t.raises(function()
    apply.plan_group(conn, "web", nil, "no such group", {}, { create = true, description = string.rep("x", 256) })
  end, "group description (description) of at most 255 characters")
end)

t.test("create_group refuses the same before its request", function()
  local common = require "sg.groups.common"
  t.raises(function() common.check_name("gcore", "-web") end, "gcore: Gcore takes a group name (name)")
  t.raises(function() common.check_name("exoscale", string.rep("n", 256)) end,
    "exoscale: Exoscale takes a group name (name) of at most 255 characters")
end)

t.run()
