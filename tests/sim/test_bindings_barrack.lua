-- The Barrack binding against `sgrun sim` over real HTTP: every method, the request on the wire
-- (the documented add-instance-security-rule example, seeds/000; the other paths are INFERRED in
-- bindings/barrack.c and the emulator alike), and delayed activation (CREATING -> ACTIVE).
local t = require "testlib"
local w = require "sim_wire"

local KEY = os.getenv("BARRACK_API_KEY")
local brk, log = w.connect("barrack")
local base_path = w.split(brk.base_url)
local LEGACY, STANDARD = "BRK-100001A", "BRK-100003C"

local function last_of(method)
  for i = #log, 1, -1 do
    if log[i].method == method then return log[i] end
  end
end

local function wire(e, method, path, what)
  local p, q = w.split(e.url)
  t.eq({ e.method, p }, { method, base_path .. path }, what)
  t.eq(e.headers.Authorization, "Bearer " .. KEY, what .. ": auth")
  if e.body then t.eq(e.headers["Content-Type"], "application/json", what) end
  return q
end

local EXAMPLE = { direction = "ingress", protocol = "tcp", ethertype = "IPv4",
  remote_ip_prefix = "203.0.113.0/24", port_range_min = 3306, port_range_max = 3306 } -- seeds/000

t.test("setup", function()
  w.reset()
  w.knobs({ task_duration_ms = 200 })
end)

t.test("instances: list, get", function()
  local r = brk:list_instances()
  wire(log[#log], "GET", "/instances/", "list instances")
  t.eq(r.success, true)
  t.eq(brk:get_instance(LEGACY).instance.instance_id, LEGACY)
  wire(log[#log], "GET", "/instances/" .. LEGACY .. "/", "get instance")
end)

t.test("add_instance_security_rule: the documented example, waited until ACTIVE", function()
  local r = brk:add_instance_security_rule(LEGACY, EXAMPLE)
  local e = last_of("POST")
  wire(e, "POST", "/instances/" .. LEGACY .. "/security-rules/", "add instance rule")
  w.body_has(t, e, EXAMPLE)
  t.eq({ r.success, r.message, r.tier, r.instance_id }, { true, "Security rule added successfully", "legacy", LEGACY })
  local final, rule = brk:wait(r)
  t.eq(rule.status, "ACTIVE")
  t.eq(rule.id, r.security_rule.id)
  t.ok(final.instance, "wait returns the re-read instance")
  brk:remove_instance_security_rule(LEGACY, rule.id)
  wire(log[#log], "DELETE", "/instances/" .. LEGACY .. "/security-rules/" .. rule.id .. "/", "remove rule")
end)

local fw
t.test("firewalls: create, list (paged), get, add/remove rule, attach, delete", function()
  local r = brk:create_firewall({ name = "web", description = "sgrun test", region = "NORWAY-1" })
  wire(last_of("POST"), "POST", "/firewalls/", "create firewall")
  fw = math.tointeger(r.firewall.id)
  local small, slog = w.connect("barrack", { page_size = 1 })
  local all = small:list_firewalls()
  t.eq(#all.firewalls, 2)
  t.eq(#slog, 2, "two pages of one")
  local q = wire(slog[2], "GET", "/firewalls/", "page 2")
  t.eq({ q.page, q.page_size }, { "2", "1" })
  t.eq(brk:get_firewall(fw).firewall.name, "web")
  wire(log[#log], "GET", "/firewalls/" .. fw .. "/", "get firewall")

  local added = brk:add_firewall_rule(fw, EXAMPLE)
  wire(last_of("POST"), "POST", "/firewalls/" .. fw .. "/firewall-rules/", "add firewall rule")
  local _, rule = brk:wait(added)
  rule.id = math.tointeger(rule.id)
  t.eq(rule.status, "ACTIVE")

  local att = brk:attach_firewall_to_instances(fw, { STANDARD })
  local e = last_of("POST")
  wire(e, "POST", "/firewalls/" .. fw .. "/update-attachments/", "attach")
  t.eq(e.body, '{"instance_ids":["' .. STANDARD .. '"]}')
  local done = brk:wait(att)
  t.eq(done.firewall.attachments[1].status, "ACTIVE")
  local on = brk:get_instance_firewalls(STANDARD)
  wire(log[#log], "GET", "/instances/" .. STANDARD .. "/firewalls/", "instance firewalls")
  t.ok(#on.firewalls >= 1)

  brk:remove_firewall_rule(fw, rule.id)
  wire(log[#log], "DELETE", "/firewalls/" .. fw .. "/firewall-rules/" .. rule.id .. "/", "remove fw rule")
  brk:attach_firewall_to_instances(fw, {}) -- detach from all: an empty list
  t.eq(last_of("POST").body, '{"instance_ids":[]}')
  local err = t.raises(function() brk:delete_firewall(1) end, "detach it before deleting")
  t.eq({ err.status, err.provider, err.op }, { 409, "barrack", "delete_firewall" })
  t.ok(err.request_id, "request_id from the envelope")
  brk:delete_firewall(fw)
  wire(log[#log], "DELETE", "/firewalls/" .. fw .. "/", "delete firewall")
end)

t.test("protocols and instances available for a firewall", function()
  local p = brk:get_supported_protocols()
  wire(log[#log], "GET", "/firewalls/protocols/", "protocols")
  t.eq(p.protocols, { "tcp", "udp", "icmp" })
  local a = brk:list_instances_available_for_firewall({ region = "NORWAY-1" })
  local q = wire(log[#log], "GET", "/firewalls/available-instances/", "available")
  t.eq(q.region, "NORWAY-1")
  t.eq(a.instances[1].instance_id, STANDARD)
end)

t.test("a rule whose activation fails fails the wait", function()
  w.knobs({ task_error_rate = 1 })
  local r = brk:add_instance_security_rule(LEGACY, { direction = "ingress", protocol = "udp", ethertype = "IPv4",
    remote_ip_prefix = "0.0.0.0/0", port_range_min = 53, port_range_max = 53 })
  local err = t.raises(function() brk:wait(r) end, "ended in state ERROR")
  t.eq(err.code, "ERROR")
  w.knobs({ task_error_rate = 0 })
end)

t.run()
