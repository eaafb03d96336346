-- Every provider the build lists (_sg.providers) has every piece the neutral layer needs, and
-- a missing or incomplete piece fails with a message naming the file to write:
--   bindings/NAME.c            the description table the neutral layer reads
--   stdlib/sg/codec/NAME.lua   capability table, decode/encode, round trips of what it claims
--                              to express, and no I/O (loads without the networking library)
--   stdlib/sg/groups/NAME.lua  the adapter's operations, reading the emulator's demo target
--   sim/sgsim/NAME.lua         the emulator module interface (sim/sgsim/init.lua)
--   stdlib/meta/sg_providers.lua  the LuaLS stubs list the provider's class and methods
-- The vendor schemas (tests/schemas/NAME.schema.json) are checked by conformance/schemas.
local t = require "testlib"
local sg = require "sg"
local cli = require "sg.cli"
local check = require "conformance"
local w = require "sim_wire"

local PROVIDERS = require "_sg.providers"

t.ok(#PROVIDERS > 0, "the build lists no provider: a provider is a bindings/NAME.c that calls sg_provider_push")

for _, name in ipairs(PROVIDERS) do
  t.test(name .. ": binding, codec, adapter, emulator module and stubs", function()
    local def = check.binding(name)
    check.codec(name)
    check.codec_alone(name)
    local adapter = check.adapter(name)
    local sim = check.sim(name)
    check.stubs(name, def)
    -- the adapter reads the emulator's demo target: a group, or nil and why
    local conn = w.connect(name)
    local _, ref = cli.parse_target(name .. ":" .. sim.demo_target)
    local g, why = adapter.get_group(conn, ref)
    check.need(g ~= nil or type(why) == "string", "stdlib/sg/groups/" .. name .. ".lua",
      "get_group must return a group, or nil and a message")
    if g then
      check.need(type(g.rules) == "table" and g.ref ~= nil, "stdlib/sg/groups/" .. name .. ".lua",
        "get_group's group has no rules list or no ref")
      local snap = sg.snapshot(conn, ref)
      t.eq(#snap.rules, #g.rules, name .. " snapshot of the demo target")
    end
  end)
end

t.run()
