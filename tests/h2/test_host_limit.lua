-- Issue 14 item 2: HTTP/1.1 keep-alive connections are reused up to the per-host limit a
-- request (sg.connect's max_connections) sets, counted by a real server (nginx, see
-- tests/support/with_nginx.sh). A process of its own: connections opened before the limit was
-- set would count against it.
local t = require "testlib"
local sg = require "sg"

local nginx_log = require "nginx_log"

local h1 = os.getenv("H1_URL")

t.test("HTTP/1.1: at most max_connections connections per host, reused across bursts", function()
  for round = 1, 2 do
    local fns = {}
    for i = 1, 40 do
      fns[i] = function()
        local res, err = sg.http.request { url = h1 .. "/limit?r=" .. round .. "&i=" .. i, max_connections = 4 }
        return res and res.status or err
      end
    end
    local st = sg.all(fns, { limit = 40 })
    for i = 1, 40 do t.eq(st[i], 200, "round " .. round .. " request " .. i) end
  end
  local lines = nginx_log.served("/limit", 80)
  t.eq(#lines, 80)
  for _, l in ipairs(lines) do t.eq(l.proto, "HTTP/1.1") end
  local conns = nginx_log.connections(lines)
  t.ok(conns <= 4, conns .. " connections for 2 x 40 requests")
end)

t.test("max_connections is checked", function()
  t.raises(function() sg.http.request { url = h1 .. "/x", max_connections = 0 } end, "max_connections")
  t.raises(function() sg.http.request { url = h1 .. "/x", max_connections = 2.5 } end, "max_connections")
end)

t.run()
