-- Plans: authoritative and additive diffs, translation findings, output, JSON form, speed.
local t = require "testlib"
local rule = require "sg.rule"
local plan = require "sg.plan"
local codecs = require "sg.codec"
local json = require "sg.json"

local function n(r) return rule.normalize(r) end
local SSH = n { direction = "ingress", protocol = "tcp", port = 22, cidr = "10.0.0.0/8", description = "ssh" }
local HTTPS = n { direction = "ingress", protocol = "tcp", port = 443 }
local RDP = n { direction = "ingress", protocol = "tcp", port = 3389 }
local EGRESS = n { direction = "egress" }
local TARGET = { provider = "gcore", group = "web" }

t.test("authoritative: add, remove, keep", function()
  local p = plan.compute { target = TARGET, current = { HTTPS, RDP }, desired = { SSH, HTTPS },
    codec = "gcore" }
  t.eq(p.add, { SSH })
  t.eq(p.remove, { RDP })
  t.eq(p.keep, { HTTPS })
  t.ok(p.keep[1] == HTTPS and p.remove[1] == RDP, "current tables are kept for mapping to raw")
  t.eq(p.mode, "authoritative")
  t.ok(not p:empty())
end)

t.test("nothing to do is empty; descriptions are not identity", function()
  local p = plan.compute { target = TARGET, current = { rule.with(SSH, { description = "old" }) },
    desired = { SSH } }
  t.ok(p:empty())
  t.eq(#p.keep, 1)
end)

t.test("additive never removes, except rules it created that are no longer wanted", function()
  local p = plan.compute { target = TARGET, mode = "additive", current = { HTTPS, RDP },
    desired = { SSH } }
  t.eq({ #p.add, #p.remove, #p.keep }, { 1, 0, 2 })
  local q = plan.compute { target = TARGET, mode = "additive", current = { HTTPS, RDP },
    desired = { SSH }, created_by_us = { [rule.key(RDP)] = true } }
  t.eq(q.remove, { RDP })
end)

t.test("duplicates: desired collapse, current extras removed when authoritative", function()
  local p = plan.compute { target = TARGET, current = { HTTPS, rule.with(HTTPS, {}) },
    desired = { HTTPS, HTTPS } }
  t.eq({ #p.add, #p.remove, #p.keep }, { 0, 1, 1 })
end)

t.test("hand-written desired rules are normalised, bad ones named", function()
  local p = plan.compute { target = TARGET, current = {}, desired = {
    { direction = "ingress", protocol = "TCP", port_min = 443 } } }
  t.ok(rule.equal(p.add[1], HTTPS))
  t.raises(function()
    plan.compute { target = TARGET, current = {}, desired = { HTTPS, { direction = "up" } } }
  end, 'plan: desired[2]: direction "up" is not ingress or egress')
end)

t.test("bad arguments", function()
  t.raises(function() plan.compute { current = {}, desired = {} } end, "plan: target must be")
  t.raises(function() plan.compute { target = TARGET, current = {}, desired = {}, mode = "merge" } end,
    'plan: mode "merge" is not authoritative or additive')
  t.raises(function() plan.compute { target = TARGET, current = {}, desired = {}, lossy = "yes" } end,
    'plan: lossy "yes" is not error or allow')
  t.raises(function() plan.compute { target = TARGET, desired = {} } end, "plan: current must be a list")
end)

t.test("lossy and inexpressible rules raise by default, listing them", function()
  local drop = n { direction = "ingress", action = "drop", cidr = "198.51.100.0/24" }
  local err = t.raises(function()
    plan.compute { target = { provider = "genesis", group = "web" }, current = {},
      desired = { SSH, HTTPS, drop }, codec = codecs.get("genesis") }
  end, "plan for genesis/web: 2 rule(s) cannot be expressed exactly on Genesis Cloud")
  t.eq(err.kind, "untranslatable")
  t.eq(#err.findings, 2)
  local text = tostring(err)
  t.ok(text:find("lossy: ingress tcp 22 from 10.0.0.0/8  # ssh: Genesis Cloud rules carry no CIDR", 1, true), text)
  -- the way out, for a playbook and for a command-line user
  t.ok(text:find('pass lossy = "allow" (rollout.lua: --allow-lossy)', 1, true), text)
  t.ok(text:find("inexpressible: drop ingress any from 198.51.100.0/24: Genesis Cloud has allow " ..
    "rules only", 1, true), text)
end)

t.test("lossy = allow: lossy rules translated with the loss, inexpressible skipped, all listed", function()
  local drop = n { direction = "ingress", action = "drop", cidr = "198.51.100.0/24" }
  local p = plan.compute { target = { provider = "genesis", group = "web" }, current = {},
    desired = { SSH, HTTPS, drop }, codec = "genesis", lossy = "allow" }
  t.eq(#p.add, 2)
  t.eq(rule.tostring(p.add[1]), "ingress tcp 22 from 0.0.0.0/0")
  t.eq(#p.findings, 2)
  t.eq(p.findings[1].rule, SSH)
  t.eq(p.findings[1].kind, "lossy")
  t.eq(p.findings[2].kind, "inexpressible")
  -- ssh translated to 0.0.0.0/0 and https are the same rule on Genesis only when ports match:
  -- two translated desired rules with one key collapse into one add
  local q = plan.compute { target = { provider = "genesis", group = "web" }, current = {},
    desired = { SSH, n { direction = "ingress", protocol = "tcp", port = 22 } }, codec = "genesis",
    lossy = "allow" }
  t.eq(#q.add, 1)
end)

t.test("a desired rule the target already holds exactly is kept, even one its codec cannot write", function()
  -- a HostUp VM read back holds an outbound DROP and an ESP rule, which the v1 write body cannot
  -- carry: restoring that snapshot, or planning a group against itself, must keep them, not
  -- remove them as "not wanted" (that would open traffic)
  local out_drop = n { direction = "egress", action = "drop", protocol = "tcp", port = 25 }
  local esp = n { direction = "ingress", action = "drop", protocol = "esp", cidr = "203.0.113.0/24" }
  local SSH_ANY = n { direction = "ingress", protocol = "tcp", port = 22 }
  local target = { provider = "hostup", group = { vm = 10000 } }
  local p = plan.compute { target = target, current = { out_drop, esp, SSH_ANY },
    desired = { out_drop, esp, SSH_ANY }, codec = "hostup" }
  t.ok(p:empty(), tostring(p))
  t.eq(#p.keep, 3)
  t.eq(#p.findings, 0, "nothing is lost: the rules are there as wanted")
  -- with lossy = allow as a restore plans it: still nothing removed
  p = plan.compute { target = target, current = { out_drop, esp, SSH_ANY, HTTPS },
    desired = { out_drop, esp, SSH_ANY }, codec = "hostup", lossy = "allow" }
  t.eq(p.remove, { HTTPS })
  t.eq(#p.add, 0)
  -- a wanted rule the target lacks and cannot hold is still a finding
  t.raises(function()
    plan.compute { target = target, current = { SSH_ANY }, desired = { out_drop, SSH_ANY }, codec = "hostup" }
  end, "cannot be expressed exactly")
  -- a lossy rule already held exactly is not re-added in its lossy form
  local ping = n { direction = "ingress", protocol = "icmp", icmp_type = 8, icmp_code = 0 }
  p = plan.compute { target = target, current = { ping }, desired = { ping }, codec = "hostup", lossy = "allow" }
  t.ok(p:empty(), tostring(p))
end)

t.test("rule limit of the target", function()
  local many = {}
  for i = 1, 251 do many[i] = n { direction = "ingress", protocol = "tcp", port = i } end
  t.raises(function() plan.compute { target = TARGET, current = {}, desired = many, codec = "gcore" } end,
    "plan for gcore/web: the group would hold 251 rules; Gcore allows at most 250 per group")
end)

t.test("tostring: stable, sorted +/- lines and findings", function()
  local DNS = n { direction = "ingress", protocol = "udp", port = 53, cidr = "0.0.0.0/0" }
  local p = plan.compute { target = { provider = "hostup", group = { vm = 10000 } },
    current = { RDP, DNS }, desired = { HTTPS, SSH, DNS, n { direction = "ingress", protocol = "icmpv6",
      cidr = "::/0" } }, codec = "hostup", lossy = "allow" }
  local want = table.concat({
    "plan hostup/vm=10000 (authoritative): 2 to add, 1 to remove, 1 unchanged",
    "+ ingress tcp 22 from 10.0.0.0/8  # ssh",
    "+ ingress tcp 443 from 0.0.0.0/0",
    "- ingress tcp 3389 from 0.0.0.0/0",
    "! skipped, inexpressible: ingress icmpv6 from ::/0: HostUp does not support protocol icmpv6",
  }, "\n")
  t.eq(tostring(p), want)
  -- same sets in another order print the same
  local q = plan.compute { target = { provider = "hostup", group = { vm = 10000 } },
    current = { DNS, RDP }, desired = { n { direction = "ingress", protocol = "icmpv6",
      cidr = "::/0" }, DNS, SSH, HTTPS }, codec = "hostup", lossy = "allow" }
  t.eq(tostring(q), want)
end)

t.test("JSON form", function()
  local p = plan.compute { target = TARGET, current = { EGRESS }, desired = { EGRESS } }
  local text = p:to_json()
  local back = json.decode(text)
  t.eq(back.target, { provider = "gcore", group = "web" })
  t.eq(back.mode, "authoritative")
  t.ok(text:find('"add":[]', 1, true), text)
  t.ok(text:find('"findings":[]', 1, true), text)
  t.eq(#back.keep, 1)
  t.eq(back.keep[1].protocol, "any")
end)

t.test("100,000 vs 100,000 rules: the right adds, removes and keeps (timed in bench/plan_bench.lua)", function()
  local function set(offset)
    local out = {}
    for i = 1, 100000 do
      local j = i + offset
      out[i] = n { direction = "ingress", protocol = "tcp", port_min = j % 65535 + 1,
        cidr = "10." .. (j // 65535) .. "." .. (j % 256) .. ".0/24" }
    end
    return out
  end
  local current, desired = set(0), set(10000)
  local p = plan.compute { target = { provider = "exoscale", group = "big" }, current = current,
    desired = desired, codec = "exoscale" }
  t.eq({ #p.add, #p.remove, #p.keep }, { 10000, 10000, 90000 })
end)

t.run()
