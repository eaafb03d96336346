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
local apply = require "sg.apply"
local groups = require "sg.groups"
local journal = require "sg.journal"
local retry = require "sg.retry"
local rule = require "sg.rule"
local snapshot = require "sg.snapshot"
local task = require "sg.task"
local signals = require "_sg.task"
local common = require "sg.rollout.common"
local interrupt = require "sg.rollout.interrupt"

local error_text, rules_array, account_key, account_id = common.error_text, common.rules_array,
  common.account_key, common.account_id
local journal_ref, keyset, same_keys, minus = common.journal_ref, common.keyset, common.same_keys, common.minus
local read, bounded, contained, findings_once = common.read, common.bounded, common.contained,
  common.findings_once

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
---one of `only` (provider and group reference pairs).
---@param only {[1]: string, [2]: any}[]? nil: every journal
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
        for _, name in ipairs(names) do
          if o[1] == b.provider and snapshot.group_text(o[2]) == name then wanted = true end
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

---@async
local function delete_group(conn, group)
  local adapter = groups.get(conn.provider)
  if not adapter.delete_group then
    error(string.format("%s: sgrun cannot delete group %s; delete it by hand", conn.provider,
      snapshot.group_text(group.name or group.id)), 0)
  end
  adapter.delete_group(conn, group)
end

-- Why a group a killed run had started writing can no longer be the state that run left, or nil.
-- Its writes only added planned rules and removed rules it found, so what it left holds every
-- rule both found and planned, and nothing it neither found nor planned: anything else is a
-- change made since (a later roll-out, a person), which restoring or completing would undo.
-- `target` is the journal's record of the target (before, exists, keep, add).
local function changed_since_killed_run(target, group)
  if target.exists and not group then return "it was deleted" end
  local found, planned = {}, {}
  for _, r in ipairs(target.before or {}) do found[rule.key(rule.normalize(r))] = true end
  for _, list in ipairs({ target.keep, target.add or {} }) do
    for _, r in ipairs(list) do planned[rule.key(rule.normalize(r))] = true end
  end
  local live = {}
  for _, r in ipairs(group and group.rules or {}) do
    local k = rule.key(r)
    live[k] = true
    if not found[k] and not planned[k] then
      return string.format("it holds %s, which that run neither found nor planned", rule.tostring(r))
    end
  end
  for _, r in ipairs(target.keep) do
    local k = rule.key(rule.normalize(r))
    if found[k] and not live[k] then
      return string.format("it lacks %s, which that run found and kept", rule.tostring(rule.normalize(r)))
    end
  end
  return nil
end

-- One attempt at putting a target back to its snapshot (deleting a group the roll-out created).
---@async
local function restore_once(st)
  local group = read(st.conn, st.group_ref)
  if st.before == nil then
    if group then delete_group(st.conn, group) end
    return
  end
  if not group then
    error(string.format("%s group %s is gone; it cannot be restored", st.conn.provider,
      snapshot.group_text(st.group_ref)), 0)
  end
  local p = apply.plan_group(st.conn, st.group_ref, group, nil, st.before, { lossy = "allow" })
  if p:empty() then return end
  local r = apply.apply(p)
  if not r.ok then error(r.error, 0) end
end

local function new_target(conn, ref)
  return { provider = conn.provider, group = ref, status = "failed", added = 0, removed = 0,
    changes = { add = {}, remove = {} }, create_group = false, findings = {} }
end

-- A planned target's status as a dry run reports it.
local function planned_status(t)
  return t.plan:empty() and "unchanged" or "planned"
end

-- The report as the confirmation question shows it: each planned target "planned" or
-- "unchanged" (the report itself keeps "failed" until a target's writes have run, so that a
-- target that dies on the way is reported as such).
local function as_planned(report)
  local view = setmetatable({ targets = {} }, { __index = report })
  for i, t in ipairs(report.targets) do
    view.targets[i] = setmetatable({ status = (t.error == nil and t.plan) and planned_status(t) or t.status },
      { __index = t })
  end
  return view
end

-- The plan of a plan file's target, checked against the live group.
local function plan_from_file(st, entry, group, plan_opts)
  if entry.provider ~= st.conn.provider or snapshot.group_text(entry.group) ~= snapshot.group_text(st.group_ref) then
    error(string.format("the plan file's target is %s %s, not %s %s; make the plan again with the same targets",
      tostring(entry.provider), snapshot.group_text(entry.group), st.conn.provider,
      snapshot.group_text(st.group_ref)), 0)
  end
  -- the same group in another account may hold the same rules: the fingerprint would match
  if entry.account ~= account_id(st.conn) then
    error(string.format("the plan was made for another %s account (or other credentials for it) than the " ..
      "ones sgrun connects with now; set that account's credentials (or --profile), or make the plan again",
      st.conn.provider), 0)
  end
  if M.fingerprint(group and group.rules) ~= entry.fingerprint then
    error(string.format("%s %s changed since the plan was made; make the plan again", st.conn.provider,
      snapshot.group_text(st.group_ref)), 0)
  end
  local removing = keyset(entry.remove)
  local desired = {}
  for _, r in ipairs(group and group.rules or {}) do
    if not removing[rule.key(r)] then desired[#desired + 1] = r end
  end
  for _, r in ipairs(entry.add) do desired[#desired + 1] = r end
  local p = apply.plan_group(st.conn, st.group_ref, group, nil, desired,
    { mode = "authoritative", lossy = "allow", create = true, description = plan_opts.description })
  if not same_keys(keyset(p.add), keyset(entry.add)) or not same_keys(keyset(p.remove), removing) then
    error(string.format("%s %s: the plan cannot be applied exactly as written; make the plan again",
      st.conn.provider, snapshot.group_text(st.group_ref)), 0)
  end
  p.findings = entry.findings or {}
  return p
end

---Rolls the rules of `source` out to every target: `targets` is a list of {conn, group_ref}.
---@async
---@param source sg.Snapshot|sg.Rule[]|nil (nil with opts.plan_file)
---@param targets {[1]: sg.Connection, [2]: any}[]
---@param opts sg.RolloutOptions?
---@return sg.RolloutReport
function M.rollout(source, targets, opts)
  require("sg.optcheck").check("sg.rollout", opts, ROLLOUT_OPTIONS, 2)
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
  local plan_opts = { mode = opts.mode, lossy = opts.lossy, create = opts.create ~= false,
    description = opts.description }
  local options = package.loaded["sg.options"]
  local dry_run = opts.dry_run
  if dry_run == nil then dry_run = options and options.dry_run or false end
  local started = task.now()
  local function remaining()
    if not opts.deadline then return math.huge end
    return math.max(0, opts.deadline - (task.now() - started))
  end

  local states, report_targets = {}, {}
  for i, pair in ipairs(targets) do
    local conn, ref = pair[1], pair[2]
    if type(conn) ~= "table" or not conn.provider or ref == nil then
      error(string.format("sg.rollout: target %d must be {connection, group}", i), 2)
    end
    states[i] = { conn = conn, group_ref = ref }
    report_targets[i] = new_target(conn, ref)
  end
  local report = setmetatable({ ok = false, targets = report_targets }, Report)
  -- Each target group's locks (M.lock_targets), held from before anything of it is read until the
  -- roll-out ends, so that no other roll-out writes to it meanwhile (its rollback would undo this
  -- run's change) and nothing this run writes was planned from a read another run made stale.
  -- The references given are locked first; the names a group turns out to go by (its id, its
  -- name, as read or as a journal records them) before the first write. A dry run locks nothing.
  local held = {}
  ---@param idents table[]? per target, its identity as read or journaled ({id, name})
  local function lock_targets(idents)
    local list = {}
    for i, st in ipairs(states) do list[i] = { st.conn, st.group_ref, idents and idents[i] } end
    M.lock_targets(held, list)
  end
  local function journaled_idents(j)
    local out = {}
    for i, b in ipairs(j.begin.targets) do out[i] = { id = b.group_id, name = b.group_name } end
    return out
  end
  -- the same roll-out (same targets, mode and atomicity) finds the journal of a killed run
  local jpath = opts.recover and opts.recover.path or M.journal_path(targets, opts)
  local jnl, recovering
  -- where the async work this run's writes start is journaled: this run's journal, or the claimed
  -- one of the killed run a recovery finishes (nil in a dry run)
  local function note_async(i, handle)
    local j = jnl or recovering
    if j then j:note({ ev = "async", target = i, handle = handle }) end
  end
  -- The guard of a target's writes that are not refused once interrupted (restores, a
  -- recovery's): it only journals the async work they start, so that a kill leaves its handle.
  local function noting_guard(i)
    return { enter = function() end, leave = function() end,
      started = function(handle) note_async(i, handle) end }
  end

  local function progress(i, step, extra)
    if not opts.on_progress then return end
    local ev = { target = i, provider = states[i].conn.provider, group = states[i].group_ref, step = step }
    for k, v in pairs(extra or {}) do ev[k] = v end
    pcall(opts.on_progress, ev)
  end
  local function interrupted() return signals.signal() end

  -- The guard of one target's writes (sg.task.guarded), with its progress: once the roll-out is
  -- interrupted no new write starts, and the refused one first lets the writes and waits in
  -- flight end, so that restoring reads a group nothing is still changing.
  local function write_guard(i, total)
    local busy, done = 0, 0
    local guard = {}
    ---@async
    function guard.enter(kind, what)
      if kind == "write" then
        local sig = interrupted()
        if sig then
          while busy > 0 do task.sleep(0.05) end
          error(string.format("stopped by %s in the middle of its changes: %s and the writes after it " ..
            "were not sent", sig, what), 0)
        end
      else
        progress(i, "waiting", { done = done, total = math.max(total, done) })
      end
      busy = busy + 1
    end
    function guard.leave(kind, ok)
      busy = busy - 1
      if kind == "write" and ok then
        done = done + 1
        progress(i, "applying", { done = done, total = math.max(total, done) })
      end
    end
    -- a kill from here on leaves work running at the provider: whoever takes over waits for it
    function guard.started(handle) note_async(i, handle) end
    return guard
  end
  local function finish()
    report.interrupted = interrupted()
    for i, t in ipairs(report_targets) do progress(i, "done", { status = t.status }) end
    report.findings_once = findings_once(report_targets)
    return report
  end

  -- The first SIGINT/SIGTERM while the roll-out runs is handled here: no new writes, what is in
  -- flight settles by the mode, and the report says so; a second one stops the run at once.
  -- 3. and 4.: put back what must be, then read every touched target back
  ---@async
  local function settle(any_failed)
    -- 3. put back the targets that failed (with atomic, every touched target); first, the
    -- provider's work those targets' writes started must end: a write cut short here (its
    -- target failed, a sibling write failed, the deadline came) may still be running there, and
    -- would land after the restore read the group. Work that cannot be seen to end leaves the
    -- target's state unknown: not restored, and the journal kept for --recover.
    local unsettled = {}
    ---@async
    local function provider_work_done(i, st)
      local c = st.conn
      if unsettled[c] == nil then
        local budget = math.min(opts.restore_deadline or M.RESTORE_DEADLINE, remaining())
        local done = bounded(budget, "waiting for the provider", c.settle, c)
        unsettled[c] = done ~= true and error_text(done) or false
      end
      if unsettled[c] then
        st.unknown = string.format("this run's changes were still running at the provider (%s), so " ..
          "the group's state is unknown; once they end, finish the roll-out with " ..
          "`sgrun scripts/rollout.lua --recover` (or run the same roll-out again)", unsettled[c])
        report_targets[i].error = report_targets[i].error
          and string.format("%s; %s", error_text(report_targets[i].error), st.unknown) or st.unknown
        return false
      end
      return true
    end
    local restores = {}
    for i, st in ipairs(states) do
      ---@async
      restores[i] = function()
        if not st.touched or not (st.failed or (opts.atomic and any_failed)) then return end
        if not provider_work_done(i, st) then return end
        task.context({ guard = noting_guard(i) })
        st.restoring = true
        if not st.failed then
          local sig = interrupted()
          report_targets[i].error = sig and ("rolled back: the atomic roll-out was interrupted by " .. sig)
            or "rolled back because another target failed"
        end
        local until_ = task.now() + math.min(opts.restore_deadline or M.RESTORE_DEADLINE, remaining())
        local policy, attempt = retry.policy(), 0
        while true do
          attempt = attempt + 1
          progress(i, "restoring", { done = attempt })
          local err = bounded(math.max(0, until_ - task.now()), "restoring", restore_once, st)
          if err == true then
            st.restored = true
            return
          end
          st.restore_error = err
          local wait = retry.backoff(policy, math.min(attempt, 6))
          if task.now() + wait >= until_ then error(err, 0) end
          task.sleep(wait)
        end
      end
    end
    -- putting back and reading back are what make the report true: their calls get longer than
    -- the user's per-call timeout (still within the roll-out's deadline)
    local settle_timeout = opts.timeout and math.max(4 * opts.timeout, 5)
    retry.with_call_timeout(settle_timeout,
      ---@async
      function() contained(restores, math.huge, "restoring") end)

    -- 4. read every touched target back: its status and changes are what it now holds
    local finals = {}
    for i, st in ipairs(states) do
      ---@async
      finals[i] = function()
        if not st.touched then return end
        progress(i, "verifying")
        local group = read(st.conn, st.group_ref)
        st.final = group and group.rules or false
      end
    end
    local read_back = retry.with_call_timeout(settle_timeout,
    ---@async
    function()
      return contained(finals, math.max(remaining(), 30), "reading back")
    end)
    for i, st in ipairs(states) do
      local t = report_targets[i]
      if st.unknown then
        t.status = "failed"
        t.changes, t.added, t.removed = { add = {}, remove = {} }, 0, 0
      elseif st.touched then
        if read_back[i] ~= true then
          t.status = "failed"
          t.error = string.format("%s; reading the group back failed, so its state is unknown: %s",
            error_text(t.error) or "applied", error_text(read_back[i]))
          if st.restoring then t.not_restored = st.before and st.before.rules or {} end
        else
          local before = keyset(st.before and st.before.rules)
          local final = keyset(st.final or nil)
          -- what the plan kept (for a group it created: what the provider gives a new group)
          -- and added; with no plan (a recovered journal), the snapshot
          local expected = keyset(st.plan and st.plan.keep or st.before and st.before.rules)
          for _, r in ipairs(st.plan and st.plan.add or {}) do expected[rule.key(r)] = r end
          local absent_as_before = st.before == nil and st.final == false
          t.changes = { add = minus(final, before), remove = minus(before, final) }
          if st.final == false and st.before ~= nil then t.changes.remove = rule.sort(st.before.rules) end
          t.added, t.removed = #t.changes.add, #t.changes.remove
          if st.restoring then
            if absent_as_before or (st.before and st.final and same_keys(final, before)) then
              t.status = "rolled_back"
            elseif st.final and same_keys(final, expected) then
              -- putting it back failed, but the failed apply had in fact reached the plan
              t.status = "converged"
              t.error = string.format("%s; restoring failed (%s), and the group holds the planned rules",
                error_text(t.error), error_text(st.restore_error))
            else
              t.status = "failed"
              t.not_restored = minus(before, final)
              local extra = minus(final, before)
              local why = st.restore_error and error_text(st.restore_error) or "the group differs from its snapshot"
              if st.before == nil and st.final then why = "the group the roll-out created is still there: " .. why end
              if #extra > 0 then why = string.format("%s; %d rule(s) left that were not there before", why, #extra) end
              t.error = string.format("%s; restoring the snapshot failed: %s", error_text(t.error), why)
            end
          elseif st.final and same_keys(final, expected) then
            t.status = "converged"
          else
            t.status = "failed"
            t.error = t.error or "after applying, the group differs from the plan"
          end
        end
      elseif st.interrupted then
        t.status, t.error = "interrupted", "left untouched: interrupted before its first write"
        t.changes, t.added, t.removed = { add = {}, remove = {} }, 0, 0
      elseif st.plan then
        t.status = "unchanged"
        if t.error == nil then t.changes, t.added, t.removed = { add = {}, remove = {} }, 0, 0 end
      end
    end
    -- a target can fail after its apply went through (its read-back failed or differs)
    local target_failed = false
    for _, t in ipairs(report_targets) do target_failed = target_failed or t.status == "failed" end
    report.ok = not any_failed and not target_failed and not interrupted()
    return finish()
  end

  -- A journal left by a killed run, claimed (locked) by this run. With atomic, every target it
  -- had started writing is put back (and this run changes nothing more). Otherwise a re-run
  -- drops it and converges from its source, while a standalone recovery (opts.recover: no
  -- source) completes the roll-out: every target is brought to the killed run's plan (what it
  -- kept plus what it added), a target not yet written only if it still holds its snapshot (a
  -- plan made from a changed group is not applied). A standalone recovery that leaves a target
  -- failed keeps the journal for a next try.
  local superseded -- a killed run's journal this run takes over (non-atomic re-run)

  ---@async
  local function recover(prior, standalone)
    local begun = {}
    for i in pairs(prior.started) do begun[#begun + 1] = i end
    table.sort(begun)
    if not standalone and #begun == 0 then
      -- killed before its first write: nothing of it to finish
      prior:remove()
      return nil
    end
    report.recovered = { journal = prior.path, targets = begun,
      action = opts.atomic and "undone" or standalone and "completed" or "superseded" }
    -- the killed run's async work may still be running at the provider: it would land after
    -- this run read the group and undo what this run does, so it is waited for first: what the
    -- journal names, and what the provider lists as running. A target whose account's work
    -- cannot be seen to end is left alone, its journal kept.
    local unsettled, settled = {}, {}
    for _, i in ipairs(begun) do
      for _, handle in ipairs(prior.async[i] or {}) do
        if not pcall(states[i].conn.follow, states[i].conn, handle) then
          unsettled[i] = "the journal's record of its provider's work is damaged"
        end
      end
    end
    for _, i in ipairs(begun) do
      local c = states[i].conn
      if settled[c] == nil then
        settled[c] = bounded(math.min(opts.restore_deadline or M.RESTORE_DEADLINE, remaining()),
          "waiting for the killed run's work at the provider", c.settle, c)
      end
      if settled[c] ~= true then unsettled[i] = error_text(settled[c]) end
    end
    local function leave_unsettled()
      for i, why in pairs(unsettled) do
        local t = report_targets[i]
        t.status, t.changes, t.added, t.removed = "failed", { add = {}, remove = {} }, 0, 0
        t.error = "left as it is: the killed run's work at the provider could not be seen to end: " .. why
      end
    end
    if not standalone and not opts.atomic then
      if next(unsettled) then
        -- planning now would read groups that work still running is about to change
        for i, t in ipairs(report_targets) do
          if not unsettled[i] then
            t.status, t.error = "unchanged", "not changed: another target's provider is still busy " ..
              "with a killed run's work"
          end
        end
        leave_unsettled()
        report.recovered = nil -- not taken over: the report names the journal it keeps
        prior:release()
        report.journal_kept = prior.path
        return finish()
      end
      -- this run plans every target from the source again, which finishes the killed run's
      -- roll-out; the journal stays until this run's own replaces it (see run)
      superseded = prior
      return nil
    end
    recovering = prior
    -- a started target changed since the killed run is left as it is (a journal from an older
    -- sgrun, without the kept rules, cannot tell: it is recovered as before)
    local changed, checks = {}, {}
    for i, st in ipairs(states) do
      local b = prior.begin.targets[i]
      ---@async
      checks[i] = function()
        if unsettled[i] or not (b and prior.started[i] and b.keep) then return end
        changed[i] = changed_since_killed_run(b, read(st.conn, st.group_ref))
      end
    end
    contained(checks, remaining(), "reading")
    for i, st in ipairs(states) do
      local b = prior.begin.targets[i]
      if unsettled[i] then
        st.touched = false
      elseif changed[i] then
        st.touched = false
        local t = report_targets[i]
        t.status, t.changes, t.added, t.removed = "failed", { add = {}, remove = {} }, 0, 0
        t.error = string.format("left as it is: the group changed since the killed run (%s), and %s " ..
          "would undo that change; check the group, then run the roll-out again", changed[i],
          opts.atomic and "putting back its snapshot" or "completing its plan")
      elseif b and (prior.started[i] or not opts.atomic) then
        local rules = {}
        for j, r in ipairs(b.before or {}) do rules[j] = rule.normalize(r) end
        st.before = b.exists and { rules = rules, raw = b.raw, provider = st.conn.provider,
          group = { id = b.group_id } } or nil
        st.touched = true
        if opts.atomic then
          st.failed = true
          -- a standalone recovery's report names the journal once, above its targets
          report_targets[i].error = "undoing the interrupted atomic roll-out" ..
            (standalone and "" or " found in " .. prior.path)
        elseif b.keep == nil then
          -- without the kept rules, the additions alone would remove everything else
          st.skip = "not written: its journal (from an older sgrun) does not record the rules the " ..
            "plan kept; run the roll-out again to complete it"
        else
          st.complete, st.unwritten = {}, not prior.started[i]
          for _, list in ipairs({ b.keep, b.add or {} }) do
            for _, r in ipairs(list) do st.complete[#st.complete + 1] = rule.normalize(r) end
          end
        end
      else
        report_targets[i].status = "unchanged"
      end
    end
    if not opts.atomic then
      local completes = {}
      for i, st in ipairs(states) do
        ---@async
        completes[i] = function()
          if not st.complete then return end
          task.context({ guard = noting_guard(i) })
          progress(i, "reading")
          local group = read(st.conn, st.group_ref)
          if st.unwritten and M.fingerprint(group and group.rules) ~= M.fingerprint(st.before and st.before.rules) then
            st.skip = "not written: the group changed since the killed run read it, so its plan is " ..
              "stale; run the roll-out again to plan it anew"
            return
          end
          local p = apply.plan_group(st.conn, st.group_ref, group, nil, st.complete,
            { mode = "authoritative", lossy = "allow", create = true, description = opts.description })
          progress(i, "applying", { done = 0, total = #p.add + #p.remove })
          local r = apply.apply(p)
          -- reading back judges the group against the killed run's plan, not this catch-up plan
          st.plan = { keep = st.complete, add = {} }
          if not r.ok then error(r.error, 0) end
        end
      end
      local done = contained(completes, remaining(), "completing")
      for i, st in ipairs(states) do
        if st.skip then
          -- left as it is: putting back the snapshot could undo whoever changed it since
          st.touched = false
          local t = report_targets[i]
          t.status, t.error, t.changes, t.added, t.removed = "failed", st.skip, { add = {}, remove = {} }, 0, 0
        elseif done[i] ~= true then
          st.failed = true
          report_targets[i].error = done[i]
        end
      end
    end
    local rep = settle(opts.atomic)
    leave_unsettled()
    -- a target changed since is no longer the journal's to finish: it does not keep the journal
    local all_done = true
    for i, t in ipairs(rep.targets) do
      if t.status == "failed" and not changed[i] then all_done = false end
    end
    rep.ok = rep.ok and all_done
    if all_done then
      prior:remove()
    else
      -- the only record of the snapshots to put back: kept for a next try
      prior:release()
      rep.journal_kept = prior.path
    end
    return rep
  end

  ---@async
  local function run()
    if not dry_run then lock_targets() end
    if opts.recover then
      lock_targets(journaled_idents(opts.recover))
      return recover(opts.recover, true)
    end
    if dry_run then
      -- previewed, not claimed: the real run deals with it first (see recover)
      local left = journal.read(jpath)
      if left and next(left.started) then report.unfinished = { journal = jpath, atomic = opts.atomic == true } end
    else
      local prior, busy = journal.claim(jpath)
      -- the same roll-out running elsewhere: skipped, as a playbook whose lock is taken (75)
      if prior == false then require("sg.errors").raise_user(busy, 75) end
      if prior then
        -- an atomic re-run undoes the killed run's writes first
        lock_targets(journaled_idents(prior))
        local rep = recover(prior)
        if rep then return rep end
      end
    end
    -- 1. read and plan every target; nothing changes yet
    local planned = {}
    for i, st in ipairs(states) do
      ---@async
      planned[i] = function()
        progress(i, "reading")
        local group, absent = read(st.conn, st.group_ref)
        -- snapshot-shaped, so that restoring puts back the provider's own form of each rule
        st.before = group and { rules = group.rules, raw = group.raw_rules, provider = st.conn.provider,
          group = { id = group.id, name = group.name } } -- nil: the roll-out creates the group
        st.ident = group and { id = group.id, name = group.name }
        progress(i, "planning")
        if opts.plan_file then
          st.plan = plan_from_file(st, opts.plan_file.targets[i], group, plan_opts)
        else
          st.plan = apply.plan_group(st.conn, st.group_ref, group, absent, source, plan_opts)
        end
        st.fingerprint = M.fingerprint(group and group.rules)
      end
    end
    local plan_failed = false
    local outcomes = contained(planned, remaining(), "reading and planning")
    -- one group named twice (by name and by id): planned twice from one read, its second apply
    -- would undo or repeat the first; only the first is kept
    local by_group = {}
    for i, st in ipairs(states) do
      -- read, even if its planning failed: a plan file's copy of a target may fail its checks
      local id = st.before and st.before.group.id
      if id then
        local key = account_key(st.conn) .. "\0" .. tostring(id)
        local first = by_group[key]
        if first and opts.plan_file then
          require("sg.errors").raise_user(string.format("the plan file names one group twice: targets %d (%s %s) " ..
            "and %d (%s) are the same group, id %s; it is damaged or hand-edited: make the plan again with " ..
            "--plan-out", first, st.conn.provider, snapshot.group_text(states[first].group_ref), i,
            snapshot.group_text(st.group_ref), tostring(id)))
        elseif first then
          if outcomes[i] == true then
            st.plan = nil
            outcomes[i] = string.format("not changed: %s %s is the group target %d (%s) names, id %s; give " ..
              "each group once", st.conn.provider, snapshot.group_text(st.group_ref), first,
              snapshot.group_text(states[first].group_ref), tostring(id))
          end
        else
          by_group[key] = i
        end
      end
    end
    for i, st in ipairs(states) do
      local t, ok_err = report_targets[i], outcomes[i]
      if st.plan then
        t.plan = st.plan
        t.findings = st.plan.findings
        t.create_group = st.plan.create_group ~= nil
        t.changes = { add = st.plan.add, remove = st.plan.remove }
        t.added, t.removed = #st.plan.add, #st.plan.remove
      end
      if ok_err ~= true then
        plan_failed = true
        st.plan = nil
        t.error = ok_err
        if type(ok_err) == "table" and ok_err.findings then t.findings = ok_err.findings end
      end
    end
    report.ok = not plan_failed
    if dry_run then
      for i, t in ipairs(report_targets) do
        if t.error == nil then
          t.status = planned_status(t)
          t.fingerprint = states[i].fingerprint
          t.account = account_id(states[i].conn)
        end
      end
      return finish()
    end

    local function untouched(why)
      for i, t in ipairs(report_targets) do
        if states[i].plan then
          t.status, t.error = "unchanged", why
          t.changes, t.added, t.removed, t.create_group = { add = {}, remove = {} }, 0, 0, false
        end
      end
    end
    if plan_failed and opts.atomic then
      untouched("not changed: another target could not be planned, so the atomic roll-out stopped " ..
        "before touching any")
      return finish()
    end
    if plan_failed and opts.plan_file then
      -- a plan was reviewed whole: a part of it is a change nobody looked at
      untouched("not changed: another target of the plan file cannot be applied as planned, and a plan " ..
        "is applied whole or not at all")
      return finish()
    end
    if plan_failed and superseded then
      -- the killed run's journal is all that records what it left half-done on the target that
      -- could not be planned: it is kept, so nothing is written that would replace it
      untouched(string.format("not changed: a killed run left this roll-out unfinished (journal %s) " ..
        "and not every target could be planned now; fix the error above and run again, or finish " ..
        "the killed run's plan with `sgrun scripts/rollout.lua --recover`", superseded.path))
      return finish()
    end
    local removes = false
    for _, st in ipairs(states) do
      if st.plan and #st.plan.remove > 0 then removes = true end
    end
    local confirmed = not (removes and opts.confirm) or opts.confirm(as_planned(report))
    -- a signal while planning, or while the question waited for an answer (it ends the wait
    -- with no answer): an interruption, however the question took it
    if interrupted() then
      report.ok = false
      for i, t in ipairs(report_targets) do
        local plan = states[i].plan
        if plan then
          t.status = plan:empty() and "unchanged" or "interrupted"
          t.error = not plan:empty() and "interrupted before any write: nothing was changed" or nil
          t.changes, t.added, t.removed, t.create_group = { add = {}, remove = {} }, 0, 0, false
        end
      end
      return finish()
    end
    if not confirmed then
      -- each target as the question showed it: the changes it has are not made, not absent
      report.aborted, report.ok = true, false
      for i, t in ipairs(report_targets) do
        if states[i].plan then t.status = planned_status(t) end
      end
      return finish()
    end

    local idents = {}
    for i, st in ipairs(states) do idents[i] = st.ident end
    lock_targets(idents)

    -- every target's snapshot and plan go to the journal before the first write
    local json = require "sg.json"
    local jtargets = json.array()
    for i, st in ipairs(states) do
      jtargets[i] = { provider = st.conn.provider, account = account_id(st.conn), group = st.group_ref,
        exists = st.before ~= nil,
        before = rules_array(st.before and st.before.rules),
        -- raw rules and group id: recovery restores the provider's own form as restore does
        raw = st.before and json.array({ table.unpack(st.before.raw or {}) }),
        group_id = st.before and st.before.group.id, group_name = st.before and st.before.group.name,
        -- what completing needs without the source: the plan's kept rules and additions
        keep = rules_array(st.plan and st.plan.keep),
        add = rules_array(st.plan and st.plan.add), remove = rules_array(st.plan and st.plan.remove) }
    end
    local begin = { targets = jtargets, atomic = opts.atomic or false, mode = opts.mode or "authoritative" }
    -- a killed run's journal is replaced only once this one is written: a journal that cannot be
    -- written leaves that record whole
    jnl = superseded and journal.replace(superseded, begin) or journal.start(jpath, begin)

    -- 2. apply every non-empty plan concurrently; keep a third of the deadline for putting back
    local applies = {}
    for i, st in ipairs(states) do
      ---@async
      applies[i] = function()
        if not st.plan or st.plan:empty() then return end
        if interrupted() then
          st.interrupted = true
          return
        end
        st.touched = true
        jnl:record({ ev = "write", target = i })
        local total = apply.write_count(st.plan)
        task.context({ guard = write_guard(i, total) })
        progress(i, "applying", { done = 0, total = total })
        local r = apply.apply(st.plan)
        jnl:record({ ev = "written", target = i })
        if not r.ok then error(r.error, 0) end
        st.applied = true
        progress(i, "verifying")
      end
    end
    local apply_budget = opts.deadline and remaining() * 2 / 3 or math.huge
    local applied = contained(applies, apply_budget, "applying")
    local any_failed = plan_failed or (opts.atomic and interrupted() ~= nil)
    for i, st in ipairs(states) do
      if applied[i] ~= true then
        st.failed = true
        any_failed = true
        report_targets[i].error = applied[i]
      end
    end

    local rep = settle(any_failed)
    -- a target left neither as planned nor as it was (its restore failed, or its state is
    -- unknown) is what a journal is for: kept, a later --recover or re-run finishes it
    local left = false
    for i, t in ipairs(report_targets) do
      if states[i].touched and t.status == "failed" then left = true end
    end
    if left then
      jnl:keep()
      rep.journal_kept = jpath
    else
      jnl:finish()
    end
    return rep
  end

  -- What is known when a second signal ends the run at once: each target says what it had
  -- reached, unverified.
  local function known_now()
    local again = "run the same roll-out again: it finds the journal and completes it (with --atomic, undoes it)"
    for i, st in ipairs(states) do
      local t = report_targets[i]
      if st.restored then
        t.status, t.changes, t.added, t.removed = "rolled_back", { add = {}, remove = {} }, 0, 0
      elseif st.restoring or (st.touched and not st.applied) then
        t.status = "unknown"
        t.error = string.format("interrupted again %s; %s",
          st.restoring and "while restoring its snapshot" or "in the middle of its changes", again)
        t.changes, t.added, t.removed, t.create_group = { add = {}, remove = {} }, 0, 0, false
      elseif st.applied then
        t.status = "converged"
      else
        -- not touched: planned or not (a failed plan keeps its error)
        if st.plan and st.plan:empty() then
          t.status = "unchanged"
        else
          t.status, t.error = "interrupted", t.error or "left untouched: the run stopped before its first write"
        end
        t.changes, t.added, t.removed, t.create_group = { add = {}, remove = {} }, 0, 0, false
      end
    end
    report.ok, report.abandoned, report.interrupted = false, true, interrupted()
    report.findings_once = findings_once(report_targets)
    opts.on_abandon(report)
  end

  -- This roll-out's part of a signal (see sg.rollout.interrupt).
  local function on_signal(count)
    if count == 1 then
      if opts.on_progress then pcall(opts.on_progress, nil) end -- a line below the progress block
    elseif opts.on_abandon then
      known_now()
    end
  end

  if not dry_run then interrupt.start(on_signal) end
  local ok, res = pcall(retry.with_call_timeout, opts.timeout, run)
  -- not replaced by this run's journal (it stopped before writing): kept for the next
  if superseded then superseded:release() end
  for _, lock in pairs(held) do lock:release() end
  if not dry_run then
    local sig = interrupt.stop(on_signal)
    if ok and sig then
      res.interrupted, res.ok = sig, false
    end
  end
  if not ok then error(res, 0) end
  return res
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
