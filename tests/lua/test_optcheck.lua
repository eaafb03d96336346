-- Misuse raises at once with a message that says what is wrong: a misspelt option name (naming
-- the nearest known one), before anything is sent (without it {modes = "additive"} rolled out
-- authoritatively, removing rules, and {regionid = 99} connected to the default region), and a
-- first argument that is not a connection.
local t = require "testlib"
local sg = require "sg"
local optcheck = require "sg.optcheck"

local sent = 0
local function conn()
  return sg.connect("gcore", { api_key = "k-12345678", project_id = 1, region_id = 9,
    transport = function()
      sent = sent + 1
      error("no request may be sent", 0)
    end })
end

t.test("sg.rollout: an unknown option raises before any request, with the likely one", function()
  sent = 0
  local err = t.raises(function() sg.rollout({}, { { conn(), "web" } }, { modes = "additive" }) end,
    "sg.rollout: unknown option 'modes'; did you mean 'mode'?")
  t.ok(err:find("known: atomic, confirm, create", 1, true), err)
  t.raises(function() sg.rollout({}, { { conn(), "web" } }, { atomc = true }) end, "did you mean 'atomic'?")
  t.eq(sent, 0)
end)

-- t.raises, and the message names this file's line (the caller's), not sgrun's own code
local function raises_here(fn, needle)
  local err = t.raises(fn, needle)
  t.ok(tostring(err):match("^[^:]*test_optcheck%.lua:%d+: "), tostring(err))
  return err
end

t.test("sg.rollout: an option's value is checked before any request, naming the caller's line", function()
  sent = 0
  -- a string "false" or a 0 is true in Lua: an atomic roll-out nobody asked for
  raises_here(function() sg.rollout({}, { { conn(), "web" } }, { atomic = "false" }) end,
    "sg.rollout: atomic must be true or false, not the string \"false\"")
  raises_here(function() sg.rollout({}, { { conn(), "web" } }, { dry_run = 0 }) end,
    "sg.rollout: dry_run must be true or false, not the number 0")
  raises_here(function() sg.rollout({}, { { conn(), "web" } }, { mode = "additiv" }) end,
    "sg.rollout: mode must be \"authoritative\" or \"additive\", not \"additiv\"; did you mean \"additive\"?")
  raises_here(function() sg.rollout({}, { { conn(), "web" } }, { lossy = true }) end,
    "sg.rollout: lossy must be \"error\" or \"allow\", not the boolean true")
  raises_here(function() sg.rollout({}, { { conn(), "web" } }, { create = "yes" }) end,
    "sg.rollout: create must be true or false")
  raises_here(function() sg.rollout({}, { { conn(), "web" } }, { description = 5 }) end,
    "sg.rollout: description must be a string")
  raises_here(function() sg.rollout({}, { { conn(), "web" } }, { confirm = true }) end,
    "sg.rollout: confirm must be a function")
  t.eq(sent, 0)
end)

t.test("sg.rollout: a target is {connection, group} and nothing more: an option written inside one raises", function()
  sent = 0
  -- {conn, "web", mode = "additive"} rolled out authoritatively, removing rules
  t.raises(function() sg.rollout({}, { { conn(), "web", mode = "additive" } }) end,
    "sg.rollout: target 1 has a field 'mode'; a target is {connection, group}: pass roll-out " ..
    "options (mode, atomic, ...) as the third argument")
  t.raises(function() sg.rollout({}, { { conn(), "web", "extra" } }) end,
    "sg.rollout: target 1 has a field '3'; a target is {connection, group}")
  t.eq(sent, 0)
end)

t.test("sg.plan: an option's value is checked before the group is read", function()
  sent = 0
  raises_here(function() sg.plan(conn(), "web", {}, { mode = "additiv" }) end,
    "sg.plan: mode must be \"authoritative\" or \"additive\"")
  t.raises(function() sg.plan(conn(), "web", {}, { lossy = "yes" }) end, "sg.plan: lossy must be")
  t.eq(sent, 0)
end)

t.test("sg.plan: checked before the group is read", function()
  sent = 0
  t.raises(function() sg.plan(conn(), "web", {}, { Mode = "additive" }) end,
    "sg.plan: unknown option 'Mode'; did you mean 'mode'?")
  t.raises(function() sg.plan(conn(), "web", {}, { lossey = "allow" }) end, "did you mean 'lossy'?")
  t.eq(sent, 0)
end)

t.test("sg.connect: allow_insecure_http is true or false: the string \"false\" is not an opt-in", function()
  -- "false" is true in Lua: the API key went in clear text to a host off this machine
  for _, v in ipairs { "false", 0, "no" } do
    local err = raises_here(function()
      sg.connect("gcore", { api_key = "k-12345678", project_id = 1, region_id = 9,
        base_url = "http://api.gcore.example", allow_insecure_http = v })
    end, "allow_insecure_http must be true or false, not the ")
    t.ok(not tostring(err):find("refusing to send credentials", 1, true), err)
  end
  t.raises(function() sg.connect("gcore", { api_key = "k-12345678", project_id = 1, region_id = 9, ca_file = true }) end,
    "ca_file must be a file name")
  -- in an inventory too, before anything connects
  t.raises(function() require("sg.connect").check_options("gcore", { allow_insecure_http = "false" }, "connect") end,
    "connect.allow_insecure_http must be true or false")
  t.ok(sg.connect("gcore", { api_key = "k-12345678", project_id = 1, region_id = 9,
    base_url = "http://api.gcore.example", allow_insecure_http = true }))
end)

t.test("sg.connect: a base URL with a user name or password in it is refused, without showing it", function()
  -- it would be shown wherever the URL is: print(conn), the http trace, error messages
  for _, url in ipairs { "http://admin:PwSecretXYZ123456@127.0.0.1:9/gcore", "https://PwSecretXYZ123456@api.example/x" } do
    local err = t.raises(function()
      sg.connect("gcore", { api_key = "k-12345678", project_id = 1, region_id = 9, base_url = url })
    end, "the base_url option carries a user name or password")
    t.ok(not tostring(err):find("PwSecret", 1, true), tostring(err))
  end
end)

t.test("sg.connect: Exoscale's zone is a name, not a way to put another host in the URL", function()
  local err = t.raises(function()
    sg.connect("exoscale", { key = "EXOabc", secret = "s", zone = "evil.example/x#" })
  end, "zone \"evil.example/x#\" is not a name such as ch-gva-2")
  t.ok(not tostring(err):find("api-evil", 1, true), tostring(err))
end)

t.test("sg.connect: the provider's own credential and scope names are known, others are not", function()
  t.raises(function() sg.connect("gcore", { api_key = "k-12345678", project_id = 1, regionid = 99 }) end,
    "sg.connect('gcore'): unknown option 'regionid'; did you mean 'region_id'?")
  t.raises(function() sg.connect("exoscale", { key = "EXOabc", secret = "s", zonee = "ch-gva-2" }) end,
    "did you mean 'zone'?")
  -- Gcore has no zone: another provider's option is refused, not silently ignored
  t.raises(function() sg.connect("gcore", { api_key = "k-12345678", project_id = 1, region_id = 9, zone = "x" }) end,
    "unknown option 'zone'")
  t.ok(sg.connect("exoscale", { key = "EXOabc", secret = "s", zone = "ch-gva-2" }))
end)

t.test("a profile section's keys are checked too: credentials by name or variable, TLS settings", function()
  local function with(section)
    return sg.connect("gcore", { profiles = { ["default.gcore"] = section } })
  end
  t.raises(function() with({ api_kye = "k-12345678", project_id = "1", region_id = "76" }) end,
    "[default.gcore]: unknown key 'api_kye'; did you mean 'api_key'?")
  t.raises(function() with({ api_key = "k-12345678", project_id = "1", region_id = "76", ca_fiel = "/x" }) end,
    "unknown key 'ca_fiel'; did you mean 'ca_file'?")
  t.ok(with({ GCORE_API_KEY = "k-12345678", project_id = "1", region_id = "76", allow_insecure_http = "false" }))
  -- a token pasted on the line after "api_key =" parses as a key of its own: never echoed
  local ok, err = pcall(with, { api_key = "", Z2NvcmUtcHJvZC1zZWNyZXQtdG9rZW4tMDAxMQ = "=", project_id = "1",
    region_id = "76" })
  t.ok(not ok)
  t.ok(tostring(err):find("unknown key (not shown: it does not look like a key name", 1, true), tostring(err))
  t.ok(not tostring(err):find("Z2NvcmUt", 1, true), "the credential is not in the message: " .. tostring(err))
end)

t.test("sg.all: its one option is limit", function()
  t.raises(function() sg.all({ function() end }, { limt = 2 }) end, "sg.all: unknown option 'limt'; did you mean 'limit'?")
  t.eq(sg.all({ function() return 1 end }, { limit = 1 }), { 1 })
end)

t.test("sg.plan and sg.snapshot say so when the first argument is not a connection", function()
  t.raises(function() sg.plan(nil, "web", {}) end, "sg.plan: expected a connection (sg.connect(provider, ...)) " ..
    "as the first argument, got nil")
  t.raises(function() sg.plan("gcore", "web", {}) end, 'got the string "gcore"')
  t.raises(function() sg.snapshot({ provider = "gcore" }, "web") end, "sg.snapshot: expected a connection")
end)

t.test("the error points at the caller's line", function()
  local ok, err = pcall(function()
    local r = sg.rollout({}, { { conn(), "web" } }, { modes = "additive" }) -- this line
    return r
  end)
  t.eq(ok, false)
  t.ok(err:find("test_optcheck.lua:%d+: sg.rollout: unknown option"), err)
end)

t.test("no guess when nothing is close; odd keys are named as they are", function()
  local err = t.raises(function() optcheck.check("f", { zzzzzz = 1 }, { "mode", "lossy" }) end,
    "f: unknown option 'zzzzzz' (known: lossy, mode)")
  t.ok(not err:find("did you mean", 1, true), err)
  t.raises(function() optcheck.check("f", { [1] = "x" }, { "mode" }) end, "f: unknown option 1 (known: mode)")
  optcheck.check("f", nil, { "mode" })
  optcheck.check("f", { mode = 1 }, { "mode" })
end)

t.run()
