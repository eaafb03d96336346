-- A fleet drift over every account of an emulator started with `sgrun sim --accounts N
-- --account-groups G --latency MS --fleet-file F` (bench/run.sh fleet does that), against the
-- ideal set by the per-provider limit: the busiest provider's requests, `per_provider` at a time,
-- each taking the emulator's latency. Also the peak RSS of this process.
-- usage: sgrun bench/fleet.lua INVENTORY LATENCY_MS [PER_PROVIDER]
local sg = require "sg"
local fleet = require "sg.fleet"

local inventory, latency = arg[1], tonumber(arg[2])
local per_provider = math.tointeger(tonumber(arg[3] or "")) or fleet.DEFAULT_PER_PROVIDER
local SIM = assert(os.getenv("SGRUN_SIM_URL"), "set SGRUN_SIM_URL (the emulator's --env-file)")
assert(inventory and latency, "usage: sgrun bench/fleet.lua INVENTORY LATENCY_MS [PER_PROVIDER]")

local function peak_mb()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmHWM:%s+(%d+)")
    if kb then return tonumber(kb) / 1024 end
  end
end

assert(sg.http.request { method = "DELETE", url = SIM .. "/_sim/log" })
local inv = fleet.load(inventory)
local t0, c0 = sg.now(), os.clock()
local report = inv:run("drift", { per_provider = per_provider })
-- the process's CPU time: what the fleet's own work costs, which other load on the machine
-- hardly changes (unlike the wall time)
local wall, cpu = sg.now() - t0, os.clock() - c0
-- the fleet's own peak, taken before the emulator's log is read below
local peak = peak_mb()

-- The log carries every request and response body, far over the default 16 MiB cap and 30 s
-- timeout (the emulator takes a minute to write 10,000 accounts' worth): it is read one provider
-- at a time, each dropped before the next, so that reading it does not take more memory than the
-- fleet did. Returns the provider's request count and the seconds they were held.
local function provider_log(p)
  local log = sg.json.decode(assert(sg.http.request { url = SIM .. "/_sim/log?provider=" .. p,
    max_size = 1024 * 1024 * 1024, timeout = 600 }).body)
  local held = 0
  for _, e in ipairs(log.requests) do held = held + ((e.t_end or e.t_start) - e.t_start) end
  return log.count, held
end
local prefixes = sg.json.decode(assert(sg.http.request { url = SIM .. "/_sim" }).body).providers
local per, busiest, served, logged = {}, 0, 0, 0
local names = {}
for p in pairs(prefixes) do names[#names + 1] = p end
table.sort(names)
for _, p in ipairs(names) do
  local n, held = provider_log(p)
  collectgarbage()
  per[p], busiest, served, logged = n, math.max(busiest, n), served + held, logged + n
end
local parts = {}
for _, p in ipairs(names) do parts[#parts + 1] = string.format("%s %d", p, per[p]) end
local ideal = math.ceil(busiest / per_provider) * latency / 1000
print(string.format("fleet drift: %d accounts, %d groups, %g ms latency, %d requests per provider at once",
  report.totals.accounts, report.totals.groups, latency, per_provider))
print(string.format("  requests: %s (log of %d)", table.concat(parts, ", "), logged))
print(string.format("  wall %.2f s, ideal %.2f s (busiest provider %d requests / %d x %g ms), ratio %.2f",
  wall, ideal, busiest, per_provider, latency, wall / ideal))
print(string.format("  the emulator held each request %.0f ms on average (its latency included)",
  served / math.max(1, logged) * 1000))
print(string.format("  fleet process CPU %.2f s, %.2f ms per request", cpu, cpu / math.max(1, logged) * 1000))
-- The same number of bare requests, as many at once, straight to the emulator: what this machine
-- manages right now without any of the fleet's work (on a loaded machine this is well above ideal).
local lanes = {}
for _, p in ipairs(names) do
  lanes[#lanes + 1] = function()
    local fns = {}
    for i = 1, per[p] do
      fns[i] = function() return assert(sg.http.request { url = SIM .. prefixes[p] .. "/bench" }).status end
    end
    sg.all(fns, { limit = per_provider })
  end
end
local b0 = sg.now()
sg.all(lanes)
local bare = sg.now() - b0
print(string.format("  bare requests, same count and concurrency: %.2f s; fleet / bare %.2f", bare, wall / bare))
print(string.format("  peak RSS %.1f MB (the fleet run's); accounts %s", peak, sg.json.encode(report.totals.by_status)))
