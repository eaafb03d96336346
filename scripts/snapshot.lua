#!/usr/bin/env sgrun
-- Take a snapshot of a security group and write it to a file (atomically).
--
-- usage: sgrun scripts/snapshot.lua [--timeout SECONDS] PROVIDER:GROUP FILE
--   e.g. sgrun scripts/snapshot.lua exoscale:web web.snapshot.json
--        sgrun scripts/snapshot.lua hostup:vm=10000 vm10000.snapshot.json
-- The file keeps the canonical rules and the provider's raw rules; drift.lua and rollout.lua
-- read it back. Exit status: 0 written, 1 error, 2 usage.
local sg = require "sg"
local cli = require "sg.cli"

local USAGE = "usage: sgrun scripts/snapshot.lua [--timeout SECONDS] PROVIDER:GROUP FILE"
local flags, positional = cli.parse_args({ ... }, { usage = USAGE, options = { timeout = "seconds" } })
if #positional ~= 2 then cli.usage_error("snapshot.lua takes a target and a file name", USAGE) end
local provider, ref = cli.parse_target(positional[1])
if positional[2] == "" then cli.usage_error("FILE is empty: name the file to write the snapshot to", USAGE) end
if cli.names_target(positional[2]) then
  -- a file so named would be read back as that target's snapshot wherever a target is taken
  cli.usage_error(string.format("FILE %s is a target, not a file name (to name a file so, write ./%s)",
    positional[2], positional[2]), USAGE)
end
local snap = sg.snapshot(cli.connect(provider, { timeout = flags.timeout }), ref)
sg.save(snap, positional[2])
print(string.format("%s %s: %d rules written to %s", provider,
  require("sg.printable").escape(tostring(snap.group.name or snap.group.id)),
  #snap.rules, positional[2]))
