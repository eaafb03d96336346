#!/usr/bin/env sgrun
-- Drift check: compare a live security group with a snapshot taken earlier.
--
-- usage: sgrun scripts/drift.lua [--timeout SECONDS] SNAPSHOT_FILE [PROVIDER:GROUP]
--   The group defaults to the one the snapshot was taken of. Prints the difference as a plan
--   (what would bring the group back to the snapshot); sgrun --json prints it as JSON.
--   --timeout SECONDS  limit for each provider call
-- Exit status: 0 no drift, 3 drift found, 1 error, 2 usage. Made for cron and CI:
--   sgrun --every 10m --log-format json scripts/drift.lua web.snapshot.json
local sg = require "sg"
local cli = require "sg.cli"

local USAGE = "usage: sgrun scripts/drift.lua [--timeout SECONDS] SNAPSHOT_FILE [PROVIDER:GROUP]"
local flags, positional = cli.parse_args({ ... }, { usage = USAGE, options = { timeout = "seconds" } })
if #positional < 1 or #positional > 2 then cli.usage_error("drift.lua takes a snapshot file", USAGE) end
local provider, ref
if positional[2] then provider, ref = cli.parse_target(positional[2]) end
local snap = cli.load(positional[1])
if not provider then provider, ref = snap.provider, snap.group.id or snap.group.name end

local plan = sg.plan(cli.connect(provider, { timeout = flags.timeout }), ref, snap, { lossy = "allow" })
if plan:empty() then
  sg.log("info", "no_drift", string.format("%s %s matches %s", provider, plan.target.group, positional[1]))
  if (sg.options or {}).json then cli.print(plan) end
  os.exit(0)
end
sg.log("warn", "drift_found", string.format("%s %s differs from %s", provider, plan.target.group,
  positional[1]), { extra = #plan.remove, missing = #plan.add })
cli.print(plan)
os.exit(3)
