-- Differential schema fuzz: bodies generated for every provider's write endpoints
-- (tests/schemas/fuzz_bodies.py: valid ones, and each with one field made invalid) are sent to the
-- emulator; its verdict (2xx accepted, 4xx refused) must equal the vendor schema's verdict
-- (python3-jsonschema) on the same body. A 5xx is always a disagreement.
-- SGRUN_FUZZ_PER_ROUTE (default 200, 12 routes) and SGRUN_FUZZ_SEED (default 1) size the run;
-- bench/schema_fuzz.sh runs more.
local t = require "testlib"
local http = require "_sg.http"
local cjson = require "cjson"
local exo = require "_sg.exoscale"

local SIM = assert(os.getenv("SGRUN_SIM_URL"), "SGRUN_SIM_URL is not set (run through with_sim.sh)")
local PER_ROUTE = math.tointeger(tonumber(os.getenv("SGRUN_FUZZ_PER_ROUTE") or "200"))
local SEED = math.tointeger(tonumber(os.getenv("SGRUN_FUZZ_SEED") or "1"))
local HERE = assert(arg and arg[0], "run as a script"):match("^(.*)/[^/]*$") or "."
local SCHEMAS = HERE .. "/../schemas"
local RESET_EVERY = 20 -- bodies per provider between resets, so rule limits are never reached

local URLS = {
  exoscale = assert(os.getenv("SGRUN_EXOSCALE_URL")), gcore = assert(os.getenv("SGRUN_GCORE_URL")),
  genesis = assert(os.getenv("SGRUN_GENESIS_URL")), barrack = assert(os.getenv("SGRUN_BARRACK_URL")),
  hostup = assert(os.getenv("SGRUN_HOSTUP_URL")),
}

local function auth_headers(provider, method, path, body)
  if provider == "exoscale" then
    return { Authorization = exo.sign { method = method, path = URLS.exoscale:match("^https?://[^/]+(.*)$") .. path,
      query = "", body = body, key = os.getenv("EXOSCALE_API_KEY"), secret = os.getenv("EXOSCALE_API_SECRET") } }
  elseif provider == "gcore" then
    return { Authorization = "APIKey " .. os.getenv("GCORE_API_KEY") }
  elseif provider == "hostup" then
    return { ["X-API-Key"] = os.getenv("HOSTUP_API_KEY") }
  end
  local token = provider == "genesis" and os.getenv("GENESISCLOUD_TOKEN") or os.getenv("BARRACK_API_KEY")
  return { Authorization = "Bearer " .. token }
end

---@return integer status, any decoded body, string raw body
local function send(provider, method, path, body)
  local h = auth_headers(provider, method, path, body or "")
  h["Content-Type"] = "application/json"
  local r = assert(http.request { method = method, url = URLS[provider] .. path, headers = h, body = body,
    timeout = 30 })
  local ok, decoded = pcall(cjson.decode, r.body ~= "" and r.body or "null")
  return r.status, ok and decoded or nil, r.body
end

local function control(method, path, body)
  local r = assert(http.request { method = method, url = SIM .. path, body = body and cjson.encode(body),
    headers = { ["Content-Type"] = "application/json" }, timeout = 10 })
  assert(r.status == 200, "control " .. path .. ": " .. r.body)
end

-- Ids the paths refer to, read from the emulator's seeded state after each reset.
local ids = {}
local function refresh(provider)
  if provider == "exoscale" then
    local _, b = send("exoscale", "GET", "/security-group")
    ids.exo_sg = b["security-groups"][1].id
  elseif provider == "gcore" then
    ids.gc_p, ids.gc_r = os.getenv("GCORE_CLOUD_PROJECT_ID"), os.getenv("GCORE_CLOUD_REGION_ID")
    local _, b = send("gcore", "GET", "/cloud/v1/securitygroups/" .. ids.gc_p .. "/" .. ids.gc_r)
    for _, g in ipairs(b.results) do
      if g.name == "web" then ids.gc_sg = g.id end
    end
  elseif provider == "genesis" then
    local _, b = send("genesis", "GET", "/security-groups")
    ids.gen_sg = b.security_groups[1].id
  elseif provider == "barrack" then
    ids.brk_inst = "BRK-100001A" -- the seeded running legacy instance
    local status, b = send("barrack", "POST", "/firewalls/", cjson.encode({ name = "fuzz", region = "US-1" }))
    assert(status == 200, "creating the fuzz firewall")
    ids.brk_fw = math.tointeger(b.firewall.id)
  elseif provider == "hostup" then
    ids.hu_vm = "10001" -- the seeded VM without rules
  end
end

t.test("differential fuzz: the emulator refuses exactly what the vendor schemas refuse", function()
  control("PUT", "/_sim/knobs", { task_duration_ms = 0, error_rate = 0, drop_rate = 0, task_error_rate = 0,
    rate_limit = 0, latency_ms = 0, jitter_ms = 0 })
  local cmd = string.format("/usr/bin/python3 '%s/fuzz_bodies.py' '%s' %d %d", SCHEMAS, SCHEMAS, SEED, PER_ROUTE)
  local gen = assert(io.popen(cmd, "r"))
  local sent, valid, disagreements, since_reset = 0, 0, {}, {}
  local per_provider = {}
  for line in gen:lines() do
    local c = cjson.decode(line)
    local p = c.provider
    if (since_reset[p] or RESET_EVERY) >= RESET_EVERY then
      control("POST", "/_sim/reset")
      for name in pairs(URLS) do refresh(name) end
      for name in pairs(since_reset) do since_reset[name] = 0 end
      since_reset[p] = 0
    end
    since_reset[p] = since_reset[p] + 1
    local path = c.path:gsub("{([%w_]+)}", function(k) return tostring(assert(ids[k], k)) end)
    local status, _, raw = send(p, c.method, path, c.body)
    sent = sent + 1
    per_provider[p] = (per_provider[p] or 0) + 1
    if c.valid then valid = valid + 1 end
    local accepted = status >= 200 and status < 300
    if status >= 500 or accepted ~= c.valid then
      disagreements[#disagreements + 1] = string.format("%s %s %s (%s): schema says %s, emulator %d %s\n    body %s",
        p, c.method, path, c.what, c.valid and "valid" or "invalid", status, raw:sub(1, 200), c.body:sub(1, 300))
    end
  end
  assert(gen:close(), "fuzz_bodies.py failed")
  local counts = {}
  for name, n in pairs(per_provider) do counts[#counts + 1] = name .. " " .. n end
  table.sort(counts)
  print(string.format("schema fuzz: %d bodies (%d valid, %d invalid; %s), %d disagreements",
    sent, valid, sent - valid, table.concat(counts, ", "), #disagreements))
  for i = 1, math.min(#disagreements, 40) do print("DISAGREE " .. disagreements[i]) end
  t.ok(sent >= 12 * PER_ROUTE, "every route generated its bodies")
  t.eq(#disagreements, 0, "disagreements")
end)

t.run()
