#!/usr/bin/env sgrun
-- One action over every account of an inventory (see stdlib/sg/fleet.lua for its format), one report.
--
-- usage: sgrun scripts/fleet.lua drift|audit|rollout [options] INVENTORY
--        sgrun scripts/fleet.lua merge [--json] REPORT...
--   drift     compare every group with its source (changes nothing)
--   audit     any-source exposure of SSH, RDP and database ports in every group
--   rollout   bring every group to its source (sgrun --dry-run: plan only)
--   merge     one report from the --json reports of the shards of one run
-- options:
--   --json              print the report as one JSON object: accounts, totals
--   --shard I/N         only the accounts of shard I (0 .. N-1) of N (rendezvous hashing of the
--                       account names: adding an account moves only that account)
--   --shards N          N shards, this run's index from JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs)
--   --concurrency N     accounts worked on at once (default: --per-provider times the providers)
--   --per-provider N    requests in flight to one provider at once (default 20)
--   --timeout SECONDS   limit for each HTTP attempt of every account's provider calls
--   --additive          rollout: only add rules
--   --yes               rollout: go ahead on a terminal (there it asks for this: one run writes to
--                       every account, so review it first with sgrun --dry-run)
-- Exit status: 0 clean, 3 drift or findings, 1 an account failed (the others still run), 2 usage
-- or an inventory or report that cannot be read or is not what this expects.
local sg = require "sg"
local cli = require "sg.cli"
local fleet = require "sg.fleet"

local USAGE = "usage: sgrun scripts/fleet.lua drift|audit|rollout [--json] [--shard I/N | --shards N] " ..
  "[--concurrency N] [--per-provider N] [--timeout SECONDS] [--additive] [--yes] INVENTORY\n" ..
  "       sgrun scripts/fleet.lua merge [--json] REPORT...\n"

local function usage(msg) cli.usage_error(msg or "an action and an inventory are needed", USAGE) end
-- the user's file is wrong, not an account: the message names the file and the fix
local function file_error(msg) io.stderr:write("fleet: ", msg, "\n") os.exit(2) end

local flags, positional = cli.parse_args({ ... }, { usage = USAGE, options = {
  json = "flag", additive = "flag", yes = "flag", shard = "I/N", shards = "N", concurrency = "N",
  ["per-provider"] = "N", timeout = "seconds",
} })
local json_out = flags.json or sg.options.json
local action = table.remove(positional, 1)

local function emit(report)
  if json_out then print(sg.json.encode(report)) else print(fleet.text(report)) end
  os.exit(fleet.exit_code(report))
end

if action == "merge" then
  if #positional == 0 then usage("merge needs at least one report file") end
  local reports = {}
  for n, path in ipairs(positional) do
    local ok, report = pcall(fleet.read_report, path)
    if not ok then file_error(report) end
    reports[n] = report
  end
  local ok, merged = pcall(fleet.merge, reports)
  if not ok then file_error(tostring(merged)) end
  emit(merged)
end

local known = {}
for _, a in ipairs(fleet.ACTIONS) do known[a] = true end
if not known[action] then usage(action and ("unknown action " .. action) or nil) end
if #positional ~= 1 then usage("expected one INVENTORY file") end

local function count(name)
  local v = flags[name]
  if v == nil then return nil end
  local n = math.tointeger(tonumber(v))
  if not n or n < 1 then usage(string.format("--%s must be a positive integer (got %s)", name, tostring(v))) end
  return n
end

local shard_index, shard_count
if flags.shard then
  local a, b = tostring(flags.shard):match("^(%d+)/(%d+)$")
  shard_index, shard_count = tonumber(a), tonumber(b)
  if not a or shard_count < 1 or shard_index >= shard_count then
    usage("--shard I/N: I from 0 to N-1, e.g. --shard 0/4 (got " .. tostring(flags.shard) .. ")")
  end
elseif flags.shards then
  shard_count = count("shards")
  local env = os.getenv("JOB_COMPLETION_INDEX")
  shard_index = env and math.tointeger(tonumber(env))
  if not shard_index or shard_index < 0 or shard_index >= shard_count then
    usage(string.format("--shards %d takes this run's shard from JOB_COMPLETION_INDEX (0..%d), which is %s; " ..
      "outside an Indexed Job use --shard I/N", shard_count, shard_count - 1, env and ("'" .. env .. "'") or "unset"))
  end
end

-- a person at a terminal is not asked account by account (a thousand questions): the run is
-- refused unless they said --yes, having seen the plan of `sgrun --dry-run` (as rollout.lua asks
-- before it removes rules). Without a terminal (cron, CI) nobody could answer, so nobody is asked.
if action == "rollout" and not sg.options.dry_run and not flags.yes and cli.isatty("stdin") then
  usage(string.format("rollout writes to every account of the inventory and asks nothing on the way: " ..
    "review it with `sgrun --dry-run %s %s`, then run it with --yes", arg and arg[0] or "scripts/fleet.lua",
    table.concat({ ... }, " ")))
end

local ok, inv = pcall(fleet.load, positional[1])
if not ok then file_error(tostring(inv)) end
if shard_count then inv:shard(shard_index, shard_count) end

local report = inv:run(action, {
  concurrency = count("concurrency"),
  per_provider = count("per-provider"),
  timeout = flags.timeout,
  mode = flags.additive and "additive" or "authoritative",
})
sg.log(report.totals.failed > 0 and "warn" or "info", "fleet_" .. action,
  string.format("%d accounts%s", report.totals.accounts,
    shard_count and string.format(" (shard %d/%d)", shard_index, shard_count) or ""),
  report.totals.by_status)
emit(report)
