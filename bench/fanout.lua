-- Fan-out: 1,000 requests through the Lua API to a server that answers after 50 ms, at most
-- 100 in flight. The ideal is 10 rounds x 50 ms = 0.5 s.
-- usage: sgrun bench/fanout.lua URL [requests] [in_flight] [delay_ms]
local sg = require "sg"

local base = assert(arg[1], "usage: sgrun bench/fanout.lua URL [requests] [in_flight] [delay_ms]")
local n, limit, delay = tonumber(arg[2] or 1000), tonumber(arg[3] or 100), tonumber(arg[4] or 50)

local fns = {}
for i = 1, n do
  fns[i] = function()
    local res = assert(sg.http.request { url = base .. "/delay?ms=" .. delay .. "&id=" .. i })
    assert(res.status == 200)
  end
end
local started = sg.now()
sg.all(fns, { limit = limit })
local wall = sg.now() - started
local ideal = math.ceil(n / limit) * delay / 1000
print(string.format("fanout: %d requests, %d in flight, %d ms each: %.3f s (ideal %.3f s, ratio %.3f)",
  n, limit, delay, wall, ideal, wall / ideal))
