-- sg.connect without a network: credential precedence (opts > environment > default profile;
-- opts > a chosen profile, the environment unread),
-- refusal of a profile file others can read, missing-credential messages, base URLs, argument
-- misuse, the auth headers each binding adds, error objects, the trace, retry helpers and the
-- LuaLS stubs. Requests go to a recording transport; environment cases run in a child sgrun.
local t = require "testlib"
local sg = require "sg"
local connect = require "sg.connect"
local errors = require "sg.errors"
local trace = require "sg.trace"
local retry = require "sg.retry"

local SGRUN = arg[-1]
local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local ROOT = HERE .. "/../.."
local TMP = os.tmpname()
os.remove(TMP)
assert(os.execute("mkdir -p " .. TMP))

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Runs `code` in a child sgrun with exactly the given environment (plus PATH); returns its
-- stdout+stderr and whether it succeeded.
local function child(env, code)
  local parts = { "env -i", "PATH=" .. shell_quote(os.getenv("PATH") or "/usr/bin:/bin"),
    "HOME=" .. shell_quote(TMP .. "/home") }
  local names = {}
  for k in pairs(env) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do parts[#parts + 1] = k .. "=" .. shell_quote(env[k]) end
  parts[#parts + 1] = shell_quote(SGRUN) .. " -e " .. shell_quote(code) .. " 2>&1"
  local p = assert(io.popen(table.concat(parts, " ")))
  local out = p:read("a")
  local ok, _, status = p:close()
  return out, ok, status
end

local function write_file(path, text, mode)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  assert(os.execute("chmod " .. mode .. " " .. shell_quote(path)))
end

-- A transport that records requests and answers `body` (200).
local function recorder(body, status)
  local log = {}
  return log, function(req)
    log[#log + 1] = req
    return { status = status or 200, headers = { ["content-type"] = "application/json" },
      body = body or "{}", time = 0 }
  end
end

-- Prints the Authorization header Gcore would send, in a child process.
local PRINT_AUTH = [[
local sg = require "sg"
local ok, err = pcall(function()
  local c = sg.connect("gcore", { %s transport = function(req)
    io.write(req.headers.Authorization, " ", req.url, "\n")
    return { status = 200, headers = {}, body = '{"count":0,"results":[]}' }
  end })
  c:list_security_groups()
end)
if not ok then io.write("ERROR ", tostring(err), "\n") end
]]

local PROFILE = TMP .. "/profiles"

t.test("setup: a private profile file", function()
  write_file(PROFILE, table.concat({
    "# sgrun profiles", "[default.gcore]", "api_key = prof-key-000000", "project_id = 7",
    "region_id = 8", "", "[work.gcore]", 'api_key = "work-key-000000"', "project_id = 9",
    "region_id = 10", "" }, "\n"), "600")
end)

t.test("opts beat the environment and the profile file", function()
  local out = child({ GCORE_API_KEY = "env-key-000000", GCORE_CLOUD_PROJECT_ID = "1",
    GCORE_CLOUD_REGION_ID = "2", SGRUN_PROFILES = PROFILE },
    PRINT_AUTH:format('api_key = "opt-key-000000", project_id = 3, region_id = 4,'))
  t.eq(out, "APIKey opt-key-000000 https://api.gcore.com/cloud/v1/securitygroups/3/4?limit=1000&offset=0\n")
end)

t.test("the environment beats the profile file", function()
  local out = child({ GCORE_API_KEY = "env-key-000000", GCORE_CLOUD_PROJECT_ID = "1",
    GCORE_CLOUD_REGION_ID = "2", SGRUN_PROFILES = PROFILE }, PRINT_AUTH:format(""))
  t.eq(out, "APIKey env-key-000000 https://api.gcore.com/cloud/v1/securitygroups/1/2?limit=1000&offset=0\n")
end)

t.test("a credential from the environment is sent without the whitespace around it", function()
  -- a Kubernetes Secret made from a file, or a systemd EnvironmentFile, ends it with a line break
  for _, tail in ipairs({ "\n", "\r\n", " \n", "\t" }) do
    local out = child({ GCORE_API_KEY = " env-key-000000" .. tail, GCORE_CLOUD_PROJECT_ID = "1\n",
      GCORE_CLOUD_REGION_ID = "2", SGRUN_PROFILES = PROFILE }, PRINT_AUTH:format(""))
    t.eq(out, "APIKey env-key-000000 https://api.gcore.com/cloud/v1/securitygroups/1/2?limit=1000&offset=0\n",
      string.format("tail %q", tail))
  end
  -- blank is unset: the profile file's value is used
  local out = child({ GCORE_API_KEY = "\n", GCORE_CLOUD_REGION_ID = "2", SGRUN_PROFILES = PROFILE },
    PRINT_AUTH:format(""))
  t.ok(out:find("APIKey prof-key-000000", 1, true), out)
end)

t.test("a control character inside a credential is a user error naming its place, never the value", function()
  -- not caught: sgrun prints the error as a script's user would see it
  local out, _, code = child({ GCORE_API_KEY = "4242$ctlSECRET\nsecondLINE\n", GCORE_CLOUD_PROJECT_ID = "1",
    GCORE_CLOUD_REGION_ID = "2", SGRUN_PROFILES = PROFILE }, [[require("sg").connect("gcore")]])
  t.eq(code, 2, "exit 2: " .. out)
  t.ok(out:find("sg.connect('gcore'): the environment variable GCORE_API_KEY holds a control character", 1, true), out)
  t.ok(out:find("set it to the credential alone", 1, true), out)
  t.ok(not out:find("ctlSECRET", 1, true) and not out:find("secondLINE", 1, true), "the value is shown: " .. out)
  t.ok(not out:find("traceback", 1, true), out)
  local tabbed = TMP .. "/tab-profiles"
  write_file(tabbed, "[default.gcore]\napi_key = tab\tSECRETkey\nproject_id = 1\nregion_id = 2\n", "600")
  out, _, code = child({ SGRUN_PROFILES = tabbed }, [[require("sg").connect("gcore")]])
  t.eq(code, 2, "exit 2: " .. out)
  t.ok(out:find("'api_key' under [default.gcore] in " .. tabbed .. " holds a control character", 1, true), out)
  t.ok(not out:find("SECRETkey", 1, true), "the value is shown: " .. out)
end)

t.test("the profile file fills what opts and environment leave out; opts.profile selects", function()
  local out = child({ GCORE_CLOUD_REGION_ID = "2", SGRUN_PROFILES = PROFILE }, PRINT_AUTH:format(""))
  t.eq(out, "APIKey prof-key-000000 https://api.gcore.com/cloud/v1/securitygroups/7/2?limit=1000&offset=0\n")
  out = child({ SGRUN_PROFILES = PROFILE }, PRINT_AUTH:format('profile = "work",'))
  t.eq(out, "APIKey work-key-000000 https://api.gcore.com/cloud/v1/securitygroups/9/10?limit=1000&offset=0\n")
end)

t.test("a chosen profile is the whole account: the environment is not read, nor mixed in", function()
  local env = { GCORE_API_KEY = "env-key-000000", GCORE_CLOUD_PROJECT_ID = "1", GCORE_CLOUD_REGION_ID = "2",
    SGRUN_PROFILES = PROFILE }
  local out = child(env, PRINT_AUTH:format('profile = "work",'))
  t.eq(out, "APIKey work-key-000000 https://api.gcore.com/cloud/v1/securitygroups/9/10?limit=1000&offset=0\n")
  -- the options still come first, and may complete the profile
  out = child(env, PRINT_AUTH:format('profile = "work", region_id = 4,'))
  t.eq(out, "APIKey work-key-000000 https://api.gcore.com/cloud/v1/securitygroups/9/4?limit=1000&offset=0\n")
  local part = TMP .. "/part-profiles"
  write_file(part, "[part.gcore]\napi_key = part-key-000000\nproject_id = 5\nregion_id =\n", "600")
  env.SGRUN_PROFILES = part
  out = child(env, PRINT_AUTH:format('profile = "part",'))
  t.eq(out, "ERROR sg.connect('gcore'): profile 'part' has no region_id: add 'region_id = ...' under " ..
    "[part.gcore] in " .. part .. " (or pass {region_id = ...}); GCORE_CLOUD_REGION_ID in the environment " ..
    "is not used with a profile chosen: a profile is one whole account\n")
  -- not caught: a user error, exit 2, no traceback, no value
  local _, code
  out, _, code = child(env, [[require("sg").connect("gcore", {profile = "none"})]])
  t.eq(code, 2, "exit 2: " .. out)
  t.ok(out:find("profile 'none' has no api_key: " .. part .. " has no section [none.gcore]", 1, true), out)
  t.ok(not out:find("traceback", 1, true) and not out:find("key-000000", 1, true), out)
  -- with no profile chosen, the environment still completes the default profile key by key
  env.SGRUN_PROFILES = PROFILE
  env.GCORE_API_KEY = nil
  out = child(env, PRINT_AUTH:format(""))
  t.eq(out, "APIKey prof-key-000000 https://api.gcore.com/cloud/v1/securitygroups/1/2?limit=1000&offset=0\n")
end)

t.test("the default profile path is ~/.config/sgrun/profiles", function()
  assert(os.execute("mkdir -p " .. shell_quote(TMP .. "/home/.config/sgrun")))
  write_file(TMP .. "/home/.config/sgrun/profiles", "[default.gcore]\napi_key=home-key-000000\nproject_id=1\nregion_id=1\n", "600")
  local out = child({}, PRINT_AUTH:format(""))
  t.ok(out:find("APIKey home-key-000000", 1, true), out)
end)

t.test("a profile file others can read is refused, saying chmod 600", function()
  local open = TMP .. "/open-profiles"
  write_file(open, "[default.gcore]\napi_key = leaked-key-000000\n", "644")
  local out = child({ SGRUN_PROFILES = open }, PRINT_AUTH:format(""))
  t.ok(out:find("chmod 600 " .. open, 1, true), out)
  t.ok(not out:find("leaked-key", 1, true), "the refusal must not show the file's content")
  write_file(open, "[default.gcore]\napi_key = leaked-key-000000\n", "640")
  out = child({ SGRUN_PROFILES = open }, PRINT_AUTH:format(""))
  t.ok(out:find("chmod 600", 1, true), "group-readable is refused too: " .. out)
end)

t.test("read_profiles returns every section; the profiles option stands in for the file", function()
  local out = child({ SGRUN_PROFILES = PROFILE }, [[
    local connect = require "sg.connect"
    local sections, path = connect.read_profiles()
    local names = {}
    for name in pairs(sections) do names[#names + 1] = name end
    table.sort(names)
    print(table.concat(names, " "), sections["work.gcore"].api_key, sections["default.gcore"].project_id,
      path == os.getenv("SGRUN_PROFILES"))
    local one = connect.read_profile("work", "gcore")
    print(one.api_key, one.region_id)]])
  t.eq(out, "default.gcore work.gcore\twork-key-000000\t7\ttrue\nwork-key-000000\t10\n")
  -- the file named by SGRUN_PROFILES is one others can read, which reading would refuse: the
  -- option's sections are used and the file is not read at all
  local open = TMP .. "/open-profiles-2"
  write_file(open, "[default.gcore]\napi_key = leaked-key-000000\n", "644")
  out = child({ SGRUN_PROFILES = open }, [[
    local sg = require "sg"
    local profiles = { ["lab.gcore"] = { api_key = "lab-key-000000", project_id = "5", region_id = "6",
      ca_file = "/lab/ca.pem" } }
    local c = sg.connect("gcore", { profile = "lab", profiles = profiles, transport = function(req)
      io.write(req.headers.Authorization, " ", req.url, " ", req.ca_file, "\n")
      return { status = 200, headers = {}, body = '{"count":0,"results":[]}' }
    end })
    c:list_security_groups()
    print(select(2, pcall(sg.connect, "gcore", { profiles = "lab" })))]])
  t.eq(out, "APIKey lab-key-000000 https://api.gcore.com/cloud/v1/securitygroups/5/6?limit=1000&offset=0 " ..
    "/lab/ca.pem\nsg.connect: profiles must be the sections sg.connect.read_profiles() returned\n")
end)

t.test("a missing credential names the environment variable and the alternatives", function()
  local out = child({ SGRUN_PROFILES = TMP .. "/none" }, PRINT_AUTH:format(""))
  t.ok(out:find("ERROR sg.connect('gcore'): no api_key", 1, true), out)
  t.ok(out:find("GCORE_API_KEY", 1, true) and out:find("[default.gcore]", 1, true), out)
  out = child({ SGRUN_PROFILES = TMP .. "/none" }, [[
    local ok, err = pcall(require("sg").connect, "exoscale", { key = "EXOk" })
    print(err)]])
  t.ok(out:find("EXOSCALE_API_SECRET", 1, true), out)
  out = child({}, [[print(select(2, pcall(require("sg").connect, "azure")))]])
  t.ok(out:find('unknown provider "azure"', 1, true) and out:find("hostup", 1, true), out)
end)

t.test("base URL: opts.base_url, then SGRUN_<PROVIDER>_URL, then the documented default", function()
  local code = [[
    local sg = require "sg"
    print(sg.connect("exoscale", { key = "k", secret = "s" }).base_url)
    print(sg.connect("exoscale", { key = "k", secret = "s", zone = "de-fra-1" }).base_url)
    print(sg.connect("hostup", { api_key = "k", base_url = "https://x.test/api/" }).base_url)
    print(sg.connect("genesis", { token = "k" }).base_url)
    print(sg.connect("barrack", { api_key = "k" }).base_url)]]
  local out = child({ SGRUN_PROFILES = TMP .. "/none" }, code)
  t.eq(out, table.concat({ "https://api-ch-gva-2.exoscale.com/v2", "https://api-de-fra-1.exoscale.com/v2",
    "https://x.test/api", "https://api.genesiscloud.com/compute/v1", "https://barrack.ai/api", "" }, "\n"))
  out = child({ SGRUN_GENESIS_URL = "http://127.0.0.1:9/genesis/compute/v1" },
    [[print(require("sg").connect("genesis", { token = "k" }).base_url)]])
  t.eq(out, "http://127.0.0.1:9/genesis/compute/v1\n")
end)

t.test("a connection prints no credential", function()
  local c = sg.connect("hostup", { api_key = "very-secret-key-1234", base_url = "https://x.test/api" })
  t.ok(not tostring(c):find("very-secret", 1, true))
  for k, v in pairs(c) do
    t.ok(not tostring(v):find("very-secret", 1, true), "field " .. tostring(k))
  end
end)

t.test("a credential spelt with JSON \\u escapes in a reply is scrubbed once decoded", function()
  local key = "4242_escapedkey0123456789abcdef"
  -- every fourth character as a \u escape: no 8 characters of the key stand together in the raw
  -- text, while the decoded string holds it whole
  local spelt = key:gsub("()(.)", function(i, c) return i % 4 == 0 and string.format("\\u%04x", c:byte()) or c end)
  local _, transport = recorder('{"count":1,"results":[{"id":"g1","name":"web","description":"echo ' .. spelt ..
    '","security_group_rules":[]}]}')
  local gc = sg.connect("gcore", { api_key = key, project_id = 1, region_id = 1, base_url = "https://x.test",
    transport = transport })
  local listed = gc:list_security_groups()
  local description = listed.results[1].description
  t.ok(not description:find(key:sub(2, 9), 1, true), description)
  t.eq(description, "echo [REDACTED]")
end)

t.test("a listing whose items are an object, not a list, is refused, not read as none", function()
  local _, transport = recorder('{"firewalls":{}}')
  local brk = sg.connect("barrack", { api_key = "btok", base_url = "https://x.test", transport = transport })
  local ok, err = pcall(brk.list_firewalls, brk)
  t.ok(not ok, "refused")
  t.ok(tostring(err):find("list response has no 'firewalls' list", 1, true), tostring(err))
end)

t.test("a listing whose server repeats a page is refused, not read as two groups of one", function()
  local log, transport = recorder('{"security_groups":[{"id":"id1","name":"web","rules":[]}],"total_count":200}')
  local gen = sg.connect("genesis", { token = "gtok", base_url = "https://x.test", page_size = 1,
    transport = transport })
  local ok, err = pcall(gen.list_security_groups, gen)
  t.ok(not ok)
  t.eq(#log, 2, "stopped at the first repeat")
  t.ok(tostring(err):find("the listing gave item id1 twice (again on page 2)", 1, true), tostring(err))
end)

t.test("an answer without a body says what it was: a redirect not followed, retries spent", function()
  local _, redirect = recorder("", 302)
  local gc = sg.connect("gcore", { api_key = "k", project_id = 1, region_id = 1, base_url = "https://x.test",
    transport = function(req)
      local resp = redirect(req)
      resp.headers.location = "https://elsewhere.test/"
      return resp
    end })
  local ok, err = pcall(gc.list_security_groups, gc)
  t.ok(not ok)
  t.eq(tostring(err), "gcore list_security_groups: HTTP 302 a redirect to https://elsewhere.test/, which " ..
    "sgrun does not follow: check the provider's base URL")
  local log, throttled = recorder("", 429)
  gc = sg.connect("gcore", { api_key = "k", project_id = 1, region_id = 1, base_url = "https://x.test",
    transport = throttled, retry = { attempts = 3, base = 0.001, cap = 0.001, jitter = false } })
  ok, err = pcall(gc.list_security_groups, gc)
  t.ok(not ok)
  t.eq(#log, 3)
  t.eq(tostring(err), "gcore list_security_groups: HTTP 429 (no body) (after 3 attempts: the provider kept " ..
    "refusing for too many requests; try again later, or send fewer at once)")
end)

t.test("each binding's auth hook adds its documented header", function()
  local cases = {
    { "gcore", { api_key = "4242_tok", project_id = 1, region_id = 2 }, "list_security_groups", {},
      "Authorization", "APIKey 4242_tok" },
    { "genesis", { token = "gtok" }, "get_security_group", { "sg1" }, "Authorization", "Bearer gtok" },
    { "barrack", { api_key = "btok" }, "get_firewall", { 5 }, "Authorization", "Bearer btok" },
    { "hostup", { api_key = "htok" }, "list_firewall_rules", { 10000 }, "X-API-Key", "htok" },
  }
  for _, c in ipairs(cases) do
    local log, transport = recorder('{"count":0,"results":[],"security_groups":[],"total_count":0}')
    local opts = { base_url = "https://x.test", transport = transport }
    for k, v in pairs(c[2]) do opts[k] = v end
    local conn = sg.connect(c[1], opts)
    conn[c[3]](conn, table.unpack(c[4]))
    t.eq(log[1].headers[c[5]], c[6], c[1])
    t.eq(log[1].headers.Accept, "application/json", c[1])
  end
end)

t.test("Exoscale requests are signed over the wire path, body and query, fresh every time", function()
  local log, transport = recorder('{"security-groups":[]}')
  local key, secret = "EXOxxxxxxxxxxxxxxxxxxxxxxxx", string.rep("X", 43)
  local exo = sg.connect("exoscale", { key = key, secret = secret,
    base_url = "https://api-ch-gva-2.exoscale.com/v2", transport = transport })
  exo:list_security_groups({ visibility = "public" })
  local h = log[1].headers.Authorization
  local expires = tonumber(h:match("expires=(%d+)"))
  t.ok(math.abs(expires - (os.time() + 600)) <= 5, "expires is now + 600 s")
  t.eq(h, sg.crypto.exoscale_sign { method = "GET", path = "/v2/security-group", query = "visibility=public",
    key = key, secret = secret, expires = expires })
  t.ok(h:find("signed-query-args=visibility", 1, true))
  -- the official vector A1 through sg.crypto.exoscale_sign
  t.eq(sg.crypto.exoscale_sign { method = "GET", path = "/v2/zone", key = key, secret = secret,
    expires = 3376684800 },
    "EXO2-HMAC-SHA256 credential=EXOxxxxxxxxxxxxxxxxxxxxxxxx,expires=3376684800," ..
    "signature=Ntbq/p0HVmA3Zg1HHY+Lq1vjFGi7HeMrrgXDS5jRNlY=")
  exo:add_external_source_to_security_group("a02baf5a-a3e4-49a0-857b-8a08d276c1c0", "192.0.2.0/24")
  t.eq(log[2].body, '{"cidr":"192.0.2.0/24"}')
  t.eq(log[2].url, "https://api-ch-gva-2.exoscale.com/v2/security-group/a02baf5a-a3e4-49a0-857b-8a08d276c1c0:add-source")
  t.eq(log[2].headers.Authorization, sg.crypto.exoscale_sign { method = "PUT",
    path = "/v2/security-group/a02baf5a-a3e4-49a0-857b-8a08d276c1c0:add-source",
    body = log[2].body, key = key, secret = secret,
    expires = tonumber(log[2].headers.Authorization:match("expires=(%d+)")) })
end)

t.test("misuse raises at once, before anything is sent", function()
  local log, transport = recorder()
  local gc = sg.connect("gcore", { api_key = "k", project_id = 1, region_id = 2,
    base_url = "https://x.test", transport = transport })
  t.raises(function() gc:get_security_group() end, "argument 1 (group_id) must be a string or an integer")
  t.raises(function() gc:get_security_group({}) end, "got table")
  t.raises(function() gc:create_security_group_rule("g") end, "argument 2 must be the request body")
  t.raises(function() gc:get_task("a", "b") end, "must be a query table")
  t.raises(function() gc:get_task("a", {}, 3) end, "too many arguments")
  t.raises(function() gc.get_task("a") end, "with ':'")
  t.raises(function() gc:wait({}, { timeout = -1 }) end, "timeout must be a positive number")
  t.raises(function() gc:wait({}, { deadline = 1 }) end, "unknown option 'deadline'")
  t.raises(function() sg.connect("gcore", { api_key = "k", project_id = 1, region_id = 1,
    retry = { tries = 3 } }) end, "unknown option 'tries'")
  -- a slip is named with what was meant, as every option check does
  t.raises(function() gc:wait({}, { timout = 1 }) end, "conn:wait: unknown option 'timout'; did you mean 'timeout'?")
  t.raises(function() sg.connect("gcore", { api_key = "k", project_id = 1, region_id = 1,
    retry = { atempts = 3 } }) end, "retry: unknown option 'atempts'; did you mean 'attempts'?")
  t.eq(#log, 0)
end)

t.test("a page_size above the provider's documented maximum is refused at connect", function()
  local log, transport = recorder('{"security_groups":[],"total_count":0,"page":1,"per_page":100}')
  t.raises(function() sg.connect("genesis", { token = "g", base_url = "https://x.test", page_size = 500,
    transport = transport }) end, "page_size 500 is more than genesis allows (at most 100 per page): use 1 to 100")
  t.raises(function() sg.connect("gcore", { api_key = "k", project_id = 1, region_id = 1, page_size = 1001,
    base_url = "https://x.test", transport = transport }) end, "at most 1000 per page")
  t.eq(#log, 0)
  local gen = sg.connect("genesis", { token = "g", base_url = "https://x.test", page_size = 100,
    transport = transport })
  gen:list_security_groups()
  t.ok(log[1].url:find("per_page=100", 1, true), log[1].url)
end)

t.test("bare body values are wrapped by the endpoint's body_key", function()
  local log, transport = recorder()
  local gen = sg.connect("genesis", { token = "k", base_url = "https://x.test", transport = transport })
  gen:attach_security_group("inst-1", "sg-1")
  gen:detach_security_group("inst-1", "sg-2")
  t.eq(log[1].body, '{"security_groups":{"attach":"sg-1"}}')
  t.eq(log[2].body, '{"security_groups":{"detach":"sg-2"}}')
  t.eq({ log[1].method, log[1].url }, { "PATCH", "https://x.test/instances/inst-1" })
  local brk = sg.connect("barrack", { api_key = "k", base_url = "https://x.test", transport = transport })
  brk:attach_firewall_to_instances(3, {})
  t.eq(log[3].body, '{"instance_ids":[]}')
end)

t.test("path and query values are percent-encoded", function()
  local log, transport = recorder()
  local hu = sg.connect("hostup", { api_key = "k", base_url = "https://x.test/api", transport = transport })
  hu:delete_firewall_rule(10000, 3)
  t.eq(log[1].url, "https://x.test/api/vm/10000/firewall?pos=3")
  hu:list_firewall_rules("a b/c", { q = "x&y" })
  t.eq(log[2].url, "https://x.test/api/vm/a%20b%2Fc/firewall?q=x%26y")
end)

t.test("error objects: fields, __tostring, secrets scrubbed, prefixes too", function()
  local def = connect.describe("gcore")
  local e = errors.from_response(def, "get_security_group", { status = 401, headers = {},
    body = '{"exception_class":"token_not_valid","message":"Bad permanent token: 4242_sgrunsim","request_id":"r1"}' },
    { "4242_sgrunsimgcoredemo" })
  t.eq({ e.provider, e.op, e.status, e.code, e.request_id, e.retryable },
    { "gcore", "get_security_group", 401, "token_not_valid", "r1", false })
  t.eq(e.message, "Bad permanent token: [REDACTED]")
  t.eq(tostring(e), "gcore get_security_group: HTTP 401 [token_not_valid] Bad permanent token: [REDACTED] (request id r1)")
  t.ok(errors.is(e))
  local e2 = errors.from_response(connect.describe("hostup"), "x", { status = 503, headers = {}, body = "<html>" })
  t.eq({ e2.message, e2.retryable }, { "<html>", true })
end)

t.test("the trace redacts credential headers and secret values", function()
  local text = trace.format("hostup", "add_firewall_rule",
    { method = "POST", url = "https://x.test/api/vm/1/firewall?k=topsecret-123",
      headers = { ["X-API-Key"] = "topsecret-123", Accept = "application/json" },
      body = '{"comment":"topsecret-123"}' },
    { status = 200, headers = { ["x-api-key"] = "topsecret-123" }, body = "{}", time = 0.01 }, nil,
    { redact = connect.describe("hostup").redact, secrets = { "topsecret-123" } })
  t.ok(not text:find("topsecret", 1, true), text)
  t.ok(text:find("X-API-Key: [REDACTED]", 1, true), text)
  t.ok(text:find("> POST https://x.test/api/vm/1/firewall", 1, true), text)
end)

t.test("retry helpers: Retry-After forms, capped backoff, classification", function()
  t.eq(retry.parse_retry_after("3"), 3)
  t.eq(retry.parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", 1445412480), 10)
  t.eq(retry.parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", 1445412500), 0)
  t.eq(retry.parse_retry_after("soon"), nil)
  local p = retry.policy({ base = 1, cap = 4, jitter = false })
  t.eq({ retry.backoff(p, 1), retry.backoff(p, 2), retry.backoff(p, 3), retry.backoff(p, 9) }, { 1, 2, 4, 4 })
  t.eq({ retry.classify({ status = 429, headers = { ["retry-after"] = "2" } }) }, { true, false, 2 })
  t.eq({ retry.classify({ status = 503, headers = {} }) }, { true, true })
  t.eq({ retry.classify({ status = 501, headers = {} }) }, { false, false })
  t.eq({ retry.classify(nil, "connect") }, { true, false })
  t.eq({ retry.classify(nil, "timeout") }, { true, true })
  t.eq({ retry.classify(nil, "dry_run") }, { false, false })
end)

t.test("a non-idempotent call is not re-sent after a possibly delivered attempt", function()
  local n = 0
  local hu = sg.connect("hostup", { api_key = "k", base_url = "https://x.test/api",
    retry = { base = 0.01, jitter = false }, transport = function()
      n = n + 1
      return nil, "connection closed", "closed"
    end })
  local err = t.raises(function() hu:delete_firewall_rule(1, 0) end, "not re-sent")
  t.eq({ err.code, err.maybe_applied, n }, { "closed", true, 1 })
  -- a read is retried up to the attempt bound
  n = 0
  err = t.raises(function() hu:list_firewall_rules(1) end, "after 5 attempts")
  t.eq({ err.code, err.retryable, n }, { "closed", true, 5 })
end)

t.test("max_connections reaches the transport and is checked", function()
  local log, transport = recorder('{"security_group": {"id": "a"}}')
  local gen = sg.connect("genesis", { token = "k", base_url = "https://x.test", transport = transport,
    max_connections = 6 })
  gen:get_security_group("a")
  t.eq(log[1].max_connections, 6)
  for _, bad in ipairs({ 0, 2.5, "4", 100001 }) do
    t.raises(function() sg.connect("genesis", { token = "k", max_connections = bad }) end,
      "max_connections must be an integer")
  end
end)

t.test("a response that is not JSON, or too large, is a clear error", function()
  local _, transport = recorder("<html>gateway</html>")
  local gen = sg.connect("genesis", { token = "k", base_url = "https://x.test", transport = transport })
  local err = t.raises(function() gen:get_security_group("a") end, "the response is not JSON")
  t.eq({ err.code, err.status }, { "bad_response", 200 })
  local big = sg.connect("genesis", { token = "k", base_url = "https://x.test", transport = function()
    return nil, "response body larger than the 10 byte limit (max_size)", "too_large"
  end })
  err = t.raises(function() big:get_security_group("a") end, "max_size")
  t.eq({ err.code, err.retryable }, { "too_large", false })
  local dry = sg.connect("hostup", { api_key = "k", base_url = "https://x.test", transport = function()
    return nil, "dry run: POST https://x.test was not sent", "dry_run"
  end })
  err = t.raises(function() dry:add_firewall_rule(1, {}) end, "--dry-run")
  t.eq(err.code, "dry_run")
end)

t.test("the LuaLS stubs are current: generated from the endpoint tables", function()
  local f = assert(io.open(ROOT .. "/stdlib/meta/sg_providers.lua"))
  local text = f:read("a")
  f:close()
  t.ok(text == connect.stubs(), "stdlib/meta/sg_providers.lua is stale; regenerate: " ..
    "sgrun -e 'io.write(require(\"sg.connect\").stubs())' > stdlib/meta/sg_providers.lua")
  t.ok(text:match("^%-%-%-@meta"))
  for _, name in ipairs(connect.providers()) do
    local cls = name:gsub("^%l", string.upper) .. "Connection"
    for _, ep in ipairs(connect.describe(name).endpoints) do
      t.ok(text:find("function " .. cls .. ":" .. ep.name .. "(", 1, true), name .. ":" .. ep.name)
    end
  end
end)

t.test("cleanup", function()
  os.execute("rm -rf " .. shell_quote(TMP))
end)

t.test("a credential echoed in a successful reply is scrubbed before anything can print it", function()
  local token = "gtok-secret-0123456789abcdef"
  local body = sg.json.encode { security_groups = { { id = "sg1", name = "web",
    description = "key " .. token, rules = { { protocol = "tcp", description = token:upper() } } } },
    total_count = 1 }
  local _, transport = recorder(body)
  local conn = sg.connect("genesis", { token = token, base_url = "https://x.test", transport = transport })
  local text = sg.json.encode(conn:list_security_groups())
  t.ok(not text:find(token, 1, true) and not text:find(token:upper(), 1, true), text)
  t.ok(text:find("key [REDACTED]", 1, true), text)
end)

t.test("a rule the provider sent that cannot be read is the provider's error, not a bug's traceback", function()
  local body = sg.json.encode { security_groups = { { id = "sg1", name = "web",
    rules = { { direction = "sideways", protocol = "tcp" } } } },
    total_count = 1 }
  local _, transport = recorder(body)
  local conn = sg.connect("genesis", { token = "gtok", base_url = "https://x.test", transport = transport })
  local ok, err = pcall(sg.snapshot, conn, "web")
  t.ok(not ok, "refused")
  t.ok(require("sg.errors").is(err), "an sg.Error: " .. tostring(err))
  t.eq({ err.provider, err.code }, { "genesis", "unreadable_rule" })
  t.ok(tostring(err):find("rule 1 cannot be read", 1, true), tostring(err))
end)

t.test("a server that never stops sending full pages ends in an error, not in memory", function()
  -- every page new items (a page sent again is refused sooner, see above)
  local log = {}
  local function transport(req)
    log[#log + 1] = req
    local groups = {}
    for i = 1, 100 do groups[i] = { id = "sg" .. #log .. "-" .. i, name = "g" .. i, rules = {} } end
    return { status = 200, headers = { ["content-type"] = "application/json" },
      body = sg.json.encode { security_groups = groups, total_count = 1e12 }, time = 0 }
  end
  local conn = sg.connect("genesis", { token = "gtok", base_url = "https://x.test", transport = transport })
  local ok, err = pcall(conn.list_security_groups, conn)
  t.ok(not ok, "refused")
  t.eq(err.code, "bad_response")
  t.ok(tostring(err):find("keeps sending full pages", 1, true), tostring(err))
  t.eq(#log, 1000, "stopped after 100,000 items")
end)

t.run()
