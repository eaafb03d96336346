-- Provider data in shapes older API versions gave, which today's response schemas no longer
-- allow, loaded into the emulator through /_sim/load: sgrun must still read it and write back
-- only what the request schemas allow. schemas/validate_traffic judges the requests of a
-- test_legacy_* file and skips its responses, which are outside the schema on purpose.
local t = require "testlib"
local w = require "sim_wire"
local rule = require "sg.rule"
local json = require "sg.json"
local gc_codec = require "sg.codec.gcore"
local adapter = require("sg.groups").get("gcore")
local keys = w.keys

local gc, wire = w.connect("gcore")
local function changes_for(group, desired) return w.changes_for(gc_codec, group, desired) end

t.test("gcore: a kept rule read with a legacy protocol number goes back by its enum name", function()
  w.reset()
  -- older responses say "50" for esp and "0" for any protocol; the PATCH schema takes neither
  local st = w.control("GET", "/_sim/state")
  local g
  for _, x in pairs(st.providers.gcore.groups) do if x.name == "web" then g = x end end
  for i = 1, 2 do
    g.rules[i].protocol = i == 1 and "50" or "0"
    g.rules[i].port_range_min, g.rules[i].port_range_max = nil, nil
  end
  w.control("POST", "/_sim/load", st)
  local group = adapter.get_group(gc, "web")
  local desired = {}
  for _, r in ipairs(group.rules) do desired[#desired + 1] = r end
  desired[#desired + 1] = rule.normalize { direction = "ingress", protocol = "udp", port = 51821, cidr = "0.0.0.0/0" }
  local sent_before = #wire
  adapter.apply(gc, group, changes_for(group, desired))
  local patch = w.last_sent(wire, sent_before, "PATCH")
  t.ok(patch, "one PATCH")
  local protocols = {}
  for _, r in ipairs(json.decode(patch.body).rules) do protocols[tostring(r.protocol)] = true end
  t.ok(protocols.esp and not protocols["50"] and not protocols["0"], "sent " .. patch.body)
  t.eq(keys(adapter.get_group(gc, "web").rules), keys(desired))
end)

t.run()
