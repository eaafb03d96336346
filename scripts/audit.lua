#!/usr/bin/env sgrun
-- Exposure audit: rules that open sensitive ports (SSH, RDP, databases, ...) to any source.
--
-- usage: sgrun scripts/audit.lua PROVIDER:GROUP... | SNAPSHOT_FILE...
--   e.g. sgrun scripts/audit.lua exoscale:web gcore:web hostup:vm=10000
-- Prints one line per finding (--json: a JSON list). Exit status: 0 nothing found, 3 findings,
-- 1 error, 2 usage.
local sg = require "sg"
local cli = require "sg.cli"
local rule = require "sg.rule"

local _, positional = cli.parse_args({ ... })
if #positional == 0 then
  io.stderr:write("usage: sgrun scripts/audit.lua PROVIDER:GROUP... | SNAPSHOT_FILE...\n")
  os.exit(2)
end

local all = sg.json.array()
for _, target in ipairs(positional) do
  local snap
  if target:find(":", 1, true) and not io.open(target) then
    local provider, ref = cli.parse_target(target)
    snap = sg.snapshot(cli.connect(provider), ref)
  else
    snap = sg.load(target)
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
