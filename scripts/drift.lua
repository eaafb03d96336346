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
if cli.names_target(positional[1]) then
  -- a file so named could have been put there by someone else, or mistaken for the live group
  cli.usage_error(string.format("%s is a target; drift.lua compares a snapshot FILE with a live group " ..
    "(a file named so is given as ./%s)", positional[1], positional[1]), USAGE)
end
local provider, ref
if positional[2] then provider, ref = cli.parse_target(positional[2]) end
local snap = cli.load(positional[1])
if not provider then provider, ref = snap.provider, snap.group.id or snap.group.name end

local conn = cli.connect(provider, { timeout = flags.timeout })
-- a group that is gone is the largest drift there is: reported as drift, not as an error
local live, missing = conn:group(ref)
if not live then
  local text = string.format("%s group %s of %s no longer exists: %s", provider, tostring(ref), positional[1],
    tostring(missing))
  sg.log("warn", "drift_found", text, { group_missing = true })
  if (sg.options or {}).json then
    print(sg.json.encode({ target = { provider = provider, group = ref }, group_missing = true }))
  else
    print("drift: " .. text)
  end
  os.exit(3)
end
local plan = sg.plan(conn, live.id or ref, snap, { lossy = "allow" })
if plan:empty() then
  sg.log("info", "no_drift", string.format("%s %s matches %s", provider, plan.target.group, positional[1]))
  if (sg.options or {}).json then cli.print(plan) end
  os.exit(0)
end
sg.log("warn", "drift_found", string.format("%s %s differs from %s", provider, plan.target.group,
  positional[1]), { extra = #plan.remove, missing = #plan.add })
cli.print(plan)
os.exit(3)
