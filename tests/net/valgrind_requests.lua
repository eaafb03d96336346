-- Run under valgrind by ctest (net/valgrind_requests): requests that succeed, fail, time out and
-- get cancelled must leave nothing allocated behind.
local sg = require "sg"
local base = assert(os.getenv("TEST_URL"))
local fns = {}
for i = 1, 20 do
  fns[i] = function() return assert(sg.http.request { url = base .. "/delay?ms=20&id=" .. i }) end
end
sg.all(fns)
assert(sg.http.request { method = "POST", url = base .. "/echo", body = ("x"):rep(100000) })
assert(not sg.http.request { url = base .. "/delay?ms=1000", timeout = 0.05 })
assert(not sg.http.request { url = base .. "/bytes?n=5000", max_size = 100 })
assert(not sg.http.request { url = "http://127.0.0.1:1/" })
local t = sg.spawn(sg.http.request, { url = base .. "/delay?ms=1000" })
sg.sleep(0.05)
t:cancel()
-- left in flight when the script ends: shutdown must free it too
sg.spawn(sg.http.request, { url = base .. "/delay?ms=1000" })
sg.sleep(0.05)
print("ok")
