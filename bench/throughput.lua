-- Raw throughput: N requests to one URL, C in flight, through sg.http.request.
-- usage: sgrun bench/throughput.lua URL [requests] [in_flight]
local sg = require "sg"

local url = assert(arg[1], "usage: sgrun bench/throughput.lua URL [requests] [in_flight]")
local n, limit = tonumber(arg[2] or 20000), tonumber(arg[3] or 100)
local next_index = 0
local function worker()
  while next_index < n do
    next_index = next_index + 1
    local res = assert(sg.http.request { url = url })
    assert(res.status == 200)
  end
end
local workers = {}
for i = 1, limit do workers[i] = worker end
local started = sg.now()
sg.all(workers)
local wall = sg.now() - started
print(string.format("%.0f", n / wall))
