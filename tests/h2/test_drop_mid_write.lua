-- Issue 14: on HTTP/2, a connection the server resets (no GOAWAY) while a create is being
-- written never makes the create arrive twice, and the caller is told the truth. The server is
-- tests/support/h2dropserver (run through with_h2dropserver.sh): it logs every request body's
-- start and completion and resets the connection in the middle of a body ("drop-mid") or after
-- a whole body arrived but before any answer ("drop-after").
local t = require "testlib"
local sg = require "sg"

local base = assert(os.getenv("H2DROP_URL"), "run through with_h2dropserver.sh")
local log_path = assert(os.getenv("H2DROP_LOG"))
-- larger than HTTP/2's initial flow-control window (65,535 bytes): a body reset on its first
-- DATA frame is still being sent
local padding = ("x"):rep(200000)

-- {[id] = {start = n, complete = n, drop = n, streams = {stream id of each start}}} from the log
local function events()
  local out = {}
  for line in io.lines(log_path) do
    local what, id, _, stream = line:match("^(%S+) (%S+) (%d+) (%d+)$")
    if what and id ~= "-" then
      local e = out[id] or { start = 0, complete = 0, drop = 0, streams = {} }
      out[id] = e
      e[what] = e[what] + 1
      if what == "start" then e.streams[#e.streams + 1] = tonumber(stream) end
    end
  end
  return out
end

local function gets_served()
  local n = 0
  for line in io.lines(log_path) do
    if line:match("^get ") then n = n + 1 end
  end
  return n
end

t.test("creates on connections reset mid-write or before the answer arrive at most once", function()
  -- reads first, so that there is an h2 connection a later request could be put on
  local warm = {}
  for i = 1, 10 do warm[i] = function() return assert(sg.http.request { url = base .. "/warm?i=" .. i }).status end end
  for _, st in ipairs(sg.all(warm, { limit = 10 })) do t.eq(st, 200) end
  t.ok(gets_served() >= 10, "the warm-up reads were served over h2")

  local modes = { "drop-mid", "drop-after", "ok" }
  local fns, kinds = {}, {}
  for i = 1, 36 do
    if i % 2 == 0 then
      kinds[i] = "read"
      fns[i] = function() return { sg.http.request { url = base .. "/read?i=" .. i } } end
    else
      local mode = modes[(i // 2) % 3 + 1]
      kinds[i] = mode
      fns[i] = function()
        return { sg.http.request { method = "POST", url = base .. "/create",
          body = "c" .. i .. " " .. mode .. " " .. padding } }
      end
    end
  end
  local results = sg.all(fns, { limit = 12 })
  local seen = events()
  local counted = { ["drop-mid"] = 0, ["drop-after"] = 0, ok = 0 }
  for i, mode in ipairs(kinds) do
    if mode ~= "read" then
      counted[mode] = counted[mode] + 1
      local id, what = "c" .. i, "create " .. i .. " (" .. mode .. ")"
      local e = seen[id] or { start = 0, complete = 0, drop = 0, streams = {} }
      local res, msg, code = table.unpack(results[i])
      t.eq(e.start, 1, what .. ": its body was sent exactly once")
      -- stream 1 is a connection's first: the write did not ride a connection used before
      t.eq(e.streams[1], 1, what .. ": on a connection of its own")
      if mode == "drop-mid" then
        t.eq(res, nil, what .. ": reported as failed")
        t.ok(type(code) == "string", what .. ": with a failure code (" .. tostring(msg) .. ")")
        t.eq(e.complete, 0, what .. ": never applied")
      elseif mode == "drop-after" then
        -- applied, but no answer came: the caller must hear "failed" (and re-read), never a retry
        t.eq(res, nil, what .. ": reported as failed, not answered")
        t.eq(e.complete, 1, what .. ": applied once")
      else
        t.eq(res and res.status, 200, what .. ": answered (" .. tostring(msg) .. ")")
        t.eq(e.complete, 1, what .. ": applied once")
      end
    end
  end
  for mode, n in pairs(counted) do t.ok(n >= 5, n .. " creates of kind " .. mode) end
end)

t.run()
