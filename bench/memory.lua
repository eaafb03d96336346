-- Peak memory (VmHWM) of this process: idle, or with N requests in flight at once.
-- usage: sgrun bench/memory.lua [URL N]   (without URL: idle, nothing but the runtime loaded)

local function peak_kb()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmHWM:%s+(%d+)")
    if kb then return tonumber(kb) end
  end
end

local url, n = arg[1], tonumber(arg[2] or 0)
if url and n > 0 then
  local sg = require "sg"
  local fns = {}
  for i = 1, n do
    fns[i] = function() assert(sg.http.request { url = url .. "/delay?ms=1000&id=" .. i, timeout = 60 }) end
  end
  sg.all(fns, { limit = n })
end
print(string.format("%.1f", peak_kb() / 1024))
