#!/usr/bin/env sgrun
-- Drift check: compare a live security group with a snapshot taken earlier.
--
-- usage: sgrun scripts/drift.lua SNAPSHOT_FILE [PROVIDER:GROUP]
--   The group defaults to the one the snapshot was taken of. Prints the difference as a plan
--   (what would bring the group back to the snapshot); --json prints it as JSON.
-- Exit status: 0 no drift, 3 drift found, 1 error, 2 usage. Made for cron and CI:
--   sgrun --every 10m --log-format json scripts/drift.lua web.snapshot.json
local sg = require "sg"
local cli = require "sg.cli"

local _, positional = cli.parse_args({ ... })
if #positional < 1 or #positional > 2 then
  io.stderr:write("usage: sgrun scripts/drift.lua SNAPSHOT_FILE [PROVIDER:GROUP]\n")
  os.exit(2)
end
local snap = sg.load(positional[1])
local provider, ref = snap.provider, snap.group.id or snap.group.name
if positional[2] then provider, ref = cli.parse_target(positional[2]) end

local plan = sg.plan(cli.connect(provider), ref, snap, { lossy = "allow" })
if plan:empty() then
  sg.log("info", "no_drift", string.format("%s %s matches %s", provider, plan.target.group, positional[1]))
  if (sg.options or {}).json then cli.print(plan) end
  os.exit(0)
end
sg.log("warn", "drift_found", string.format("%s %s differs from %s", provider, plan.target.group,
  positional[1]), { extra = #plan.remove, missing = #plan.add })
cli.print(plan)
os.exit(3)
