-- The HostUp binding against `sgrun sim` over real HTTP: every method, and the request on the
-- wire against genesis_barrack_hostup.md §3.2 (X-API-Key, ?pos= addressing, the 7-field body).
local t = require "testlib"
local w = require "sim_wire"
local sg = require "sg"

local KEY = os.getenv("HOSTUP_API_KEY")
local hu, log = w.connect("hostup")
local base_path = w.split(hu.base_url)

local function wire(method, path, what)
  local e = log[#log]
  local p, q = w.split(e.url)
  t.eq({ e.method, p }, { method, base_path .. path }, what)
  t.eq(e.headers["X-API-Key"], KEY, what .. ": auth")
  if e.body then t.eq(e.headers["Content-Type"], "application/json", what) end
  return e, q
end

local EXAMPLE = { type = "in", action = "ACCEPT", proto = "tcp", dport = "443", source = "2001:db8::1/32",
  comment = "HTTPS Secure Web", enable = 1 } -- seeds/004

t.test("setup", function() w.reset() end)

t.test("list_firewall_rules", function()
  local r = hu:list_firewall_rules(10000)
  wire("GET", "/vm/10000/firewall", "list")
  t.eq(r.success, true)
  t.eq(#r.data, 3)
  t.eq(r.data[1].pos, 0)
end)

t.test("add_firewall_rule: the vendor example; it lands at pos 0", function()
  local r = hu:add_firewall_rule(10000, EXAMPLE)
  local e = wire("POST", "/vm/10000/firewall", "add")
  w.body_has(t, e, EXAMPLE, "add")
  t.eq(r.data.rule, EXAMPLE)
  t.eq(hu:wait(r), r, "HostUp is synchronous")
  t.eq(hu:list_firewall_rules(10000).data[1].comment, "HTTPS Secure Web")
end)

t.test("update_firewall_rule and delete_firewall_rule by ?pos=", function()
  local changed = {}
  for k, v in pairs(EXAMPLE) do changed[k] = v end
  changed.dport = "8443"
  local r = hu:update_firewall_rule(10000, 0, changed)
  local _, q = wire("PUT", "/vm/10000/firewall", "update")
  t.eq(q.pos, "0")
  t.eq(r.data.pos, "0")
  t.eq(hu:list_firewall_rules(10000).data[1].dport, "8443")
  t.eq(hu:delete_firewall_rule(10000, 0).data.pos, "0")
  _, q = wire("DELETE", "/vm/10000/firewall", "delete")
  t.eq(q.pos, "0")
  t.eq(log[#log].body, nil)
  t.eq(#hu:list_firewall_rules(10000).data, 3)
end)

t.test("update_firewall_options", function()
  local r = hu:update_firewall_options(10001, { enable = 1, policy_in = "DROP" })
  local e = wire("PUT", "/vm/10001/firewall/options", "options")
  w.body_has(t, e, { enable = 1, policy_in = "DROP" })
  t.eq(r.data.message, "Firewall options updated successfully")
end)

t.test("error bodies: the v1 shape mapped, a missing position is not retried", function()
  local err = t.raises(function() hu:list_firewall_rules(99999) end, "not found")
  t.eq({ err.status, err.code, err.provider, err.op }, { 404, "NOT_FOUND", "hostup", "list_firewall_rules" })
  t.ok(err.request_id, "requestId")
  local before = #log
  err = t.raises(function() hu:delete_firewall_rule(10001, 50) end, "Failed to delete firewall rule")
  t.eq({ err.status, err.code, err.maybe_applied }, { 500, "INTERNAL_ERROR", true })
  t.eq(#log - before, 1, "a positional delete is never re-sent")
end)

t.test("firewall groups and the VM's group assignment: served, right on the wire", function()
  t.eq(hu:get_firewall_group_assignment(10000).data.assignment, sg.json.null)
  wire("GET", "/vm/10000/firewall/group", "group assignment")
  t.eq(hu:remove_firewall_group(10000).data.success, true)
  wire("DELETE", "/vm/10000/firewall/group", "remove group")
  local n = #hu:list_firewall_groups().data.groups
  wire("GET", "/firewall-groups", "list groups")
  local g = hu:create_firewall_group({ name = "web", description = "", rules = sg.json.array() }).data.group
  wire("POST", "/firewall-groups", "create group")
  t.eq(#hu:list_firewall_groups().data.groups, n + 1)
  t.eq(hu:replace_firewall_group(g.id, { name = "web", description = "", rules = sg.json.array() }).data.id, g.id)
  wire("PUT", "/firewall-groups/" .. g.id, "replace group")
  local err = t.raises(function()
    hu:replace_firewall_group("g1", { name = "web", description = "", rules = sg.json.array() })
  end)
  t.eq(err.status, 404)
end)

t.run()
