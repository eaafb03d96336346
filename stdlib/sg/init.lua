-- sg: the sgrun standard library. `local sg = require "sg"` gives the bindings (sg.http,
-- sg.crypto, sg.json) and the concurrency helpers at the top level.
local task = require "sg.task"

local sg = {
  http = require "_sg.http",
  crypto = require "_sg.crypto",
  json = require "sg.json",
  task = task,
  spawn = task.spawn,
  wait = task.wait,
  all = task.all,
  sleep = task.sleep,
  timeout = task.timeout,
  now = task.now,
}

-- Provider connections: sg.connect and the provider definitions are loaded on the first call,
-- so that a script using only sg.json or the task helpers does not pay for them. The bindings
-- above are not: requiring sg loads _sg.http (which sets up curl on the event loop), _sg.crypto
-- and _sg.exoscale, whose signer is here for testing and debugging. `sgrun -e ''` and a script
-- that never requires sg load none of them.
---@param provider string
---@param opts? table
---@return sg.Connection
function sg.connect(provider, opts)
  return require("sg.connect").connect(provider, opts)
end
sg.crypto.exoscale_sign = require("_sg.exoscale").sign

-- The neutral layer, loaded on first use.

---Takes a snapshot of a group: {format, provider, group, rules, raw, taken_at}.
---@async
---@param conn sg.Connection
---@param ref any group name or id; Barrack {instance = id}; HostUp {vm = N}
---@return sg.Snapshot
function sg.snapshot(conn, ref) return require("sg.snapshot").snapshot(conn, ref) end

---Writes a snapshot to a file atomically.
---@param snap sg.Snapshot
---@param path string
function sg.save(snap, path) return require("sg.snapshot").save(snap, path) end

---Reads and validates a snapshot file.
---@param path string
---@return sg.Snapshot
function sg.load(path) return require("sg.snapshot").load(path) end

---Plans bringing a group to the rules of a snapshot (or a rule list); changes nothing.
---@async
---@param conn sg.Connection
---@param ref any
---@param source sg.Snapshot|sg.Rule[]
---@param opts sg.PlanOptions?
---@return sg.Plan
function sg.plan(conn, ref, source, opts) return require("sg.apply").plan(conn, ref, source, opts) end

---Carries a plan out, waits for the provider, re-reads and verifies: {ok, added, removed, error}.
---@async
---@param plan sg.Plan
---@return sg.ApplyResult
function sg.apply(plan) return require("sg.apply").apply(plan) end

---Rolls rules out to several {connection, group} targets; returns a report. A target that fails
---is put back to its snapshot while the others keep their changes; with {atomic = true} any
---failure puts every touched target back.
---@async
---@param source sg.Snapshot|sg.Rule[]
---@param targets table[]
---@param opts sg.RolloutOptions?
---@return sg.RolloutReport
function sg.rollout(source, targets, opts) return require("sg.rollout").rollout(source, targets, opts) end

---Exposure findings for a snapshot, a group or a list of rules (see the sg.audit module).
---@param x sg.Snapshot|sg.Group|sg.Rule[]
---@param policy table?
---@return table[]
function sg.audit(x, policy) return require("sg.audit").check(x.rules or x, policy) end

---What the command line asked for: dry_run, json, profile, log_format, sim, version.
sg.options = package.loaded["sg.options"] or {}

---Writes to the run log (text, or JSON lines with --log-format json).
---@param level "debug"|"info"|"warn"|"error"
---@param event string a short name, e.g. "drift_found"
---@param message string?
---@param fields table<string, any>?
function sg.log(level, event, message, fields) require("_sg.log").write(level, event, message, fields) end

return sg
