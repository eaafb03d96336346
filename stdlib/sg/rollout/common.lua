-- What sg.rollout and the phases of a roll-out (stdlib/sg/rollout/*.lua) share: the account a
-- connection reaches, rule sets compared by key, the reports' rule lists, and running provider
-- calls contained (an error is a value, never the end of the run) and bounded in time.
local groups = require "sg.groups"
local rule = require "sg.rule"
local task = require "sg.task"

local M = {}

---An error as the report's text says it (nil stays nil).
---@param err any
---@return string?
function M.error_text(err)
  if err == nil then return nil end
  return require("sg.errors").text(err)
end

---Rules sorted, as a JSON array (an empty list stays a list).
---@param list sg.Rule[]?
---@return table
function M.rules_array(list)
  local json = require "sg.json"
  local out = json.array()
  for i, r in ipairs(rule.sort({ table.unpack(list or {}) })) do out[i] = r end
  return out
end

---The account a connection reaches (provider and a digest of its credentials and scope).
---@param conn sg.Connection
---@return string
function M.account_key(conn)
  local ok, internals = pcall(require("sg.connect").internals, conn)
  return ok and internals.account_key or conn.provider
end

---What a journal records of a target's account: a digest of account_key, so that recovering
---can tell it connects to the same account without the journal holding anything derived
---directly from credentials.
---@param conn sg.Connection
---@return string
function M.account_id(conn)
  local crypto = require "_sg.crypto"
  return crypto.hex_encode(crypto.sha256(M.account_key(conn))):sub(1, 16)
end

---A group reference as read back from a journal: JSON numbers come back as floats, and
---{vm = 10000.0} would name another group than {vm = 10000}.
---@param ref any
---@return any
function M.journal_ref(ref)
  if type(ref) ~= "table" then return ref end
  local out = {}
  for k, v in pairs(ref) do out[k] = math.tointeger(v) or v end
  return out
end

---Rules by their key.
---@param rules sg.Rule[]?
---@return table<string, sg.Rule>
function M.keyset(rules)
  local s = {}
  for _, r in ipairs(rules or {}) do s[rule.key(r)] = r end
  return s
end

---Whether two keysets hold the same keys.
---@return boolean
function M.same_keys(a, b)
  for k in pairs(a) do if not b[k] then return false end end
  for k in pairs(b) do if not a[k] then return false end end
  return true
end

---Rules in `a` that are not in `b` (keysets), sorted.
---@return sg.Rule[]
function M.minus(a, b)
  local out = {}
  for k, r in pairs(a) do if not b[k] then out[#out + 1] = r end end
  return rule.sort(out)
end

---get_group as (group or nil when absent), raising on a failed read.
---@async
---@param conn sg.Connection
---@param ref any
---@return sg.Group? group
---@return string? absent why it is absent
function M.read(conn, ref)
  local group, err = groups.get(conn.provider).get_group(conn, ref)
  if group then return group end
  -- an absent group answers with a message; a failed read raises inside get_group
  return nil, err
end

---fn(...) contained and bounded: true, or its error (a message when `seconds` ran out first).
---@async
---@param seconds number
---@param what string what fn does, for the message
---@param fn async fun(...)
---@return true|any
function M.bounded(seconds, what, fn, ...)
  local ok, done, err = pcall(task.timeout, seconds,
  ---@async
  function(...)
    local fine, e = pcall(fn, ...)
    return fine, e
  end, ...)
  if not ok then return done end
  if done == nil then return string.format("%s did not finish within %g s", what, seconds) end
  if done then return true end
  return err
end

---Runs fns concurrently, each contained and bounded by `seconds`: a list of true or the error.
---@async
---@param fns (async fun())[]
---@param seconds number
---@param what string
---@return (true|any)[]
function M.contained(fns, seconds, what)
  local wrapped = {}
  for i, fn in ipairs(fns) do
    ---@async
    wrapped[i] = function() return M.bounded(seconds, what, fn) end
  end
  return task.all(wrapped, { limit = #wrapped })
end

---The findings of the report's targets, de-duplicated across targets.
---@param targets sg.RolloutTarget[]
---@return {rule: sg.Rule, kind: string, why: string, targets: integer[]}[]
function M.findings_once(targets)
  local out, at = {}, {}
  for i, t in ipairs(targets) do
    for _, f in ipairs(t.findings or {}) do
      local k = rule.key(f.rule) .. "\0" .. f.kind .. "\0" .. tostring(f.why)
      local entry = at[k]
      if not entry then
        entry = { rule = f.rule, kind = f.kind, why = f.why, targets = {} }
        at[k] = entry
        out[#out + 1] = entry
      end
      -- a target with the same finding twice (two source rules that translate alike) is named once
      if entry.targets[#entry.targets] ~= i then entry.targets[#entry.targets + 1] = i end
    end
  end
  return out
end

return M
