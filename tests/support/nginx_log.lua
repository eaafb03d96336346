-- The access log tests/support/with_nginx.sh writes (NGINX_LOG), one line a request:
-- "CONNECTION NTH METHOD URI PROTOCOL". nginx writes a request's line after it has sent the
-- answer, so a client can hold every answer before the last lines are in the log: `served`
-- reads it again until the lines a test waits for are there.
local sg = require "sg"

local M = {}

local path = assert(os.getenv("NGINX_LOG"), "run through with_nginx.sh")

local function read(prefix)
  local out = {}
  for line in io.lines(path) do
    local conn, nth, method, uri, proto = line:match("^(%d+) (%d+) (%S+) (%S+) (%S+)$")
    if uri and uri:sub(1, #prefix) == prefix then
      out[#out + 1] = { conn = conn, nth = tonumber(nth), method = method, uri = uri, proto = proto }
    end
  end
  return out
end

---The log's lines for URIs starting with prefix ({conn=, nth=, method=, uri=, proto=}), once there
---are at least `want` of them (or 10 s have passed: the caller's count then tells what is missing).
---@async
---@param prefix string
---@param want integer
---@return table[]
function M.served(prefix, want)
  local deadline = sg.now() + 10
  local lines = read(prefix)
  while #lines < want and sg.now() < deadline do
    sg.sleep(0.02)
    lines = read(prefix)
  end
  return lines
end

---How many distinct connections the lines came on.
---@param lines table[]
---@return integer
function M.connections(lines)
  local seen, n = {}, 0
  for _, l in ipairs(lines) do
    if not seen[l.conn] then seen[l.conn], n = true, n + 1 end
  end
  return n
end

return M
