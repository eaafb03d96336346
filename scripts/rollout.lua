#!/usr/bin/env sgrun
-- Roll the rules of one security group out to groups on other clouds, all or nothing.
--
-- usage: sgrun scripts/rollout.lua [--allow-lossy] [--additive] [--save=FILE] SOURCE TARGET...
--        sgrun --sim scripts/rollout.lua          (the demo: no arguments, against the emulator)
--   SOURCE and TARGET are PROVIDER:GROUP: gcore:web, exoscale:web, genesis:web, barrack:web,
--   hostup:vm=10000, barrack:instance=BRK-100001A. A missing target group is created.
--   SOURCE may also be a snapshot file (snapshot.lua writes one).
--   --allow-lossy  translate rules a target can only express approximately (and skip what it
--                  cannot express) instead of stopping; the report lists every such rule
--   --additive     only add rules; never remove what a target already has
--   --save=FILE    also write the source snapshot to FILE
-- sgrun --dry-run plans every target and changes nothing; --json prints the report as JSON.
-- Exit status: 0 when every target converged or was already so, 1 otherwise.
local sg = require "sg"
local cli = require "sg.cli"

local flags, positional = cli.parse_args({ ... })
if #positional == 0 then
  -- the demo roll-out: Exoscale's "web" group onto every other cloud, each emulated cloud's
  -- module naming its demo group
  positional = { "exoscale:web" }
  for _, name in ipairs(require("sg.connect").providers()) do
    if name ~= "exoscale" then
      positional[#positional + 1] = name .. ":" .. require("sgsim." .. name).demo_target
    end
  end
  flags["allow-lossy"] = true
end
if #positional < 2 then
  io.stderr:write("usage: sgrun scripts/rollout.lua [--allow-lossy] [--additive] [--save=FILE] SOURCE TARGET...\n")
  os.exit(2)
end

local source
if positional[1]:find(":", 1, true) then
  local provider, ref = cli.parse_target(positional[1])
  source = sg.snapshot(cli.connect(provider), ref)
else
  source = sg.load(positional[1])
end
if type(flags.save) == "string" then sg.save(source, flags.save) end

local targets = {}
for i = 2, #positional do
  local provider, ref = cli.parse_target(positional[i])
  targets[#targets + 1] = { cli.connect(provider), ref }
end

local report = sg.rollout(source, targets, {
  lossy = flags["allow-lossy"] and "allow" or "error",
  mode = flags.additive and "additive" or "authoritative",
})
cli.print(report)
os.exit(report.ok and 0 or 1)
