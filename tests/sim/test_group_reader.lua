-- adapter.group_reader: where one listing holds every group of an account (Exoscale, Gcore,
-- Genesis, Barrack's firewalls), many groups are found with the requests of that one listing,
-- each as get_group would find it. sg.fleet reads an account's groups with it.
local t = require "testlib"
local w = require "sim_wire"
local groups = require "sg.groups"
local keys = w.keys

local function reads(provider, since)
  local n = 0
  for _, e in ipairs(w.sim_log(provider, since)) do
    if e.method == "GET" then n = n + 1 end
  end
  return n
end

local MISSING = { exoscale = "no security group with the name or id", gcore = "no security group with the name or id",
  genesis = "no security group with the name or id", barrack = "no Barrack firewall is named" }

for _, provider in ipairs({ "exoscale", "gcore", "genesis", "barrack" }) do
  t.test(provider .. ": every group found with one listing's requests, as get_group finds it", function()
    w.reset()
    local conn = w.connect(provider)
    local adapter = groups.get(provider)
    for i = 1, 3 do adapter.create_group(conn, "reader-" .. i, "group_reader test") end
    local since = w.last_seq(provider)
    local all = adapter.list_groups(conn)
    local one_listing = reads(provider, since)
    t.ok(#all >= 4, #all .. " groups")

    since = w.last_seq(provider)
    local read = adapter.group_reader(conn)
    for _, g in ipairs(all) do
      local by_name, by_id = assert(read(g.name)), assert(read(g.id))
      t.eq({ by_name.id, by_name.name }, { g.id, g.name })
      t.eq(by_id.id, g.id)
      t.eq(keys(by_name.rules), keys(g.rules), g.name)
    end
    local missing, why = read("no-such-group")
    t.eq(missing, nil)
    t.ok(why:find(MISSING[provider], 1, true), why)
    t.eq(reads(provider, since), one_listing, "requests of the reader")

    local single = assert(adapter.get_group(conn, "reader-2"))
    t.eq(keys(assert(read("reader-2")).rules), keys(single.rules))
  end)
end

t.test("barrack: a legacy instance is read on its own, a bad reference blamed on the caller", function()
  w.reset()
  local conn = w.connect("barrack")
  local read = groups.get("barrack").group_reader(conn)
  local since = w.last_seq("barrack")
  local g = assert(read({ instance = "BRK-100001A" }))
  t.eq(g.ref, { instance = "BRK-100001A" })
  for _, e in ipairs(w.sim_log("barrack", since)) do
    t.ok(not e.path:find("/firewalls", 1, true), "a legacy instance alone lists no firewalls: " .. e.path)
  end
  local _, err = pcall(function()
    local bad = read({ instance = "" }) -- the line the message must point at
    return bad
  end)
  t.ok(tostring(err):find("test_group_reader.lua:%d+: barrack: group reference"), tostring(err))
end)

t.test("HostUp has no group reader (a VM's firewall is one request): sg.fleet reads its groups one by one", function()
  t.eq(groups.get("hostup").group_reader, nil)
end)

t.run()
