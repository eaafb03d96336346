-- Checks what an interrupted (or recovered) roll-out left on the clouds, against a live emulator:
--   sgrun rollout_outcome.lua save FILE SOURCE TARGET...    the fingerprint of every target -> FILE
--   sgrun rollout_outcome.lua check FILE REPORT SOURCE TARGET...
-- REPORT is what scripts/rollout.lua printed (text or --json). Every target must read back as its
-- account says: "changed" converged (a dry run of the same roll-out has nothing to do on it),
-- "restored" and "left untouched" exactly as saved; no target may be unaccounted for.
-- REPORT "-" checks that every target converged (after a recovering run). Exit 0 or 1, and a line
-- per target on stderr saying what was found.
local sg = require "sg"
local cli = require "sg.cli"
local rollout = require "sg.rollout"

local args = { ... }
local command, file = args[1], args[2]
local report_file = command == "check" and args[3] or nil
local first = command == "check" and 4 or 3
local source_spec, specs = args[first], { table.unpack(args, first + 1) }
if (command ~= "save" and command ~= "check") or not file or not source_spec or #specs == 0 then
  io.stderr:write("usage: sgrun rollout_outcome.lua save FILE SOURCE TARGET... | " ..
    "check FILE REPORT SOURCE TARGET...\n")
  os.exit(2)
end

---@async
local function live_fingerprint(spec)
  local provider, ref = cli.parse_target(spec)
  local group = cli.connect(provider):group(ref)
  return rollout.fingerprint(group and group.rules)
end

if command == "save" then
  local out = assert(io.open(file, "w"))
  for _, spec in ipairs(specs) do out:write(spec, " ", live_fingerprint(spec), "\n") end
  out:close()
  os.exit(0)
end

local saved = {}
for line in io.lines(file) do
  local spec, fp = line:match("^(%S+) (%S+)$")
  saved[spec] = fp
end

-- spec -> account, from the report's text lines or its JSON
local accounts = {}
if report_file ~= "-" then
  local text = assert(io.open(report_file)):read("a")
  if text:match("^%s*{") then
    local report = assert(sg.json.decode(text), "the --json report does not parse")
    for _, t in ipairs(report.targets) do
      accounts[t.provider .. ":" .. require("sg.plan").group_text(t.group)] = t.account
    end
  else
    for provider, group, account in text:gmatch("\n  (%S+)%s+(%S+)%s+%S+%s+%+%d+ %-%d+  ([^\n]+)") do
      accounts[provider .. ":" .. group] = account
    end
  end
end

---@async
local function converged(spec)
  local provider, ref = cli.parse_target(spec)
  local sp, sref = cli.parse_target(source_spec)
  local report = rollout.rollout(sg.snapshot(cli.connect(sp), sref), { { cli.connect(provider), ref } },
    { dry_run = true, lossy = "allow" })
  return report.targets[1].status == "unchanged"
end

local bad = 0
for _, spec in ipairs(specs) do
  local account = report_file == "-" and "changed" or accounts[spec]
  local ok
  if account == "changed" then
    ok = converged(spec)
  elseif account == "restored" or account == "left untouched" then
    ok = live_fingerprint(spec) == saved[spec]
  else
    ok = false
  end
  io.stderr:write(string.format("%s: %s, %s\n", spec, tostring(account),
    ok and "and so it reads back" or "BUT it does not read back so"))
  if not ok then bad = bad + 1 end
end
os.exit(bad == 0 and 0 or 1)
