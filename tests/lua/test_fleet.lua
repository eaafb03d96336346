-- sg.fleet's per-provider limiter: requests beyond the limit queue and are handed slots in the
-- order they asked, none left behind; a waiter cancelled in the queue is passed over. And the
-- profile file is read once however many accounts are connected.
local t = require "testlib"
local sg = require "sg"
local fleet = require "sg.fleet"

-- Spawns n tasks, `burst` at a time with a yield in between (so that some arrive while others
-- are being served), that each take a slot of `l`, note their number, yield `hold(i)` times
-- while holding it, and give it back. Returns the order in which they got their slots, and the
-- most held at once.
local function crowd(l, n, burst, hold)
  local order, held, most = {}, 0, 0
  local tasks = {}
  for i = 1, n do
    if i % burst == 0 then sg.sleep(0) end
    tasks[i] = sg.spawn(function()
      l:acquire()
      order[#order + 1] = i
      held = held + 1
      most = math.max(most, held)
      for _ = 1, hold(i) do sg.sleep(0) end
      held = held - 1
      l:release()
    end)
  end
  for _, task in ipairs(tasks) do t.eq(task:wait(), true) end
  return order, most
end

local function one_to(n)
  local list = {}
  for i = 1, n do list[i] = i end
  return list
end

t.test("many waiters are all served, never over the limit", function()
  local l = fleet.new_limiter(3)
  -- holders finish out of order (1 to 4 yields), so slots come free in a shuffled order
  local order, most = crowd(l, 200, 5, function(i) return 1 + i * 7 % 4 end)
  table.sort(order)
  t.eq(order, one_to(200))
  t.eq(most, 3)
  t.eq({ l.active, l.waiting }, { 0, 0 }, "nothing held or queued at the end")
end)

-- With one slot, nobody can take a slot that was already handed to a waiter that has not run
-- yet, so the order of service is exactly the order of arrival. A waiter left out of the queue
-- (its entry written below the queue's head) would only get its slot on renewing its gate,
-- after the ones that came later.
t.test("waiters arriving while others are served are served in the order they came", function()
  local l = fleet.new_limiter(1)
  for round = 1, 30 do
    local n = 2 + round
    local order = crowd(l, n, 1 + round % 4, function(i) return 1 + i % 3 end)
    t.eq(order, one_to(n), "round " .. round)
    t.eq({ l.active, l.waiting }, { 0, 0 }, "round " .. round)
  end
end)

t.test("a waiter cancelled in the queue is passed over; the others are served", function()
  local l = fleet.new_limiter(1)
  l:acquire()
  local served = {}
  local waiters = {}
  for i = 1, 3 do
    waiters[i] = sg.spawn(function()
      l:acquire()
      served[#served + 1] = i
      l:release()
    end)
  end
  sg.sleep(0) -- all three queue up
  waiters[2]:cancel()
  l:release()
  t.eq(waiters[1]:wait(), true)
  t.eq(waiters[3]:wait(), true)
  t.eq(served, { 1, 3 })
  t.eq({ l.active, l.waiting }, { 0, 0 })
end)

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

t.test("the profile file is read once for all the accounts of a fleet", function()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. shell_quote(dir)))
  local sections, accounts = {}, {}
  for i = 1, 5 do
    sections[#sections + 1] = string.format("[acct-%d.gcore]\napi_key = key-%d-000000\nproject_id = %d\n" ..
      "region_id = 76\n", i, i, i)
    accounts[#accounts + 1] = string.format('{ name = "acct-%d", provider = "gcore", profile = "acct-%d", ' ..
      'groups = { { group = "web", source = "gcore:web" } } },', i, i)
  end
  local profiles = io.open(dir .. "/profiles", "w")
  profiles:write(table.concat(sections, "\n"))
  profiles:close()
  assert(os.execute("chmod 600 " .. shell_quote(dir .. "/profiles")))
  local inventory = io.open(dir .. "/fleet.lua", "w")
  inventory:write("return {\n", table.concat(accounts, "\n"), "\n}\n")
  inventory:close()
  -- in a child, where SGRUN_PROFILES can be set: count the reads of the file while every account
  -- is connected and lists its groups (answered here, nothing is sent): each account's project
  -- comes from its own section
  local code = [[
    local fs, http = require "_sg.fs", require "_sg.http"
    local read, reads = fs.read_private, 0
    fs.read_private = function(...) reads = reads + 1 return read(...) end
    local projects = {}
    http.request = function(req)
      projects[#projects + 1] = req.url:match("securitygroups/(%d+)/")
      return { status = 200, headers = {}, body = '{"count":0,"results":[]}' }
    end
    local f = require("sg.fleet").load(os.getenv("INVENTORY"))
    for _, a in ipairs(f.accounts) do f:connection(a):list_security_groups() end
    print(reads, table.concat(projects, " "))]]
  local p = assert(io.popen(string.format("SGRUN_PROFILES=%s INVENTORY=%s %s -e %s 2>&1",
    shell_quote(dir .. "/profiles"), shell_quote(dir .. "/fleet.lua"), shell_quote(arg[-1]), shell_quote(code))))
  local out = p:read("a")
  p:close()
  os.execute("rm -rf " .. shell_quote(dir))
  t.eq(out, "1\t1 2 3 4 5\n")
end)

t.test("a credential an account's env names is trimmed, and refused with a control character inside", function()
  local inventory = os.tmpname()
  local f = assert(io.open(inventory, "w"))
  f:write('return { { name = "lab", provider = "hostup", env = { api_key = "LAB_KEY" }, ' ..
    'groups = { { group = "vm=10000", source = "hostup:vm=10000" } } } }\n')
  f:close()
  -- in a child, where LAB_KEY can be set; the request is answered here, nothing is sent
  local code = [[
    local http = require "_sg.http"
    http.request = function(req)
      io.write("KEY [", req.headers["X-API-Key"], "]\n")
      return { status = 200, headers = {}, body = '{"firewall_rules":[]}' }
    end
    local f = require("sg.fleet").load(os.getenv("INVENTORY"))
    local ok, err = pcall(function() f:connection(f.accounts[1]):list_firewall_rules(10000) end)
    if not ok then io.write("ERROR ", tostring(err), "\n") end]]
  local function run(value)
    local p = assert(io.popen(string.format("SGRUN_PROFILES=/nonexistent LAB_KEY=%s INVENTORY=%s %s -e %s 2>&1",
      shell_quote(value), shell_quote(inventory), shell_quote(arg[-1]), shell_quote(code))))
    local out = p:read("a")
    p:close()
    return out
  end
  t.eq(run("hostup-lab-key-0123\r\n"), "KEY [hostup-lab-key-0123]\n")
  local out = run("hostup-lab\nkeySECRET")
  t.ok(out:find("ERROR account lab: the environment variable LAB_KEY holds a control character", 1, true), out)
  t.ok(not out:find("keySECRET", 1, true), "the value is shown: " .. out)
  os.remove(inventory)
end)

-- A hand-edited inventory is checked when it is loaded: a bad group reference or connect option
-- is the file's error, naming the account and the field, not a traceback or fleet.lua:NNN text
-- from the account's turn.
t.test("the inventory check refuses bad group references and connect options, naming them", function()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. shell_quote(dir)))
  local function inventory(name, entry)
    local f = io.open(dir .. "/" .. name, "w")
    f:write('return { { name = "shop", ', entry, " } }\n")
    f:close()
    return dir .. "/" .. name
  end
  local cases = {
    { 'provider = "gcore", groups = { { group = {}, source = "gcore:web" } }',
      "account 1 (shop): groups[1].group: gcore: a group reference is a name or an id (a non-empty string " ..
      "or an integer), not an empty table" },
    { 'provider = "gcore", groups = { { group = 1.5, source = "gcore:web" } }', "groups[1].group: gcore:", "not 1.5" },
    { 'provider = "hostup", groups = { { group = { vm = 0 }, source = "hostup:vm=1" } }',
      "groups[1].group: hostup: group reference {vm = 0} is not {vm = N}" },
    { 'provider = "barrack", groups = { { group = { instance = "" }, source = "barrack:web" } }',
      'groups[1].group: barrack: group reference {instance = ""} is not a firewall name or id' },
    { 'provider = "gcore", groups = { { group = { vm = 1, x = 2 }, source = "gcore:web" } }', "not {vm = 1, x = 2}" },
    -- a form another provider takes is the wrong one here, said at load
    { 'provider = "exoscale", groups = { { group = { vm = 10000 }, source = "exoscale:web" } }',
      "groups[1].group: exoscale: a group reference is a name or an id", "not {vm = 10000} (that form names a HostUp VM" },
    { 'provider = "hostup", groups = { { group = "web", source = "exoscale:web" } }',
      'groups[1]: target "hostup:web": hostup: group reference "web" is not {vm = N}' },
    { 'provider = "hostup", groups = { { group = { instance = "BRK-1" }, source = "exoscale:web" } }',
      'groups[1].group: hostup: group reference {instance = "BRK-1"} is not {vm = N}' },
    { 'provider = "gcore", groups = { { group = "web", source = "hostup:web" } }',
      'account 1 (shop): groups[1]: source hostup:web: target "hostup:web": hostup: group reference "web" is not {vm = N}' },
    { 'provider = "gcore", connect = { timeout = -1 }, groups = { { group = "web", source = "gcore:web" } }',
      "account 1 (shop): connect.timeout must be a number of seconds above 0 and at most 86400" },
    { 'provider = "genesis", connect = { page_size = 500 }, groups = { { group = "web", source = "genesis:web" } }',
      "account 1 (shop): connect.page_size 500 is more than genesis allows (at most 100 per page)" },
    { 'provider = "gcore", connect = { timout = 5 }, groups = { { group = "web", source = "gcore:web" } }',
      "account 1 (shop): connect: unknown option 'timout'; did you mean 'timeout'?" },
    { 'provider = "gcore", connect = { retry = { tries = 2 } }, groups = { { group = "web", source = "gcore:web" } }',
      "account 1 (shop): connect.retry: unknown option 'tries'" },
    { 'provider = "gcore", connect = { retry = 3 }, groups = { { group = "web", source = "gcore:web" } }',
      "account 1 (shop): connect.retry must be a table" },
    -- a misspelt field, named as such (it read as the missing source)
    { 'provider = "gcore", groups = { { group = "web", sourse = "gcore:web" } }',
      "account 1 (shop): groups[1]: unknown field 'sourse' (known: group, source)" },
  }
  for i, c in ipairs(cases) do
    local path = inventory("inv" .. i .. ".lua", c[1])
    local ok, err = pcall(fleet.load, path)
    t.ok(not ok, "refused: " .. c[1])
    for j = 2, #c do t.ok(tostring(err):find(c[j], 1, true), tostring(err)) end
    t.ok(not tostring(err):find("%.lua:%d+:"), "no file:line: " .. tostring(err))
  end
  -- the script: a usage error (exit 2), before any connection
  for _, i in ipairs({ 1, 6 }) do
    local p = assert(io.popen(string.format("%s %s drift %s 2>&1; echo exit=$?", shell_quote(arg[-1]),
      shell_quote((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../../scripts/fleet.lua"),
      shell_quote(dir .. "/inv" .. i .. ".lua"))))
    local out = p:read("a")
    p:close()
    t.ok(out:find("exit=2", 1, true) and out:find("account 1 (shop)", 1, true)
      and not out:find("%.lua:%d+:") and not out:find("traceback", 1, true), out)
  end
  -- what is fine still loads
  t.ok(fleet.load(inventory("ok.lua", 'provider = "hostup", connect = { timeout = 5, retry = { attempts = 2 } }, ' ..
    'groups = { { group = { vm = 10000 }, source = "hostup:vm=10000" }, { group = "vm=10001", source = "hostup:vm=1" } }')))
  os.execute("rm -rf " .. shell_quote(dir))
end)

-- Runs `code` in a child sgrun with INVENTORY naming a file holding `inventory` and the given
-- environment (NAME=value words); returns what it printed. Requests are answered by the code's
-- own http.request: nothing is sent.
local function fleet_child(inventory, env, code)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(inventory)
  f:close()
  local p = assert(io.popen(string.format("SGRUN_PROFILES=/nonexistent %s INVENTORY=%s %s -e %s 2>&1", env,
    shell_quote(path), shell_quote(arg[-1]), shell_quote(code))))
  local out = p:read("a")
  p:close()
  os.remove(path)
  return out
end

-- HostUp (like Exoscale) puts its 429's Retry-After in the body: the fleet pauses the provider for
-- that long, not for its default pause meant for a 429 that says nothing.
t.test("a Retry-After given only in a 429's body pauses the provider for that long", function()
  local out = fleet_child('return { { name = "lab", provider = "hostup", env = { api_key = "LAB_KEY" }, ' ..
    'groups = { { group = "vm=10000", source = "hostup:vm=10000" } } } }\n', "LAB_KEY=hostup-lab-key-0123", [[
    local http = require "_sg.http"
    local statuses = {}
    http.request = function()
      if #statuses == 0 then
        statuses[1] = 429
        return { status = 429, headers = {}, body = '{"error":"Too Many Requests","message":"slow down",' ..
          '"retryAfter":2,"requestId":"r-1"}' }
      end
      statuses[#statuses + 1] = 200
      return { status = 200, headers = {}, body = '{"firewall_rules":[]}' }
    end
    local f = require("sg.fleet").load(os.getenv("INVENTORY"))
    local l, pauses = f:limiter("hostup"), {}
    local pause = l.pause
    l.pause = function(self, seconds) pauses[#pauses + 1] = seconds return pause(self, seconds) end
    f:connection(f.accounts[1]):list_firewall_rules(10000)
    print("sent " .. table.concat(statuses, " ") .. "; paused " .. table.concat(pauses, " "))]])
  t.eq(out, "sent 429 200; paused 2\n")
end)

-- A provider that never stops answering 429: every send, the fleet's last try of a request
-- included, holds one of the provider's slots, and each account fails with an error saying what
-- happened and what to do, after exactly the fleet's tries (not re-sent again by sg.retry).
t.test("a provider answering 429 for ever: never over the limit in flight, each account fails saying why", function()
  local accounts, env = {}, {}
  for i = 1, 4 do
    accounts[i] = string.format('{ name = "lab-%d", provider = "hostup", env = { api_key = "LAB_KEY_%d" }, ' ..
      'groups = { { group = "vm=10000", source = "hostup:vm=10000" } } },', i, i)
    env[i] = string.format("LAB_KEY_%d=hostup-lab-key-%d000000", i, i)
  end
  local out = fleet_child("return {\n" .. table.concat(accounts, "\n") .. "\n}\n", table.concat(env, " "), [[
    local sg, http = require "sg", require "_sg.http"
    local in_flight, most, sent = 0, 0, {}
    http.request = function(req)
      local key = req.headers["X-API-Key"]
      sent[key] = (sent[key] or 0) + 1
      in_flight = in_flight + 1
      most = math.max(most, in_flight)
      for _ = 1, 3 do sg.sleep(0) end -- the others run while this one is in flight
      in_flight = in_flight - 1
      return { status = 429, headers = { ["retry-after"] = "0" }, body = '{"error":"Too Many Requests"}' }
    end
    local report = require("sg.fleet").load(os.getenv("INVENTORY")):run("drift", { per_provider = 2, concurrency = 4 })
    print("most in flight " .. most)
    for i, a in ipairs(report.accounts) do
      print(a.name, a.status, sent["hostup-lab-key-" .. i .. "000000"], a.error)
    end]])
  local lines = {}
  for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
  t.eq(lines[1], "most in flight 2", out)
  t.eq(#lines, 5, out)
  for i = 1, 4 do
    local name, status, sent, err = (lines[i + 1] or ""):match("^(%S+)\t(%S+)\t(%S+)\t(.*)$")
    t.eq({ name, status, sent }, { "lab-" .. i, "failed", "30" }, out)
    t.ok(err and err:find("429 (too many requests) to 30 tries", 1, true)
      and err:find("run the fleet again later, or with a lower --per-provider", 1, true), out)
  end
  t.ok(not out:find("lab-key", 1, true), "a credential is shown: " .. out)
end)

t.run()
