-- Every provider takes JSON bodies sent as Content-Type: application/json (exoscale.md §1.2,
-- gcore.md §1.4, genesis_barrack_hostup.md §1.1 and its Barrack and HostUp curl examples). Per
-- provider: a roll-out's writes through the client carry it and are accepted; the same request
-- sent again as another media type, or with none, is refused with 400 in the provider's error
-- shape and changes nothing.
local t = require "testlib"
local sg = require "sg"
local http = require "_sg.http"
local json = require "sg.json"
local rule = require "sg.rule"
local w = require "sim_wire"

-- The fields of each provider's error body (sim/sgsim/<provider>.lua, error_body); the recorded
-- traffic is also judged against the vendors' schemas (tests/schemas).
local ERROR_FIELDS = {
  exoscale = { "message" },
  gcore = { "exception_class", "message", "request_id" },
  genesis = { "code", "message" },
  barrack = { "success", "message", "request_id" },
  hostup = { "error", "message", "code", "requestId" },
}

-- libcurl sends application/x-www-form-urlencoded with a body unless told otherwise; an empty
-- value makes it send no Content-Type at all.
local WRONG = { "text/plain", "application/x-www-form-urlencoded", "" }

---The emulator's state as it serialises it (sorted keys): equal text, nothing changed.
local function state_text()
  local r = assert(http.request { method = "GET", url = w.SIM .. "/_sim/state", timeout = 10 })
  return r.body
end

-- What each roll-out writes to: a seeded group, or one it creates (one more write path).
local TARGETS = {
  exoscale = { ref = "web" },
  gcore = { ref = "web" },
  genesis = { ref = "content-type", create = true },
  barrack = { ref = "content-type", create = true },
  hostup = { ref = { vm = 10000 } },
}

local sent = {}

t.test("setup", function()
  w.reset()
  w.knobs({ task_duration_ms = 50, task_error_rate = 0, error_rate = 0, rate_limit = 0, drop_rate = 0,
    latency_ms = 0 })
end)

for i, name in ipairs(require "_sg.providers") do
  t.test(name .. ": a roll-out's writes carry Content-Type: application/json and are accepted", function()
    local conn, log = w.connect(name)
    local target = assert(TARGETS[name], name .. ": no target in TARGETS")
    local p = sg.plan(conn, target.ref, { rule.normalize { direction = "ingress", protocol = "tcp", port = 7100 + i,
      cidr = "0.0.0.0/0" } }, { mode = "additive", create = target.create })
    t.eq(#p.add, 1, name .. ": the plan adds the rule")
    local result = sg.apply(p)
    t.eq(result.ok, true, name .. ": " .. tostring(result.error))
    for _, e in ipairs(log) do
      if e.body then
        t.eq(e.headers["Content-Type"], "application/json", name .. " " .. e.method .. " " .. e.url)
        t.ok(e.status >= 200 and e.status < 300, name .. " " .. e.method .. " " .. e.url .. ": " .. e.status)
        sent[name] = e
      end
    end
    t.ok(sent[name], name .. ": the roll-out sent no body")
  end)

  t.test(name .. ": the same body as another media type is refused in the provider's shape", function()
    local e = assert(sent[name], name .. ": no write recorded by the previous test")
    for _, ct in ipairs(WRONG) do
      local headers = {}
      for k, v in pairs(e.headers) do headers[k] = v end
      headers["Content-Type"] = ct
      local before = state_text()
      local r = assert(http.request { method = e.method, url = e.url, headers = headers, body = e.body,
        timeout = 10 })
      local what = string.format("%s %s with Content-Type %q", name, e.method, ct)
      t.eq(r.status, 400, what .. ": " .. r.body)
      local body = json.decode(r.body)
      for _, field in ipairs(ERROR_FIELDS[name]) do t.ok(body[field] ~= nil, what .. ": no " .. field) end
      t.ok(tostring(body.message):find("Content-Type: application/json", 1, true), what .. ": " .. r.body)
      t.eq(state_text(), before, what .. ": the state changed")
    end
  end)
end

t.test("application/json with a charset, in any case, is JSON", function()
  local exo = sg.connect("exoscale", { transport = function(req)
    req.headers["Content-Type"] = "Application/JSON; charset=utf-8"
    return http.request(req)
  end })
  exo:wait(exo:create_security_group({ name = "charset-json" }))
  t.ok(exo:group("charset-json"), "the group was created")
end)

t.run()
