-- 200 rule additions across the five emulated providers at once, every one awaited to its
-- provider's completion: the calls and their waits are tasks that overlap, not 200 round trips
-- in a row, which the emulator sees as many requests open at once.
--   Exoscale  40 add_rule_to_security_group  -> operations
--   Gcore     40 create_security_group_rule  -> tasks
--   Genesis   40 create_security_group, one rule each (Genesis adds rules only as part of a
--             group's full rule list, so concurrent additions to ONE group would overwrite
--             each other) -> status
--   Barrack   40 add_instance_security_rule  -> activation
--   HostUp    40 add_firewall_rule           (synchronous)
local t = require "testlib"
local w = require "sim_wire"
local sg = require "sg"

local TASK_S = 1.0
local PER = 40

t.test("200 rule additions across five providers, all awaited", function()
  w.reset()
  w.knobs({ task_duration_ms = TASK_S * 1000, latency_ms = 20 })
  local exo, gc = sg.connect("exoscale"), sg.connect("gcore")
  local gen, brk, hu = sg.connect("genesis"), sg.connect("barrack"), sg.connect("hostup")
  local exo_web
  for _, g in ipairs(exo:list_security_groups()["security-groups"]) do if g.name == "web" then exo_web = g.id end end
  local gc_web = gc:list_security_groups({ name = "web" }).results[1].id

  local jobs = {}
  for i = 1, PER do
    local port = 40000 + i
    jobs[#jobs + 1] = function()
      local _, rule = exo:wait(exo:add_rule_to_security_group(exo_web, { ["flow-direction"] = "ingress",
        protocol = "tcp", ["start-port"] = port, ["end-port"] = port, network = "0.0.0.0/0" }))
      return rule and "exoscale"
    end
    jobs[#jobs + 1] = function()
      local tasks = gc:wait(gc:create_security_group_rule(gc_web, { direction = "ingress", protocol = "tcp",
        port_range_min = port, port_range_max = port, remote_ip_prefix = "0.0.0.0/0" }))
      return tasks[1].state == "FINISHED" and "gcore"
    end
    jobs[#jobs + 1] = function()
      local g = gen:wait(gen:create_security_group({ name = "conc-" .. i, region = "NORD-NO-KRS-1",
        rules = { { protocol = "tcp", direction = "ingress", port_range_min = port, port_range_max = port } } }))
      return g.security_group.status == "created" and "genesis"
    end
    jobs[#jobs + 1] = function()
      local _, rule = brk:wait(brk:add_instance_security_rule("BRK-100001A", { direction = "ingress",
        protocol = "tcp", ethertype = "IPv4", remote_ip_prefix = "0.0.0.0/0", port_range_min = port,
        port_range_max = port }))
      return rule.status == "ACTIVE" and "barrack"
    end
    jobs[#jobs + 1] = function()
      local r = hu:add_firewall_rule(10001, { type = "in", action = "ACCEPT", proto = "tcp",
        dport = tostring(port), source = "0.0.0.0/0", comment = "conc-" .. i, enable = 1 })
      return r.success and "hostup"
    end
  end
  t.eq(#jobs, 5 * PER)
  w.control("DELETE", "/_sim/log")
  local results = sg.all(jobs)
  local in_flight = w.control("GET", "/_sim/log").max_in_flight
  local by = {}
  for _, r in ipairs(results) do by[r] = (by[r] or 0) + 1 end
  t.eq(by, { exoscale = PER, gcore = PER, genesis = PER, barrack = PER, hostup = PER })
  -- one at a time would never have more than one open; the first wave alone is 200 requests
  print(string.format("at most %d requests open at once at the emulator", in_flight))
  t.ok(in_flight >= 20, string.format("at most %d requests were open at once at the emulator", in_flight))
  -- everything landed
  t.eq(#hu:list_firewall_rules(10001).data, PER)
  t.eq(#gc:get_security_group(gc_web).security_group_rules, 6 + PER)
  t.eq(#exo:get_security_group(exo_web).rules, 5 + PER)
  w.knobs({ latency_ms = 0 })
end)

t.run()
