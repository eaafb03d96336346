-- A throw-away sixth provider, made only of its own files under tests/providers/ (binding table
-- _sg/sixth.lua, codec sg/codec/sixth.lua, adapter sg/groups/sixth.lua, emulator module
-- sgsim/sixth.lua), joins the neutral layer with no edit anywhere else: snapshot, plan and a
-- roll-out from Exoscale onto it, against the emulator core run in-process (connections send
-- through a transport that calls it, so no server and no network).
local t = require "testlib"

local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = HERE .. "/../providers/?.lua;" .. package.path
-- What the build does for a bindings/NAME.c that calls sg_provider_push: list it as a provider.
table.insert(require("_sg.providers"), "sixth")

local sg = require "sg"
local connect = require "sg.connect"
local groups = require "sg.groups"
local rule = require "sg.rule"
local sgsim = require "sgsim"
local task = require "sg.task"

local T0 = os.time() - task.now()
local core = assert(sgsim.new({ task_duration_ms = 50, seed = 6, clock = function() return T0 + task.now() end }))
-- loopback, so that credentials may go over plain http (nothing is sent: the transport below
-- hands each request to the emulator core in-process)
local BASE = "http://127.0.0.1:9"
local ENV = core:env(BASE)

local function lower(headers)
  local out = {}
  for k, v in pairs(headers or {}) do out[k:lower()] = v end
  return out
end

local function transport(req)
  local status, body, headers, _, _, seq = core:request { method = req.method, uri = req.url:sub(#BASE + 1),
    headers = lower(req.headers), body = req.body or "" }
  core:finish(seq)
  return { status = status, headers = lower(headers), body = body or "" }
end

-- A connection to the in-process emulator with its demo credentials.
local function conn(provider)
  local def = connect.describe(provider)
  local opts = { transport = transport, base_url = ENV[def.base_url_env] }
  for _, c in ipairs(def.credentials) do opts[c.name] = ENV[c.env] end
  return sg.connect(provider, opts)
end

local function keys(rules)
  local out = {}
  for i, r in ipairs(rules) do out[i] = rule.key(r) end
  table.sort(out)
  return out
end

local exo, six = conn("exoscale"), conn("sixth")
local snap

t.test("the sixth provider is listed and served", function()
  t.ok(core.modules.sixth, "the emulator serves sgsim.sixth")
  t.eq(groups.get("sixth").name, "sixth")
  t.eq(#six:groups(), 0, "it starts with no group")
end)

t.test("it passes the conformance checks (binding, codec, adapter, emulator module)", function()
  local check = require "conformance"
  check.binding("sixth")
  check.codec("sixth")
  check.adapter("sixth")
  check.sim("sixth")
end)

t.test("snapshot of Exoscale's web group", function()
  snap = sg.snapshot(exo, "web")
  t.ok(#snap.rules >= 3, "the seeded group has rules")
end)

-- What the sixth provider should end with: every source rule it can hold, translated.
local function expected()
  local codec = require("sg.codec").get("sixth")
  local want = {}
  for _, r in ipairs(snap.rules) do
    local tr = codec.translate(r)
    if tr.rule then want[#want + 1] = tr.rule end
  end
  return keys(want)
end

t.test("plan onto the sixth provider: create the group and add what it can express", function()
  local p = sg.plan(six, "web", snap, { create = true, lossy = "allow" })
  t.eq(p.create_group, "web")
  t.eq(keys(p.add), expected())
  t.eq(#six:groups(), 0, "planning sends no write")
end)

t.test("roll-out from Exoscale onto the sixth provider converges", function()
  local report = sg.rollout(snap, { { six, "web" } }, { lossy = "allow" })
  t.ok(report.ok, tostring(report))
  t.eq(report.targets[1].status, "converged")
  local g = assert(six:group("web"))
  t.eq(keys(g.rules), expected(), "the group holds the translated rules")
  local again = sg.rollout(snap, { { six, "web" } }, { lossy = "allow" })
  t.eq(again.targets[1].status, "unchanged", "a second roll-out changes nothing")
end)

t.test("its own group reference form reaches the command line and the messages", function()
  local cli = require "sg.cli"
  local function usage_message(text)
    local ok, err = pcall(cli.parse_target, text)
    t.ok(not ok and cli.is_usage_error(err), text .. " is a usage error")
    return err.message
  end
  local provider, ref = cli.parse_target("sixth:rack=7")
  t.eq(provider, "sixth")
  t.eq(ref, { rack = 7 })
  t.ok(usage_message("sixth:rack=x"):find("rack= takes a positive whole number, as in sixth:rack=7", 1, true))
  t.ok(usage_message("gcore:rack=7"):find("(that form names a sixth rack)", 1, true))
  t.ok(usage_message("web"):find("sixth:rack=7", 1, true), "the expected forms include it")
  local help = getmetatable(six).__help(six)
  t.ok(help:find('one group by name or id or {rack = 7}', 1, true), help)
end)

t.test("delete_group removes the group", function()
  local adapter = groups.get("sixth")
  adapter.delete_group(six, assert(six:group("web")))
  t.eq(#six:groups(), 0)
end)

t.run()
