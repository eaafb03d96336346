#!/usr/bin/env sgrun
-- Exposure audit: rules that open sensitive ports (SSH, RDP, databases, ...) to any source.
--
-- usage: sgrun scripts/audit.lua [--timeout SECONDS] PROVIDER:GROUP... | SNAPSHOT_FILE...
--   e.g. sgrun scripts/audit.lua exoscale:web gcore:web hostup:vm=10000
-- Prints one line per finding (--json: a JSON list). Exit status: 0 nothing found, 3 findings,
-- 1 error, 2 usage.
local sg = require "sg"
local cli = require "sg.cli"
local rule = require "sg.rule"

local USAGE = "usage: sgrun scripts/audit.lua [--timeout SECONDS] PROVIDER:GROUP... | SNAPSHOT_FILE..."
local flags, positional = cli.parse_args({ ... }, { usage = USAGE, options = { timeout = "seconds" } })
if #positional == 0 then cli.usage_error("audit.lua takes targets or snapshot files", USAGE) end
-- every argument is checked before the first request
local refs = {}
for i, target in ipairs(positional) do
  -- PROVIDER:GROUP is a target even when a file has that name (given so as ./gcore:web)
  if cli.is_target(target) then refs[i] = { cli.parse_target(target) } end
end

local all = sg.json.array()
for i, target in ipairs(positional) do
  local snap
  if refs[i] then
    snap = sg.snapshot(cli.connect(refs[i][1], { timeout = flags.timeout }), refs[i][2])
  else
    snap = cli.load(target)
  end
  for _, f in ipairs(sg.audit(snap)) do
    all[#all + 1] = { target = target, severity = f.severity, rule = f.rule, why = f.why }
    if not (sg.options or {}).json then
      print(string.format("%-8s %-20s %s: %s", f.severity, target, rule.tostring(f.rule), f.why))
    end
  end
end
if (sg.options or {}).json then print(sg.json.encode(all)) end
if #all == 0 and not (sg.options or {}).json then print("no exposure found") end
os.exit(#all > 0 and 3 or 0)
