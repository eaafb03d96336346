-- Helpers for the binding tests against `sgrun sim`: connections whose every request is
-- recorded as it goes on the wire (method, URL, headers, body bytes) and then sent for real,
-- plus the emulator's control API (/_sim/knobs, reset, log).
local http = require "_sg.http"
local json = require "sg.json"
local sg = require "sg"

local M = {}

M.SIM = assert(os.getenv("SGRUN_SIM_URL"), "SGRUN_SIM_URL is not set (run under with_sim.sh)")

---A transport that records each request, then sends it with sg.http.request.
---@return table log, function transport
function M.recorder()
  local log = {}
  return log, function(req)
    local headers = {}
    for k, v in pairs(req.headers or {}) do headers[k] = v end
    local entry = { method = req.method, url = req.url, headers = headers, body = req.body }
    log[#log + 1] = entry
    local resp, err, code = http.request(req)
    entry.status = resp and resp.status or code
    return resp, err, code
  end
end

---A connection to the emulated provider whose requests land in `log`.
---@return table conn, table log
function M.connect(provider, opts)
  local log, transport = M.recorder()
  local o = { transport = transport, retry = { base = 0.05, cap = 1 } }
  for k, v in pairs(opts or {}) do o[k] = v end
  return sg.connect(provider, o), log
end

---The last request with `method` a recorder log (M.connect's second result) holds after its
---first `since` entries, or nil.
function M.last_sent(log, since, method)
  local found
  for i = since + 1, #log do if log[i].method == method then found = log[i] end end
  return found
end

---The path (from the host on, no query) and the decoded query of a URL.
function M.split(url)
  local path, query = url:match("^https?://[^/]+([^?]*)%??(.*)$")
  local q = {}
  for pair in query:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    q[k] = v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  end
  return path, q
end

---Calls the emulator's control API; returns the decoded body.
function M.control(method, path, body)
  local resp, err = http.request { method = method, url = M.SIM .. path,
    headers = { ["Content-Type"] = "application/json" }, body = body and json.encode(body), timeout = 10 }
  assert(resp, err)
  assert(resp.status == 200, path .. ": " .. resp.status .. " " .. resp.body)
  return json.decode(resp.body)
end

---A fresh emulator. The roll-out journals earlier cases left (kept for --recover) name groups of
---the old one, so they go too: a journal naming a target stops other roll-outs of it.
function M.reset()
  local journal = require "sg.journal"
  for _, path in ipairs(journal.list()) do os.remove(path) end
  return M.control("POST", "/_sim/reset")
end
function M.knobs(k) return M.control("PUT", "/_sim/knobs", k) end

---The emulator's request log for one provider since `since` (seq).
function M.sim_log(provider, since)
  return M.control("GET", "/_sim/log?provider=" .. provider .. "&since=" .. (since or 0)).requests
end

---Emulator state of one provider (for seeded ids).
function M.state(provider)
  return M.control("GET", "/_sim/state").providers[provider]
end

---Checks that a recorded request's JSON body carries the given fields (compared deeply).
function M.body_has(t, entry, fields, what)
  local body = json.decode(entry.body or "")
  t.ok(type(body) == "table", (what or "") .. ": body is JSON")
  for k, v in pairs(fields) do t.eq(body[k], v, (what or "") .. " body." .. k) end
  return body
end

---The sorted identity keys of a rule list (to compare rule sets).
function M.keys(rules)
  local rule = require "sg.rule"
  local out = {}
  for i, r in ipairs(rules) do out[i] = rule.key(r) end
  table.sort(out)
  return out
end

---Normalises a list of rule-like tables.
function M.rules(list)
  local rule = require "sg.rule"
  local out = {}
  for i, r in ipairs(list) do out[i] = rule.normalize(r) end
  return out
end

---The changes sg.plan would hand to an adapter's apply for bringing group to desired.
function M.changes_for(codec, group, desired)
  local p = require("sg.plan").compute { target = { provider = codec.name, group = group.name },
    current = group.rules, desired = desired, codec = codec }
  local all = {}
  for _, r in ipairs(p.keep) do all[#all + 1] = r end
  for _, r in ipairs(p.add) do all[#all + 1] = r end
  return { add = p.add, remove = p.remove, desired = all }
end

---Creates a group through an adapter, deletes it with delete_group and checks that it no longer
---reads (by id).
function M.check_delete(t, adapter, conn, name)
  local g = adapter.create_group(conn, name)
  t.ok(adapter.get_group(conn, g.id), name .. " exists before delete_group")
  adapter.delete_group(conn, g)
  local gone, why = adapter.get_group(conn, g.id)
  t.eq(gone, nil, name .. " is gone after delete_group")
  t.ok(type(why) == "string", "reading a deleted group says why it is missing")
end

---The last request log sequence number of a provider (0 when it has none).
function M.last_seq(provider)
  local log = M.sim_log(provider)
  return #log > 0 and log[#log].seq or 0
end

---The provider's requests after `since` that change something (log entries).
function M.mutations(provider, since)
  local out = {}
  for _, e in ipairs(M.sim_log(provider, since)) do
    if e.method ~= "GET" then out[#out + 1] = e end
  end
  return out
end

---Runs fn with every task/operation failing, and restores the knob whatever happens.
function M.with_failing_tasks(fn)
  M.knobs({ task_error_rate = 1 })
  local ok, err = pcall(fn)
  M.knobs({ task_error_rate = 0 })
  if not ok then error(err, 0) end
end

---A connection transport for Exoscale that refuses (400) the rule add for `port` and sends every
---other request for real. Before refusing it calls opts.first (default: sleep 0.3 s, so that the
---other adds are accepted first); opts.slow_reply delays the replies of the other POSTs by that
---many seconds, after the provider has received them.
---@param port integer
---@param opts {first: fun()?, slow_reply: number?}?
function M.refusing_add(port, opts)
  opts = opts or {}
  local needle = string.format('"start-port":%d', port)
  return function(req)
    if req.method == "POST" and tostring(req.body):find(needle, 1, true) then
      if opts.first then opts.first() else sg.sleep(0.3) end
      return { status = 400, headers = {}, body = '{"message":"refused by the test"}' }
    end
    local resp, err, code = http.request(req)
    if req.method == "POST" and opts.slow_reply then sg.sleep(opts.slow_reply) end
    return resp, err, code
  end
end

return M
