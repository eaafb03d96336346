-- sg.rollout: one rule set onto several groups on several clouds. Every target is read (its
-- snapshot kept) and planned first, then the targets are changed concurrently.
--
-- Semantics: by default each target stands alone: a target that fails is put back to its
-- snapshot (a group the roll-out created is deleted again) while the others stay converged.
-- With {atomic = true} any failure puts every touched target back, and a target that cannot be
-- planned stops the roll-out before anything is touched.
--
-- Every phase of every target is contained: an error while reading, applying, restoring or
-- reading back is recorded on that target and never ends the run. Restoring retries with
-- backoff up to a deadline of its own, longer than one call's. At the end every touched target
-- is read back, and its status and changes come from what was read, so the report says what
-- the clouds hold, not what was intended.
--
-- This module is the public entry point: it checks a roll-out's arguments and holds what
-- scripts and tests use on their own (plan files, target locks, journals, --recover). One
-- roll-out as it runs is a Run (stdlib/sg/rollout/run.lua), its phases in stdlib/sg/rollout/.
local apply = require "sg.apply"
local groups = require "sg.groups"
local journal = require "sg.journal"
local rule = require "sg.rule"
local snapshot = require "sg.snapshot"
local common = require "sg.rollout.common"
local Run = require "sg.rollout.run"

local error_text, rules_array, account_key, account_id = common.error_text, common.rules_array,
  common.account_key, common.account_id
local journal_ref = common.journal_ref

local M = {}

---@class sg.RolloutTarget
---@field provider string
---@field group any
---@field status "converged"|"unchanged"|"rolled_back"|"failed"|"planned"|"interrupted"|"unknown"
---@field added integer
---@field removed integer
---@field changes {add: sg.Rule[], remove: sg.Rule[]} done (or planned: under dry_run, or not confirmed)
---@field create_group boolean the group does not exist and will be / was created
---@field findings sg.Finding[]
---@field error any?
---@field not_restored sg.Rule[]? rules a failed rollback could not put back
---@field plan sg.Plan?

---@class sg.RolloutReport
---@field ok boolean
---@field targets sg.RolloutTarget[]
---@field aborted boolean? confirm said no: each target with changes is "planned", none written
---@field interrupted string? the signal that stopped the roll-out
---@field abandoned boolean? a second signal ended the run at once: statuses are what was known then
---@field findings_once {rule: sg.Rule, kind: string, why: string, targets: integer[]}[]
---@field journal_kept string? the journal left for --recover: a touched target ended failed
---@field unfinished {journal: string, atomic: boolean}? a dry run's finding: a killed run left this
---roll-out unfinished, which the real run would deal with first

local Report = {}
Report.__index = Report

---A JSON-able table of the report (sg.report renders it).
---@return table
function Report:to_table()
  return require("sg.report").json_table(self)
end

function Report:to_json()
  return require("sg.json").encode(self:to_table())
end

function Report:__tostring()
  return require("sg.report").text(self)
end

---@class sg.RolloutOptions: sg.PlanOptions
---@field dry_run boolean? plan every target and report, change nothing (default: the --dry-run flag)
---@field atomic boolean? all or nothing across targets (default: each target on its own)
---@field timeout number? seconds per provider call (HTTP attempt)
---@field deadline number? seconds for the whole roll-out, rollback included
---@field restore_deadline number? seconds restoring one target may take (default 120)
---@field on_progress fun(event: table?)? nil: something else was written below the progress
---@field confirm (fun(report: sg.RolloutReport): boolean)? asked before the first write when a
---target would lose rules; a SIGINT/SIGTERM while it asks ends the run as interrupted, whatever
---it returns
---@field plan_file table? a plan read by read_plan: apply exactly it
---@field on_abandon fun(report: sg.RolloutReport)? prints the report when a second SIGINT/SIGTERM
---ends the run at once; it is called outside any task, so it must not wait
---@field recover sg.ClaimedJournal? internal (M.recover): finish this journal's roll-out, nothing else

M.RESTORE_DEADLINE = 120

local ROLLOUT_OPTIONS = { "dry_run", "atomic", "timeout", "deadline", "restore_deadline", "on_progress",
  "confirm", "plan_file", "on_abandon", "recover" }
for _, name in ipairs(apply.PLAN_OPTIONS) do ROLLOUT_OPTIONS[#ROLLOUT_OPTIONS + 1] = name end
local ROLLOUT_OPTION_KINDS = { dry_run = "boolean", atomic = "boolean", on_progress = "function",
  confirm = "function", on_abandon = "function" }
for name, kind in pairs(apply.PLAN_OPTION_KINDS) do ROLLOUT_OPTION_KINDS[name] = kind end

---The lock files that stand for a target group while a roll-out writes to it: one per name the
---group goes by in its account (the account's digest, as journals record it): the reference
---given and, once read, the group's id and name. So `gcore:web` and `gcore:<its id>` meet on the
---id's lock once read, a run that reads the group by id meets on the name's lock a run creating
---the group by that name, and two accounts' groups of one name never do.
---@param conn sg.Connection
---@param ref any the group reference the roll-out was given
---@param ident {id: any, name: any}? the group as read (nil: not read yet, or it does not exist)
---@return string[] names sorted
function M.target_lock_names(conn, ref, ident)
  local crypto = require "_sg.crypto"
  local account = account_id(conn)
  local names, seen = {}, {}
  for _, text in ipairs({ snapshot.group_text(ref), ident and ident.id, ident and ident.name }) do
    text = tostring(text)
    if not seen[text] then
      seen[text] = true
      local digest = crypto.hex_encode(crypto.sha256(table.concat({ conn.provider, account, text }, "\0")))
      names[#names + 1] = string.format("sgrun-target-%s-%s.lock", conn.provider, digest:sub(1, 16))
    end
  end
  table.sort(names)
  return names
end

---Takes, without waiting, the locks of `targets` (each {conn, ref, ident?}, as target_lock_names
---takes them) that `held` (lock file name -> lock) does not hold yet, in one fixed order (their
---names sorted); each stays in `held`. Another run holding one is a user error with exit 75 (as a
---playbook whose lock is taken) naming the target and the holder; nothing of the caller's may
---have been written yet.
---@param held table<string, userdata>
---@param targets {[1]: sg.Connection, [2]: any, [3]: table?}[]
function M.lock_targets(held, targets)
  local wanted, whose = {}, {}
  for _, target in ipairs(targets) do
    for _, name in ipairs(M.target_lock_names(target[1], target[2], target[3])) do
      if not held[name] and not whose[name] then
        wanted[#wanted + 1] = name
        whose[name] = target
      end
    end
  end
  table.sort(wanted)
  for _, name in ipairs(wanted) do
    local lock, why = require("_sg.fs").lock(name)
    if not lock then
      local target = whose[name]
      local what = string.format("%s %s", target[1].provider, snapshot.group_text(target[2]))
      if lock == false then
        require("sg.errors").raise_user(string.format("%s: another roll-out is writing to this group, %s; " ..
          "this run wrote nothing: run it again once that one has ended", what, why), 75)
      end
      require("sg.errors").raise_local(string.format("%s: cannot take the lock of this target: %s; " ..
        "nothing was written", what, why))
    end
    held[name] = lock
  end
end

---Where the journal of a roll-out lives: the same roll-out (targets, mode, atomicity) run again
---finds the journal a killed run left.
---@param targets table[] {connection, group reference} pairs, as sg.rollout takes them
---@param opts sg.RolloutOptions?
---@return string
function M.journal_path(targets, opts)
  opts = opts or {}
  local identity = { "rollout", opts.mode or "authoritative", opts.atomic and "atomic" or "per-target" }
  for _, pair in ipairs(targets) do
    -- the account too: one process may roll out to the same group name on many accounts (fleets)
    identity[#identity + 1] = account_key(pair[1]) .. ":" .. snapshot.group_text(pair[2])
  end
  return journal.path(table.concat(identity, "\n"))
end

---The unfinished roll-out journals in the journal directory, optionally only those that name
---one of `only` (provider and group reference pairs, and optionally the account's id as journals
---record it: then only that account's).
---@param only {[1]: string, [2]: any, [3]: string?}[]? nil: every journal
---@return string[] paths
function M.unfinished(only)
  local out = {}
  for _, path in ipairs(journal.list()) do
    local j = journal.read(path)
    -- nothing to finish: a dead run's leftover goes (claim removes it), a live run's stays
    if not j then
      local claimed = journal.claim(path)
      if claimed then -- its begin record was completed meanwhile: an unfinished journal after all
        claimed:release()
        j = journal.read(path)
      end
    end
    local wanted = j ~= nil and only == nil
    for _, b in ipairs(j and j.begin.targets or {}) do
      -- the group as the killed run named it, or by its id or name (gcore:web is gcore:<its id>)
      local names = { snapshot.group_text(journal_ref(b.group)) }
      if b.group_id ~= nil then names[#names + 1] = snapshot.group_text(journal_ref(b.group_id)) end
      if b.group_name ~= nil then names[#names + 1] = snapshot.group_text(b.group_name) end
      for _, o in ipairs(only or {}) do
        -- o[3], when given: the account (as account_id); a journal from before accounts were
        -- recorded matches any
        local same_account = o[3] == nil or b.account == nil or o[3] == b.account
        for _, name in ipairs(names) do
          if o[1] == b.provider and same_account and snapshot.group_text(o[2]) == name then wanted = true end
        end
      end
    end
    if wanted then out[#out + 1] = path end
  end
  return out
end

---@class sg.RecoverResult
---@field path string the journal
---@field busy string? set when the journal was left alone: its run is still alive, or (target_held)
---another roll-out is writing to one of its targets
---@field target_held boolean? the playbook sets it
---@field report sg.RolloutReport? what recovering did (status per target)
---@field error string? why the journal could not be dealt with (the playbook sets it)

---Completes or undoes the roll-out of one unfinished journal, according to the mode it
---recorded: atomic, every target whose writes had started is restored to its snapshot;
---otherwise each such target is brought to the killed run's plan (and, if that fails,
---restored). A journal whose run still holds it is left alone; one that could not be fully
---recovered is kept for another try; any other is removed.
---@async
---@param path string
---@param connect fun(provider: string): sg.Connection
---@param opts {timeout: number?, deadline: number?, on_progress: fun(event: table)?}?
---@return sg.RecoverResult|nil nil: the journal is gone or finished (its run ended meanwhile)
function M.recover(path, connect, opts)
  opts = opts or {}
  local claimed, busy = journal.claim(path)
  if claimed == false then return { path = path, busy = busy } end
  if not claimed then return nil end
  local targets = {}
  for i, b in ipairs(claimed.begin.targets) do
    local ok, conn = pcall(connect, b.provider)
    local why = not ok and conn or (b.account and b.account ~= account_id(conn) and string.format(
      "it was written for another %s account than the one sgrun connects to now; set that account's " ..
      "credentials (or --profile) and run --recover again", b.provider))
    if why then
      claimed:release()
      error(why, 0)
    end
    targets[i] = { conn, journal_ref(b.group) }
  end
  local ok, rep = pcall(M.rollout, nil, targets, { atomic = claimed.begin.atomic == true,
    mode = claimed.begin.mode, recover = claimed, timeout = opts.timeout, deadline = opts.deadline,
    on_progress = opts.on_progress, dry_run = false })
  if not ok then
    claimed:release()
    error(rep, 0)
  end
  return { path = path, report = rep }
end

-- /2: each target records its account
M.PLAN_FORMAT = "sgrun.plan/2"

---A fingerprint of a group's live rules: equal rule sets give equal fingerprints.
---@param rules sg.Rule[]|nil nil: the group does not exist
---@return string
function M.fingerprint(rules)
  if rules == nil then return "absent" end
  local keys = {}
  for _, r in ipairs(rules) do keys[#keys + 1] = rule.key(r) end
  table.sort(keys)
  return require("_sg.crypto").hex_encode(require("_sg.crypto").sha256(table.concat(keys, "\n")))
end

---Rolls the rules of `source` out to every target: `targets` is a list of {conn, group_ref}.
---@async
---@param source sg.Snapshot|sg.Rule[]|nil (nil with opts.plan_file)
---@param targets {[1]: sg.Connection, [2]: any}[]
---@param opts sg.RolloutOptions?
---@return sg.RolloutReport
function M.rollout(source, targets, opts)
  require("sg.optcheck").check("sg.rollout", opts, ROLLOUT_OPTIONS, 2)
  require("sg.optcheck").check_values("sg.rollout", opts, ROLLOUT_OPTION_KINDS, 2)
  opts = opts or {}
  if type(targets) ~= "table" or #targets == 0 then
    error("sg.rollout: targets must be a list of {connection, group} pairs", 2)
  end
  if opts.plan_file ~= nil and (type(opts.plan_file) ~= "table" or opts.plan_file.format ~= M.PLAN_FORMAT) then
    error("sg.rollout: plan_file must be a plan read by require('sg.rollout').read_plan(path)", 2)
  end
  if opts.plan_file and #opts.plan_file.targets ~= #targets then
    error(string.format("sg.rollout: the plan has %d targets, the roll-out %d; pass the plan's targets",
      #opts.plan_file.targets, #targets), 2)
  end
  for _, k in ipairs({ "timeout", "deadline", "restore_deadline" }) do
    if opts[k] ~= nil and (type(opts[k]) ~= "number" or opts[k] <= 0) then
      error(string.format("sg.rollout: %s must be a positive number of seconds", k), 2)
    end
  end
  for i, pair in ipairs(targets) do
    local conn, ref = pair[1], pair[2]
    if type(conn) ~= "table" or not conn.provider or ref == nil then
      error(string.format("sg.rollout: target %d must be {connection, group}", i), 2)
    end
    -- {conn, "web", mode = "additive"} would otherwise roll out authoritatively
    for k in pairs(pair) do
      if k ~= 1 and k ~= 2 then
        error(string.format("sg.rollout: target %d has a field '%s'; a target is {connection, group}: " ..
          "pass roll-out options (mode, atomic, ...) as the third argument", i, tostring(k)), 2)
      end
    end
  end
  return Run.new(source, targets, opts, setmetatable({ ok = false, targets = {} }, Report)):run()
end

---Writes the plans of a dry-run report to path (format M.PLAN_FORMAT), atomically.
---@param report sg.RolloutReport from sg.rollout with dry_run
---@param path string
function M.write_plan(report, path)
  if type(report) ~= "table" or type(report.targets) ~= "table" then
    error("write_plan: needs the report of a dry-run roll-out", 2)
  end
  local json = require "sg.json"
  local doc = { format = M.PLAN_FORMAT, created_at = os.date("!%Y-%m-%dT%H:%M:%SZ"), targets = json.array() }
  for i, t in ipairs(report.targets) do
    if t.status ~= "planned" and t.status ~= "unchanged" or not t.fingerprint then
      error(string.format("write_plan: target %d (%s %s) has no plan (%s); fix it and plan again", i,
        t.provider, snapshot.group_text(t.group), error_text(t.error) or t.status), 2)
    end
    local findings = json.array()
    for j, f in ipairs(t.findings or {}) do findings[j] = { rule = f.rule, kind = f.kind, why = f.why } end
    doc.targets[i] = { provider = t.provider, account = t.account, group = t.group, fingerprint = t.fingerprint,
      create_group = t.create_group, add = rules_array(t.changes.add), remove = rules_array(t.changes.remove),
      findings = findings }
  end
  require("sg.snapshot_file").write_atomic(path, json.encode(doc) .. "\n")
end

---Reads a plan file written by write_plan; raises naming the file and the problem.
---@param path string
---@return table plan {format, targets = {provider, group, fingerprint, add, remove}}
function M.read_plan(path)
  local text, err = require("_sg.fs").read_regular(path)
  if not text then
    error(string.format("plan %s: cannot read: %s (give the file --plan-out wrote)", path, err), 2)
  end
  local json = require "sg.json"
  local doc, jerr = json.decode(text)
  if type(doc) ~= "table" then error(string.format("plan %s: damaged file: %s", path, tostring(jerr)), 2) end
  if doc.format == "sgrun.plan/1" then
    error(string.format("plan %s: made by an earlier sgrun, which did not record each target's account; " ..
      "make the plan again with --plan-out", path), 2)
  end
  if doc.format ~= M.PLAN_FORMAT then
    error(string.format("plan %s: not a plan file (format %s, expected %s)", path, tostring(doc.format),
      M.PLAN_FORMAT), 2)
  end
  -- a plan is read back exactly as write_plan wrote it: anything else is a damaged or hand-made
  -- file, refused here with its place named rather than failing somewhere in the roll-out
  local function damaged(fmt, ...)
    error(string.format("plan %s: " .. fmt .. "; make the plan again with --plan-out", path, ...), 3)
  end
  if not json.is_array(doc.targets) or #doc.targets == 0 then damaged("'targets' is not a list of targets") end
  local seen = {}
  for i, t in ipairs(doc.targets) do
    -- a group is a name, an id, or a provider's table reference such as HostUp's {vm = id}
    local g = type(t) == "table" and t.group
    if type(t) ~= "table" or type(t.provider) ~= "string" or type(t.fingerprint) ~= "string"
        or type(t.account) ~= "string"
        or not ((type(g) == "string" and g ~= "") or math.type(g) == "integer" or (type(g) == "table" and next(g))) then
      damaged("target %d is incomplete (a provider, an account, a group reference, a fingerprint)", i)
    end
    local ok, why = pcall(groups.ref_problem, t.provider, g)
    if not ok then damaged("target %d: %s is not a provider sgrun knows", i, t.provider) end
    if why then damaged("target %d: %s", i, why) end
    local key = t.provider .. ":" .. snapshot.group_text(g)
    if seen[key] then damaged("target %d names %s %s again (as target %d)", i, t.provider, snapshot.group_text(g), seen[key]) end
    seen[key] = i
    if t.create_group ~= nil and type(t.create_group) ~= "boolean" then
      damaged("target %d: 'create_group' is not true or false", i)
    end
    for _, list in ipairs({ "add", "remove" }) do
      if t[list] ~= nil and not json.is_array(t[list]) then damaged("target %d: '%s' is not a list of rules", i, list) end
      local rules = {}
      for j, r in ipairs(t[list] or {}) do
        rules[j] = rule.normalize(r, { where = string.format("plan %s: target %d %s[%d]", path, i, list, j) })
      end
      t[list] = rules
    end
  end
  return doc
end

---Wraps functions so that each returns true or its error instead of raising (for task.all).
---@param fns function[]
---@return function[]
function M.settle(fns)
  local out = {}
  for i, fn in ipairs(fns) do
    ---@async
    out[i] = function()
      local ok, err = pcall(fn)
      if ok then return true end
      return err
    end
  end
  return out
end

return M
