-- --dry-run is enforced in the HTTP layer: reads go out, nothing else does, and it cannot be
-- switched off again from a script.
local t = require "testlib"
local sg = require "sg"
local base = assert(os.getenv("TEST_URL"))

t.test("dry run lets reads through and stops writes before they are sent", function()
  sg.http.dry_run(true)
  t.eq(assert(sg.http.request { url = base .. "/hello" }).status, 200)
  local res, msg, code = sg.http.request { method = "POST", url = base .. "/echo", body = "x" }
  t.eq(res, nil)
  t.eq(code, "dry_run")
  t.ok(msg:find("POST"), msg)
  t.eq(sg.http.dry_run(false), true)
  t.eq(select(3, sg.http.request { method = "DELETE", url = base .. "/echo" }), "dry_run")
end)

t.run()
