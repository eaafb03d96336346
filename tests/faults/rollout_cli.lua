-- Running scripts/rollout.lua from the fault tests: the command line of the fault matrix's
-- roll-out (Exoscale's "web" onto every other cloud and a group to create), and a run the
-- emulator SIGKILLs at its N-th write (/_sim/kill). Shared by test_kill.lua and test_recover.lua.
local sg = require "sg"
local matrix = require "matrix"
local wire = require "sim_wire"

local M = {}

local sgrun
do
  local lowest = 0
  while arg[lowest - 1] do lowest = lowest - 1 end
  sgrun = arg[lowest]
end
local PLAYBOOK = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/../../scripts/rollout.lua"

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

---The shell command running the playbook with `args` (--atomic first when atomic), and
---sgrun's own options `own` (such as --json) before the playbook.
---@param atomic boolean
---@param args string[]
---@param own string[]?
---@return string
function M.command(atomic, args, own)
  local words = { sgrun, table.unpack(own or {}) }
  words[#words + 1] = PLAYBOOK
  if atomic then words[#words + 1] = "--atomic" end
  for _, a in ipairs(args) do words[#words + 1] = a end
  for i, w in ipairs(words) do words[i] = shell_quote(w) end
  return table.concat(words, " ")
end

---The roll-out's own arguments: options, SOURCE and every target.
---@return string[]
function M.roll_args()
  local out = { "--allow-lossy", "--yes", "exoscale:web" }
  for _, text in ipairs(matrix.TARGET_ARGS) do out[#out + 1] = text end
  return out
end

---Runs the command; returns its exit status (an integer) and its standard output (and its
---standard error after it, with `stderr`).
---@param cmd string
---@param stderr boolean?
---@return integer, string
function M.run(cmd, stderr)
  local p = assert(io.popen(cmd .. (stderr and " 2>&1" or " 2>/dev/null")))
  local text = p:read("a")
  local _, _, code = p:close()
  return code, text
end

---Every target's rules (keysets), false for a group that does not exist.
---@async
---@return (table|false)[]
function M.state()
  local out = {}
  for i, tg in ipairs(matrix.TARGETS) do
    local g = sg.connect(tg[1]):group(tg[2])
    out[i] = g and matrix.keyset(g.rules) or false
  end
  return out
end

-- A process that has ended but is not reaped yet (a zombie, whose parent shell is gone) counts
-- as ended, once its last thread has: a killed sgrun's main thread can be a zombie while its
-- transport threads are still exiting, and until then its files (the journal's lock among them)
-- stay open.
local function alive(pid)
  local f = io.open("/proc/" .. pid .. "/status")
  if not f then return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true end
  local status = f:read("a") or ""
  f:close()
  local state, threads = status:match("\nState:%s*(%a)"), tonumber(status:match("\nThreads:%s*(%d+)"))
  return status ~= "" and (not state:match("[ZX]") or (threads or 1) > 1)
end

local go_file = os.tmpname()

---Runs the roll-out and has the emulator SIGKILL it at its `writes`-th write, `when` ("before"
---or "after") that write takes effect. The run is held at the door (a shell that execs sgrun,
---keeping its pid, once the go file exists) so that the kill is armed for its pid before it sends
---anything. Returns once it has ended: whether it was killed (false: it ended first), and
---whether it ended at all within a minute.
---@async
---@param atomic boolean
---@param writes integer
---@param when "before"|"after"
---@return boolean fired, boolean ended
function M.run_killed(atomic, writes, when)
  os.remove(go_file)
  local inner = M.command(atomic, M.roll_args()):gsub("'", "'\\''")
  local p = assert(io.popen(string.format("sh -c 'echo $$; exec >/dev/null 2>&1 </dev/null; " ..
    "while [ ! -e %s ]; do sleep 0.01; done; exec %s' &", go_file, inner)))
  local pid = assert(tonumber(p:read("l")), "no pid")
  p:close()
  wire.control("PUT", "/_sim/kill", { pid = pid, writes = writes, when = when })
  assert(io.open(go_file, "w")):close()
  -- bounded: a run that neither ends nor is killed fails the test instead of hanging it
  for _ = 1, 1200 do
    if not alive(pid) then break end
    sg.sleep(0.05)
  end
  local fired = wire.control("GET", "/_sim/kill").fired
  wire.control("DELETE", "/_sim/kill")
  os.remove(go_file)
  return fired, not alive(pid)
end

---How many writes a whole roll-out sends (it runs one).
---@async
---@param atomic boolean
---@return integer
function M.writes_of_a_run(atomic)
  wire.control("DELETE", "/_sim/log")
  os.execute(M.command(atomic, M.roll_args()) .. " >/dev/null 2>&1")
  local n = 0
  for _, e in ipairs(wire.control("GET", "/_sim/log").requests) do
    if e.provider ~= sg.json.null and e.method ~= "GET" and e.method ~= "HEAD" then n = n + 1 end
  end
  return n
end

return M
