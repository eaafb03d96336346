-- The fault matrix: one roll-out (Exoscale's "web" onto four clouds and one group to create)
-- under one kind of fault injected by the emulator, then every target read back with the faults
-- off and judged: converged (holds exactly the translated source rules), restored (holds exactly
-- what it held before; a created group is gone again), or partial. The report must exist and
-- agree with what was read back (status and changes). Shared by tests/faults/test_faults.lua
-- (a few runs per kind) and bench/faults.lua (the table in bench/README.md).
local sg = require "sg"
local codec = require "sg.codec"
local rule = require "sg.rule"

local M = {}

-- kind -> emulator knobs and roll-out options
M.KINDS = {
  { name = "429", knobs = { rate_limit = 4 } },
  { name = "5xx", knobs = { error_rate = 0.25 } },
  { name = "drop", knobs = { drop_rate = 0.15 } },
  { name = "task_error", knobs = { task_error_rate = 0.35 } },
  { name = "latency", knobs = { latency_ms = 800, jitter_ms = 800 }, opts = { timeout = 1 } },
}

local CLEAN = { latency_ms = 0, jitter_ms = 0, error_rate = 0, drop_rate = 0, task_error_rate = 0,
  rate_limit = 0, task_error_only = "", task_duration_ms = 150 }

local function control(method, path, body)
  local sim = assert(os.getenv("SGRUN_SIM_URL"), "run against the emulator (with_sim.sh or sgrun --sim)")
  local res = assert(sg.http.request { method = method, url = sim .. path,
    body = body and sg.json.encode(body), headers = { ["Content-Type"] = "application/json" } })
  assert(res.status < 300, res.body)
  return res.body ~= "" and sg.json.decode(res.body) or nil
end

---@param rules sg.Rule[]?
---@return table<string, true>
local function keyset(rules)
  local out = {}
  for _, r in ipairs(rules or {}) do out[rule.key(r)] = true end
  return out
end

local function same(a, b)
  for k in pairs(a) do if not b[k] then return false end end
  for k in pairs(b) do if not a[k] then return false end end
  return true
end

local function minus(a, b)
  local out = {}
  for k in pairs(a) do if not b[k] then out[k] = true end end
  return out
end

local function translated(provider, rules)
  local want = {}
  local c = codec.get(provider)
  for _, r in ipairs(rules) do
    local tr = c.translate(r)
    if tr.rule then want[rule.key(tr.rule)] = true end
  end
  return want
end

-- Every emulated cloud but the source's own, at its demo group, and one group the roll-out
-- creates: as PROVIDER:GROUP arguments (TARGET_ARGS) and parsed (TARGETS).
local TARGET_ARGS = {}
for _, name in ipairs(require("sg.connect").providers()) do
  if name ~= "exoscale" then TARGET_ARGS[#TARGET_ARGS + 1] = name .. ":" .. require("sgsim." .. name).demo_target end
end
TARGET_ARGS[#TARGET_ARGS + 1] = "gcore:made-by-rollout"
local TARGETS = {}
for i, text in ipairs(TARGET_ARGS) do TARGETS[i] = { require("sg.cli").parse_target(text) } end
M.TARGET_ARGS, M.TARGETS = TARGET_ARGS, TARGETS
M.keyset, M.same, M.translated = keyset, same, translated

---The latency kind scaled by `f` (latency, jitter and timeout alike), for a faster suite.
---@param f number
---@return table
function M.latency_scaled(f)
  return { name = "latency", knobs = { latency_ms = 800 * f, jitter_ms = 800 * f }, opts = { timeout = 1 * f } }
end

---Runs one roll-out under `kind` with the emulator seeded by `seed`.
---@async
---@return {outcomes: string[], problems: string[]} per target "converged"|"restored"|"partial"
function M.run(kind, seed)
  control("POST", "/_sim/reset")
  control("DELETE", "/_sim/log")
  local clean = {}
  for k, v in pairs(CLEAN) do clean[k] = v end
  clean.seed = seed
  control("PUT", "/_sim/knobs", clean)
  local judge = {} -- clean connections for reading
  local function jconn(p)
    judge[p] = judge[p] or sg.connect(p)
    return judge[p]
  end
  local source = sg.snapshot(jconn("exoscale"), "web")
  local before = {}
  for i, tg in ipairs(TARGETS) do
    local g = jconn(tg[1]):group(tg[2])
    before[i] = g and keyset(g.rules) or false
  end

  local knobs = {}
  for k, v in pairs(kind.knobs) do knobs[k] = v end
  control("PUT", "/_sim/knobs", knobs)
  local targets = {}
  for i, tg in ipairs(TARGETS) do targets[i] = { sg.connect(tg[1]), tg[2] } end
  local opts = { lossy = "allow" }
  for k, v in pairs(kind.opts or {}) do opts[k] = v end
  local ok, report = pcall(sg.rollout, source, targets, opts)
  control("PUT", "/_sim/knobs", CLEAN)

  local result = { outcomes = {}, problems = {} }
  local function problem(fmt, ...) result.problems[#result.problems + 1] = string.format(fmt, ...) end
  if not ok or type(report) ~= "table" or not report.targets then
    problem("%s seed %d: no report: %s", kind.name, seed, tostring(report))
    report = nil
  end
  for i, tg in ipairs(TARGETS) do
    local read_ok, g = pcall(jconn(tg[1]).group, jconn(tg[1]), tg[2])
    local final = read_ok and g and keyset(g.rules) or false
    local want = translated(tg[1], source.rules)
    local where = string.format("%s seed %d target %d (%s %s)", kind.name, seed, i, tg[1],
      sg.json.encode(tg[2]))
    local outcome
    if not read_ok then
      outcome = "partial"
      problem("%s: cannot be read back: %s", where, tostring(g))
    elseif final and same(final, want) then
      outcome = "converged"
    elseif (final == false and before[i] == false) or (final and before[i] and same(final, before[i])) then
      outcome = "restored"
    else
      outcome = "partial"
      problem("%s: neither converged nor restored", where)
    end
    result.outcomes[i] = outcome
    local rt = report and report.targets[i]
    if rt then
      local st = rt.status
      local agrees = (outcome == "converged" and (st == "converged" or st == "unchanged"))
          or (outcome == "restored" and (st == "rolled_back" or st == "unchanged" or st == "failed"))
          or (outcome == "partial" and st == "failed")
      if not agrees then problem("%s: report says %s, read back %s", where, st, outcome) end
      local b, f = before[i] or {}, final or {}
      if st ~= "failed" or outcome ~= "restored" then
        if not same(keyset(rt.changes.add), minus(f, b)) or not same(keyset(rt.changes.remove), minus(b, f)) then
          problem("%s: the report's changes differ from what was read back", where)
        end
      end
    end
  end
  result.report = report
  return result
end

return M
