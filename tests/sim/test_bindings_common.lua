-- The provider-neutral machinery against `sgrun sim`: auto-paging across pages, failed async
-- work (a Gcore task in ERROR, an Exoscale operation in failure), a wait that hits its deadline,
-- cancelling a wait, 429 with Retry-After, 5xx retried, every provider's error body mapped, and
-- no secret in errors or the SGRUN_DEBUG=http trace. (Lost POST responses: test_bindings_lost_post.)
local t = require "testlib"
local w = require "sim_wire"
local sg = require "sg"

local SECRETS = {}
for _, name in ipairs({ "EXOSCALE_API_SECRET", "GCORE_API_KEY", "GENESISCLOUD_TOKEN", "BARRACK_API_KEY",
  "HOSTUP_API_KEY" }) do
  SECRETS[#SECRETS + 1] = assert(os.getenv(name), name)
end

local FAST = { base = 0.05, cap = 0.5 }

local function gcore_web(gc)
  for _, g in ipairs(gc:list_security_groups().results) do
    if g.name == "web" then return g end
  end
end

local function exo_web(exo)
  for _, g in ipairs(exo:list_security_groups()["security-groups"]) do
    if g.name == "web" then return g end
  end
end

t.test("setup", function()
  w.reset()
  w.knobs({ task_duration_ms = 200, seed = 42 })
end)

t.test("Gcore list auto-pages with limit/offset across several pages", function()
  local gc, log = w.connect("gcore", { page_size = 1 })
  local all = gc:list_security_groups()
  t.eq(#all.results, 2)
  t.eq(#log, 2)
  local _, q1 = w.split(log[1].url)
  local _, q2 = w.split(log[2].url)
  t.eq({ q1.limit, q1.offset, q2.offset }, { "1", "0", "1" })
  -- more groups: five pages of one
  local big = w.connect("gcore")
  for i = 1, 3 do big:wait(big:create_security_group({ name = "paged-" .. i, rules = sg.json.array() })) end
  local gc2, log2 = w.connect("gcore", { page_size = 2 })
  t.eq(#gc2:list_security_groups().results, 5)
  t.eq(#log2, 3)
end)

t.test("a Gcore task ending in ERROR raises with its reason", function()
  local gc = w.connect("gcore")
  local web = gcore_web(gc)
  w.knobs({ task_error_rate = 1 })
  local r = gc:create_security_group_rule(web.id, { direction = "ingress", protocol = "udp",
    port_range_min = 5353, port_range_max = 5353, remote_ip_prefix = "10.0.0.0/8" })
  w.knobs({ task_error_rate = 0 })
  local err = t.raises(function() gc:wait(r) end, "ended ERROR")
  t.eq({ err.provider, err.op, err.code }, { "gcore", "wait", "task_error" })
  t.eq(err.detail.state, "ERROR")
  t.ok(type(err.detail.error) == "string" and err.message:find(err.detail.error, 1, true), "reason shown")
end)

t.test("an Exoscale operation that fails raises with state and reason", function()
  local exo = w.connect("exoscale")
  local web = exo_web(exo)
  w.knobs({ task_error_rate = 1 })
  local op = exo:add_rule_to_security_group(web.id, { ["flow-direction"] = "egress", protocol = "udp",
    ["start-port"] = 53, ["end-port"] = 53, network = "0.0.0.0/0" })
  w.knobs({ task_error_rate = 0 })
  local err = t.raises(function() exo:wait(op) end, "ended failure")
  t.eq({ err.provider, err.code, err.detail.state }, { "exoscale", "fault", "failure" })
end)

t.test("a wait that hits its deadline raises a timeout error, promptly", function()
  w.knobs({ task_duration_ms = 5000 })
  local gc = w.connect("gcore")
  local r = gc:create_security_group({ name = "slow", rules = sg.json.array() })
  local t0 = sg.now()
  local err = t.raises(function() gc:wait(r, { timeout = 0.4 }) end, "not done after 0.4 s")
  local took = sg.now() - t0
  t.ok(took >= 0.4, "did not give up before its deadline, took " .. took)
  t.eq({ err.code, err.retryable }, { "timeout", true })
  -- cancelling a task that waits stops its polling
  local _, log = w.connect("gcore")
  local waiter = sg.spawn(function()
    local c = w.connect("gcore", { transport = nil })
    c:wait(r)
  end)
  sg.sleep(0.3)
  sg.task.cancel(waiter)
  local before = #w.sim_log("gcore")
  sg.sleep(0.6)
  t.eq(#w.sim_log("gcore"), before, "no polls after cancellation")
  t.eq(#log, 0)
  w.knobs({ task_duration_ms = 200 })
end)

t.test("429 with Retry-After is honoured, and every call still succeeds", function()
  w.knobs({ rate_limit = 2 })
  local hu = w.connect("hostup")
  local t0 = sg.now()
  local fns = {}
  for i = 1, 5 do fns[i] = function() return hu:list_firewall_rules(10000) end end
  local results = sg.all(fns)
  local took = sg.now() - t0
  w.knobs({ rate_limit = 0 })
  t.eq(#results, 5)
  local limited = 0
  for _, e in ipairs(w.sim_log("hostup")) do
    if e.status == 429 then limited = limited + 1 end
  end
  t.ok(limited >= 1, "the emulator answered 429")
  t.ok(took >= 0.9, "waited for Retry-After (>= 1 s), took " .. took)
end)

t.test("a 503 is retried and the call then succeeds", function()
  local n = 0
  local gen = sg.connect("genesis", { retry = FAST, transport = function(req)
    n = n + 1
    if n == 1 then
      return { status = 503, headers = { ["content-type"] = "application/json" },
        body = '{"code":"5000","message":"injected"}', time = 0 }
    end
    return require("_sg.http").request(req)
  end })
  local r = gen:get_security_group(gen:list_security_groups().security_groups[1].id)
  t.ok(r.security_group)
  t.ok(n >= 3, "the first attempt got 503 and was retried")
  -- and against the emulator's injected 5xx (500/502/503)
  w.knobs({ error_rate = 0.5, seed = 7 })
  local hu = w.connect("hostup", { retry = FAST })
  local since = w.sim_log("hostup")
  since = #since > 0 and since[#since].seq or 0
  for _ = 1, 10 do t.eq(hu:list_firewall_rules(10000).success, true) end
  w.knobs({ error_rate = 0 })
  local failed = 0
  for _, e in ipairs(w.sim_log("hostup", since)) do
    if e.status >= 500 then failed = failed + 1 end
  end
  t.ok(failed >= 1, "the emulator injected 5xx")
end)

t.test("every provider's error body is mapped to the error object", function()
  w.knobs({ drop_rate = 0 })
  local cases = {
    { "exoscale", function(c) return c:get_security_group("00000000-0000-4000-8000-000000000000") end,
      { status = 404, op = "get_security_group" } },
    { "gcore", function(c) return c:get_security_group("00000000-0000-4000-8000-000000000000") end,
      { status = 404, code = "NotFoundError" }, true },
    { "genesis", function(c) return c:get_security_group("nope") end, { status = 404, code = "4004" } },
    { "barrack", function(c) return c:get_firewall(999) end, { status = 404 }, true },
    { "hostup", function(c) return c:list_firewall_rules(424242) end, { status = 404, code = "NOT_FOUND" }, true },
  }
  for _, case in ipairs(cases) do
    local conn = w.connect(case[1])
    local ok, err = pcall(case[2], conn)
    t.ok(not ok and sg.json and require("sg.errors").is(err), case[1] .. ": an error object")
    t.eq(err.provider, case[1])
    for k, v in pairs(case[3]) do t.eq(err[k], v, case[1] .. " " .. k) end
    t.ok(type(err.message) == "string" and #err.message > 0, case[1] .. " message")
    t.eq(err.retryable, false)
    if case[4] then t.ok(err.request_id, case[1] .. " request id") end
    t.ok(tostring(err):find(case[1], 1, true), "__tostring")
  end
end)

t.test("no secret in error messages, and the SGRUN_DEBUG=http trace redacts credentials", function()
  -- a wrong Gcore token the server echoes a prefix of
  local bad = sg.connect("gcore", { api_key = "wrongtoken-abcdef" })
  local err = t.raises(function() bad:list_security_groups() end, "Bad permanent token: [REDACTED]")
  t.ok(not tostring(err):find("wrongtok", 1, true), tostring(err))
  -- a child sgrun with the trace on, calling every provider (one call fails)
  local code = [[
    local sg = require "sg"
    sg.connect("exoscale"):list_security_groups()
    local gc = sg.connect("gcore")
    gc:list_security_groups()
    pcall(gc.get_security_group, gc, "missing")
    sg.connect("genesis"):list_security_groups()
    sg.connect("barrack"):list_firewalls()
    sg.connect("hostup"):add_firewall_rule(10001, { type = "in", action = "ACCEPT", proto = "tcp",
      dport = "8080", source = "0.0.0.0/0", comment = "trace", enable = 1 })
  ]]
  local p = assert(io.popen("SGRUN_DEBUG=http '" .. arg[-1] .. "' -e '" .. code:gsub("'", "'\\''") .. "' 2>&1"))
  local out = p:read("a")
  p:close()
  t.ok(out:find("[sgrun http] gcore get_security_group", 1, true), "the trace is there: " .. out:sub(1, 300))
  t.ok(out:find("Authorization: [REDACTED]", 1, true))
  t.ok(out:find("X-API-Key: [REDACTED]", 1, true))
  t.ok(out:find("< 404", 1, true))
  for _, s in ipairs(SECRETS) do
    t.ok(not out:find(s:sub(1, 8), 1, true), "secret prefix " .. s:sub(1, 4) .. "... absent from the trace")
  end
end)

t.run()
