-- The Genesis Cloud binding against `sgrun sim` over real HTTP: every method, the request on the
-- wire against genesis_barrack_hostup.md §1 (Bearer auth, PATCH update, the attach/detach oneOf),
-- status-based waits (creating -> created, delete -> 404) and page/per_page auto-paging.
local t = require "testlib"
local w = require "sim_wire"
local sg = require "sg"

local TOKEN = os.getenv("GENESISCLOUD_TOKEN")
local gen, log = w.connect("genesis")
local base_path = w.split(gen.base_url)

local function last_of(method)
  for i = #log, 1, -1 do
    if log[i].method == method then return log[i] end
  end
end

local function wire(e, method, path, what)
  local p, q = w.split(e.url)
  t.eq({ e.method, p }, { method, base_path .. path }, what)
  t.eq(e.headers.Authorization, "Bearer " .. TOKEN, what .. ": auth")
  if e.body then t.eq(e.headers["Content-Type"], "application/json", what) end
  return q
end

local created, instance

t.test("setup", function()
  w.reset()
  w.knobs({ task_duration_ms = 200 })
end)

t.test("create_security_group: 201, status creating -> created", function()
  local body = { name = "allow-ssh-https", description = "managed by tool", region = "NORD-NO-KRS-1",
    rules = { -- §1.3 example
      { protocol = "tcp", direction = "ingress", port_range_min = 22, port_range_max = 22 },
      { protocol = "tcp", direction = "ingress", port_range_min = 443, port_range_max = 443 },
      { protocol = "icmp", direction = "ingress", port_range_min = sg.json.null, port_range_max = sg.json.null },
      { protocol = "all", direction = "egress", port_range_min = sg.json.null, port_range_max = sg.json.null },
    } }
  local r = gen:create_security_group(body)
  wire(last_of("POST"), "POST", "/security-groups", "create")
  local sent = w.body_has(t, last_of("POST"), { name = "allow-ssh-https", region = "NORD-NO-KRS-1" })
  t.eq(sent.rules[3].port_range_min, sg.json.null)
  t.eq(r.security_group.status, "creating")
  created = r.security_group.id
  local final = gen:wait(r)
  t.eq(final.security_group.status, "created")
end)

t.test("get_security_group", function()
  local g = gen:get_security_group(created)
  wire(log[#log], "GET", "/security-groups/" .. created, "get")
  t.eq(#g.security_group.rules, 4)
end)

t.test("update_security_group: PATCH with the full rule list, waited", function()
  local r = gen:update_security_group(created, { name = "allow-ssh-https", description = "managed by tool",
    rules = { { protocol = "tcp", direction = "ingress", port_range_min = 22, port_range_max = 22 } } })
  wire(last_of("PATCH"), "PATCH", "/security-groups/" .. created, "update")
  t.eq(gen:wait(r).security_group.status, "created")
  t.eq(#gen:get_security_group(created).security_group.rules, 1)
end)

t.test("list_security_groups: every page (page/per_page), or one page on request", function()
  for i = 1, 3 do
    gen:wait(gen:create_security_group({ name = "extra-" .. i, region = "NORD-NO-KRS-1", rules = sg.json.array() }))
  end
  local small, slog = w.connect("genesis", { page_size = 2 })
  local all = small:list_security_groups()
  t.eq(#all.security_groups, 5)
  t.eq(all.total_count, 5)
  t.eq(#slog, 3, "three pages of two")
  local q = wire(slog[3], "GET", "/security-groups", "page 3")
  t.eq({ q.page, q.per_page }, { "3", "2" })
  local one = gen:list_security_groups({ page = 2, per_page = 2 })
  t.eq(#one.security_groups, 2)
  t.eq(one.page, 2)
end)

t.test("instances: list, get, attach/detach one group, update_instance", function()
  instance = gen:list_instances().instances[1]
  wire(log[#log], "GET", "/instances", "list instances")
  t.eq(gen:get_instance(instance.id).instance.id, instance.id)
  wire(log[#log], "GET", "/instances/" .. instance.id, "get instance")
  local r = gen:attach_security_group(instance.id, created)
  wire(log[#log], "PATCH", "/instances/" .. instance.id, "attach")
  t.eq(log[#log].body, '{"security_groups":{"attach":"' .. created .. '"}}')
  local ids = {}
  for _, g in ipairs(r.instance.security_groups) do ids[g.id] = true end
  t.ok(ids[created])
  gen:detach_security_group(instance.id, created)
  t.eq(log[#log].body, '{"security_groups":{"detach":"' .. created .. '"}}')
  local u = gen:update_instance(instance.id, { security_groups = { created } })
  t.eq(#u.instance.security_groups, 1)
  gen:update_instance(instance.id, { security_groups = sg.json.array() })
  t.eq(log[#log].body, '{"security_groups":[]}')
end)

t.test("delete_security_group: 204, then waits until the group reads 404", function()
  local r = gen:delete_security_group(created)
  wire(log[#log], "DELETE", "/security-groups/" .. created, "delete")
  t.eq(gen:wait(r), true)
  local err = t.raises(function() gen:get_security_group(created) end, "not found")
  t.eq({ err.status, err.code, err.provider }, { 404, "4004", "genesis" })
end)

t.test("a group ending in error fails the wait", function()
  w.knobs({ task_error_rate = 1 })
  local r = gen:create_security_group({ name = "doomed", region = "NORD-NO-KRS-1", rules = sg.json.array() })
  local err = t.raises(function() gen:wait(r) end, "ended in state error")
  t.eq(err.code, "error")
  w.knobs({ task_error_rate = 0 })
end)

t.run()
