#!/usr/bin/env sgrun
-- Roll the rules of one security group out to groups on other clouds.
--
-- usage: sgrun [sgrun options] scripts/rollout.lua [options] SOURCE TARGET...
--        sgrun --sim scripts/rollout.lua          (the demo: no arguments, against the emulator)
--        sgrun scripts/rollout.lua --recover [TARGET...]
--   SOURCE and TARGET are PROVIDER:GROUP: gcore:web, exoscale:web, genesis:web, barrack:web,
--   hostup:vm=10000, barrack:instance=BRK-100001A. A missing target group is created.
--   SOURCE may also be a snapshot file (snapshot.lua writes one).
-- By default each target stands on its own: it ends converged, or, when it fails, restored to
-- the rules it had (a group the roll-out created is deleted again); the other targets keep the
-- change. With --atomic it is all or nothing: any failure restores every target.
-- A roll-out keeps a journal (next to sgrun's locks) while it writes. When a run is killed, the
-- next run of the same roll-out first completes it (per target) or undoes it (--atomic), and
-- --recover does that without a SOURCE: for every unfinished journal naming one of the TARGETs
-- (every journal when none is given) it follows the mode the journal records. Per target, every
-- target is brought to the killed run's plan (one not yet written only if it still holds its
-- snapshot) or, failing that, restored; --atomic, each target the killed run had started
-- writing is restored to its snapshot. It prints per target "recovered: converged",
-- "recovered: restored" or "not recovered: why". A journal whose run is still alive is left
-- alone (the report says so).
-- Options (after the playbook name; sgrun's own, such as --dry-run and --json, go before it):
--   --allow-lossy        translate rules a target can only express approximately (and skip what
--                        it cannot express) instead of stopping; the report lists each such rule
--   --additive           only add rules; never remove what a target already has
--   --atomic             all or nothing across targets
--   --yes                do not ask before removing rules (asked only when stdin is a terminal)
--   --save FILE          also write the source snapshot to FILE
--   --timeout SECONDS    limit for each provider call
--   --deadline SECONDS   limit for the whole roll-out, rollback included
--   --plan-out FILE      plan only (no write) and save the rule-level plan of every target
--   --apply-plan FILE    apply exactly that plan; a target whose rules changed since is refused
--   --recover            finish the roll-outs of killed runs (see above); takes only TARGETs,
--                        --timeout and --deadline (the mode is the journal's)
-- Exit status: 0 every target converged (or already was), 1 a target failed or the roll-out was
-- not confirmed, 2 usage, 3 a dry run or --plan-out found changes to make, 75 another roll-out is
-- writing to a target (this run wrote nothing: run it again once that one ends), 130/143
-- interrupted by SIGINT/SIGTERM (the first signal starts no new write, restores what was
-- mid-change (with --atomic, every changed target) and reports what each target ended as; a
-- second one stops at once and reports what was known then). With --recover: 0 every journal recovered, left alone
-- because its run is alive, or none to recover; 1 a target could not be; 75 a journal was left alone
-- because another roll-out is writing to one of its targets (run --recover again once it ends);
-- 130/143 interrupted (the journal being recovered is finished first, later ones are left for the
-- next --recover).
local sg = require "sg"
local cli = require "sg.cli"
local progress = require "sg.progress"
local render = require "sg.report"
local rollout = require "sg.rollout"

local USAGE = "usage: sgrun [--dry-run] [--json] scripts/rollout.lua [--allow-lossy] [--additive] " ..
  "[--atomic] [--yes] [--save FILE] [--timeout SECONDS] [--deadline SECONDS] " ..
  "[--plan-out FILE | --apply-plan FILE] SOURCE TARGET...\n" ..
  "       sgrun scripts/rollout.lua --recover [--timeout SECONDS] [--deadline SECONDS] [TARGET...]"

local flags, positional = cli.parse_args({ ... }, { usage = USAGE, options = {
  ["allow-lossy"] = "flag", additive = "flag", atomic = "flag", yes = "flag", save = "FILE",
  timeout = "seconds", deadline = "seconds", ["plan-out"] = "FILE", ["apply-plan"] = "FILE",
  recover = "flag",
} })
local options = sg.options or package.loaded["sg.options"] or {}

if flags.recover then
  for _, name in ipairs({ "allow-lossy", "additive", "atomic", "yes", "save", "plan-out", "apply-plan" }) do
    if flags[name] then
      cli.usage_error(string.format("--recover takes no --%s: it finishes each journal the way its " ..
        "roll-out was started", name), USAGE)
    end
  end
  if options.dry_run then cli.usage_error("--recover cannot be a dry run: drop --dry-run", USAGE) end
  local only
  if #positional > 0 then
    only = {}
    for i, text in ipairs(positional) do only[i] = { cli.parse_target(text) } end
  end
  local results, interrupted = {}, nil
  for _, path in ipairs(rollout.unfinished(only)) do
    -- one journal's failure (a provider it names that cannot be reached) does not stop the others;
    -- a signal does: the journal being recovered is finished, the next ones are left for later
    if interrupted then break end
    local ok, res = pcall(rollout.recover, path, function(provider)
      return cli.connect(provider, { timeout = flags.timeout })
    end, { timeout = flags.timeout, deadline = flags.deadline })
    if not ok and type(res) == "table" and res.exit_code == 75 then
      -- a target another roll-out is writing to: this journal waits for a later --recover
      res = { path = path, busy = res.message, target_held = true }
    elseif not ok then
      res = { path = path, error = cli.is_usage_error(res) and res.message or tostring(res) }
    end
    results[#results + 1] = res
    interrupted = res and res.report and res.report.interrupted
  end
  if options.json then
    print(sg.json.encode(render.recovery_json(results)))
  else
    -- "nothing to do" names where it looked: a journal elsewhere (another SGRUN_LOCK_DIR) is not seen
    print(render.recovery(results, (only and "for these targets " or "") .. "in " .. require("sg.journal").dir()))
  end
  if interrupted then os.exit(interrupted == "SIGTERM" and 143 or 130) end
  if not render.recovery_ok(results) then os.exit(1) end
  for _, res in ipairs(results) do
    if res.target_held then os.exit(75) end
  end
  os.exit(0)
end
if flags["plan-out"] and flags["apply-plan"] then
  cli.usage_error("use --plan-out or --apply-plan, not both", USAGE)
end

local plan_file
if flags["apply-plan"] then
  -- these shape a plan, which is made already: silently ignored, --additive let removals through
  for _, name in ipairs({ "additive", "allow-lossy", "save" }) do
    if flags[name] then
      cli.usage_error(string.format("--apply-plan takes no --%s: it applies the plan as it was made; give " ..
        "--%s to the --plan-out run instead", name, name), USAGE)
    end
  end
  if type(rollout.read_plan) ~= "function" then
    cli.usage_error("--apply-plan: this sgrun's sg.rollout cannot read plan files")
  end
  local ok, plan = pcall(rollout.read_plan, flags["apply-plan"])
  if not ok then cli.usage_error(tostring(plan)) end
  plan_file = plan
  if #positional > 0 then
    cli.usage_error("--apply-plan takes no SOURCE or TARGET: the plan names its targets", USAGE)
  end
elseif #positional == 0 and options.sim then
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
if not plan_file and #positional < 2 then
  cli.usage_error("a roll-out needs a SOURCE and at least one TARGET", USAGE)
end
local connect_opts = { timeout = flags.timeout }

local source, targets = {}, {}
if plan_file then
  -- the plan's own rules are applied; the source it was made from is not read again
  for _, t in ipairs(plan_file.targets or {}) do
    targets[#targets + 1] = { cli.connect(t.provider, connect_opts), t.group }
  end
else
  -- every argument is checked before the first request; PROVIDER:GROUP is a target even when a
  -- file has that name (a snapshot file so named is given as ./gcore:web)
  local source_target = cli.is_target(positional[1])
  local parsed, seen = {}, {}
  for i = source_target and 1 or 2, #positional do
    parsed[i] = { cli.parse_target(positional[i]) }
    -- the same group twice would be planned twice from one read, and its second apply would
    -- undo or repeat the first
    local key = parsed[i][1] .. ":" .. require("sg.plan").group_text(parsed[i][2])
    if i > 1 and seen[key] then
      cli.usage_error(string.format("target %s is given twice: name each group once", positional[i]), USAGE)
    end
    seen[key] = true
  end
  if source_target then
    source = sg.snapshot(cli.connect(parsed[1][1], connect_opts), parsed[1][2])
  else
    source = cli.load(positional[1])
  end
  if flags.save then sg.save(source, flags.save) end
  for i = 2, #positional do
    targets[#targets + 1] = { cli.connect(parsed[i][1], connect_opts), parsed[i][2] }
  end
end

local dry_run = options.dry_run or flags["plan-out"] ~= nil

local show_progress = progress.new(io.stderr, { tty = cli.isatty("stderr"),
  json_log = options.log_format == "json" })

-- Asked once, after planning and before the first write, when some target would lose rules.
-- No answer (end of input, or Ctrl-C or SIGTERM, which end the wait) is not a yes; sg.rollout
-- ends a run a signal came to as interrupted, whatever this returns.
local function confirm(report)
  io.stderr:write(render.text(report, { color = cli.color("stderr") }), "\n")
  io.stderr:write("These rules will be removed. Go ahead? [y/N] ")
  io.stderr:flush()
  local answer = io.stdin:read("l")
  -- the report starts on a line of its own, not after the question
  if answer == nil then io.stderr:write("\n") end
  show_progress(nil)
  return answer ~= nil and answer:lower():match("^%s*y") ~= nil
end

local function print_report(report)
  if options.json then
    print(sg.json.encode(render.json_table(report)))
  else
    print(render.text(report, { color = cli.color("stdout") }))
  end
  io.stdout:flush()
end

local report = sg.rollout(source, targets, {
  lossy = flags["allow-lossy"] and "allow" or "error",
  mode = flags.additive and "additive" or "authoritative",
  atomic = flags.atomic or false,
  dry_run = dry_run,
  timeout = flags.timeout,
  deadline = flags.deadline,
  plan_file = plan_file,
  on_progress = show_progress,
  confirm = (cli.isatty("stdin") and not flags.yes and not dry_run) and confirm or nil,
  -- a second SIGINT/SIGTERM ends the run at once, with this account of what was known then
  on_abandon = print_report,
})

if flags["plan-out"] and report.ok then
  if type(rollout.write_plan) ~= "function" then
    cli.usage_error("--plan-out: this sgrun's sg.rollout cannot write plan files")
  end
  rollout.write_plan(report, flags["plan-out"])
end

print_report(report)

if report.interrupted then os.exit(report.interrupted == "SIGTERM" and 143 or 130) end
if not report.ok or report.aborted then os.exit(1) end
if dry_run then os.exit(render.pending(report) and 3 or 0) end
os.exit(0)
