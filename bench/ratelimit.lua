-- 1,000 concurrent calls against the emulator limiting one provider to 20 requests/s, with the
-- default retry policy (5 attempts): how many succeed, how many 429s were answered, how long it
-- took and the rate the client-side limiter settled on.
-- usage: sgrun --sim bench/ratelimit.lua [calls] [limit]
local sg = require "sg"

local SIM = assert(os.getenv("SGRUN_SIM_URL"), "run with: sgrun --sim bench/ratelimit.lua")
local calls, limit = tonumber(arg and arg[1]) or 1000, tonumber(arg and arg[2]) or 20

local function control(method, path, body)
  local res = assert(sg.http.request { method = method, url = SIM .. path,
    body = body and sg.json.encode(body), headers = { ["Content-Type"] = "application/json" } })
  assert(res.status < 300, res.body)
  return res.body ~= "" and sg.json.decode(res.body) or nil
end

control("PUT", "/_sim/knobs", { rate_limit = limit })
control("DELETE", "/_sim/log")
local gcore = sg.connect("gcore")
local fns = {}
for i = 1, calls do
  fns[i] = function()
    local ok = pcall(gcore.list_security_groups, gcore)
    return ok
  end
end
local t0 = sg.now()
local results = sg.all(fns, { limit = calls })
local took = sg.now() - t0
local ok = 0
for _, r in ipairs(results) do if r then ok = ok + 1 end end
local limited = 0
for _, e in ipairs(control("GET", "/_sim/log").requests) do
  if e.status == 429 then limited = limited + 1 end
end
print(string.format("ratelimit: %d concurrent calls, limit %d/s: %d of %d succeeded, %d answered 429, %.1f s (%.1f calls/s)",
  calls, limit, ok, calls, limited, took, ok / took))
os.exit(ok == calls and 0 or 1)
