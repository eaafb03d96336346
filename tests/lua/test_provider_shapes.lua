-- Exoscale and Gcore responses in shapes their schemas do not allow, answered by a canned
-- transport: a rule list that is not a list of rule objects is a bad response, never an empty
-- group (a snapshot of it would hold no rule, and restoring it would delete every rule); an async
-- handle that names no operation or tasks, or a state none of the provider's, is a bad response
-- of the provider, never a misuse of conn:wait nor work taken as ended.
local t = require "testlib"
local sg = require "sg"
local errors = require "sg.errors"
local rule = require "sg.rule"

local CREDS = {
  exoscale = { key = "EXOtestkey0123456789", secret = "exo-secret-0123456789-SECRET" },
  gcore = { api_key = "gcore-key-0123456789-SECRET", project_id = 1, region_id = 76 },
}

-- A connection whose requests are answered from routes: {url pattern, JSON text, method = ...},
-- the first match wins; anything else is a 404.
local function conn(provider, routes, log)
  local opts = { base_url = "https://api.test/v2", retry = { base = 0.001, jitter = false },
    transport = function(req)
      if log then log[#log + 1] = req.method .. " " .. req.url end
      for _, r in ipairs(routes) do
        if req.url:find(r[1]) and (not r.method or r.method == req.method) then
          return { status = 200, headers = { ["content-type"] = "application/json" }, body = r[2] }
        end
      end
      return { status = 404, headers = {}, body = '{"message":"no route"}' }
    end }
  for k, v in pairs(CREDS[provider]) do opts[k] = v end
  return sg.connect(provider, opts)
end

-- The error of a read of group "web" whose rules field holds `rules` (JSON text); `alone` answers
-- the group's own read.
local function read_error(provider, rules, alone)
  local c
  if provider == "exoscale" then
    c = conn("exoscale", { { "/security%-group$", '{"security-groups":[{"id":"g1","name":"web"' ..
      (rules and (',"rules":' .. rules) or "") .. '}]}' }, { "/security%-group/g1$", alone or "{}" } })
  else
    c = conn("gcore", { { "/securitygroups/1/76%?", '{"count":1,"results":[{"id":"g1","name":"web"' ..
      (rules and (',"security_group_rules":' .. rules) or "") .. '}]}' },
      { "/securitygroups/1/76/g1$", alone or "{}" } })
  end
  local ok, err = pcall(sg.snapshot, c, "web")
  t.ok(not ok, provider .. " " .. tostring(rules) .. ": read as a group of " ..
    (ok and #err.rules or 0) .. " rules")
  return err
end

for _, provider in ipairs { "exoscale", "gcore" } do
  t.test(provider .. ": a rule list that is null, an object or holds a non-object is a bad response", function()
    for _, rules in ipairs { "null", "{}", '{"0":{"id":"r1"}}', "[null]", "[[]]", '"none"' } do
      local err = read_error(provider, rules)
      t.ok(errors.is(err) and err.code == "bad_response" and err.provider == provider, tostring(err))
      local text = tostring(err)
      t.ok(text:find("group web (g1): the rule list", 1, true) and
        text:find("reads no group from such a list", 1, true) and
        text:find("SGRUN_" .. provider:upper() .. "_URL", 1, true), text)
      t.ok(not text:find("SECRET", 1, true), "no secret: " .. text)
    end
  end)

  t.test(provider .. ": a group read alone whose rule list is null is a bad response too", function()
    local field = provider == "exoscale" and "rules" or "security_group_rules"
    local err = read_error(provider, nil, '{"id":"g1","name":"web","' .. field .. '":null}')
    t.ok(errors.is(err) and err.code == "bad_response", tostring(err))
    t.ok(tostring(err):find("as read alone) is null", 1, true), tostring(err))
  end)
end

-- conn:wait polls quickly here; nothing below depends on how long a wait takes
local FAST = { interval = 0.001, max_interval = 0.001 }
local EXO_RULE = { ["flow-direction"] = "ingress", protocol = "tcp", ["start-port"] = 22, ["end-port"] = 22,
  network = "10.0.0.0/8" }
local GCORE_RULE = { direction = "ingress", ethertype = "IPv4", protocol = "tcp", port_range_min = 22,
  port_range_max = 22, remote_ip_prefix = "10.0.0.0/8" }

-- Exoscale's add-rule answered with `answer` and the operation's re-read with `state` (JSON text).
local function exo_wait(answer, state)
  local c = conn("exoscale", { { "/rules$", answer, method = "POST" },
    { "/operation/op1$", '{"id":"op1","state":' .. (state or '"pending"') .. '}' } })
  local ok, err = pcall(function() return c:wait(c:add_rule_to_security_group("g1", EXO_RULE), FAST) end)
  t.ok(not ok, "the wait ended: " .. tostring(answer) .. " " .. tostring(state))
  return err
end

t.test("exoscale: an operation state none of Exoscale's is a retryable bad response, not a failure", function()
  for _, state in ipairs { '"running"', '"PENDING"', "null", "1" } do
    local err = exo_wait('{"id":"op1","state":"pending"}', state)
    t.ok(errors.is(err), tostring(err))
    t.eq({ err.provider, err.op, err.code, err.retryable }, { "exoscale", "wait", "bad_response", true }, state)
    t.ok(tostring(err):find("operation op1 has state", 1, true) and
      tostring(err):find("cannot tell whether it ended", 1, true), tostring(err))
  end
  -- the documented end states still end it
  t.eq(exo_wait('{"id":"op1","state":"pending"}', '"failure"').code, "failure")
end)

t.test("exoscale: an add-rule response that names no operation is the provider's bad response", function()
  for _, answer in ipairs { '{"id":5,"state":"pending"}', '{}', '{"id":"","state":"pending"}' } do
    local err = exo_wait(answer)
    t.ok(errors.is(err), tostring(err))
    t.eq({ err.provider, err.code }, { "exoscale", "bad_response" }, answer)
    t.ok(tostring(err):find("the response of add_rule_to_security_group names no operation", 1, true), tostring(err))
  end
end)

-- Gcore's create-rule answered with `answer` and every task's re-read with `state`.
local function gcore_wait(answer, state, log)
  local c = conn("gcore", { { "/g1/rules$", answer, method = "POST" },
    { "/tasks/", '{"id":"t1","state":' .. (state or '"RUNNING"') .. '}' },
    { "/securitygroups/1/76/g1$", '{"id":"g1","name":"web","security_group_rules":[]}' } }, log)
  return pcall(function() return c:wait(c:create_security_group_rule("g1", GCORE_RULE), FAST) end)
end

t.test("gcore: a create response whose tasks are not a list of task ids is the provider's bad response", function()
  for _, tasks in ipairs { "null", "{}", '{"a":"t1"}', "[5]", '[""]', '"t1"' } do
    local log = {}
    local ok, err = gcore_wait('{"tasks":' .. tasks .. '}', nil, log)
    t.ok(not ok and errors.is(err), tasks .. ": " .. tostring(err))
    t.eq({ err.provider, err.op, err.code }, { "gcore", "wait", "bad_response" }, tasks)
    t.ok(tostring(err):find("the response of create_security_group_rule has 'tasks'", 1, true), tostring(err))
    for _, l in ipairs(log) do t.ok(not l:find("/tasks/", 1, true), "no task polled: " .. l) end
  end
  local ok, err = gcore_wait('{}')
  t.ok(not ok and tostring(err):find("has 'tasks' missing", 1, true), tostring(err))
  -- an empty list is the schema's (no minimum): nothing to wait for
  t.ok((gcore_wait('{"tasks":[]}')), "an empty task list is done")
end)

t.test("gcore: a task state none of Gcore's is a retryable bad response", function()
  for _, state in ipairs { '"WEIRD"', "null" } do
    local ok, err = gcore_wait('{"tasks":["t1"]}', state)
    t.ok(not ok and errors.is(err), tostring(err))
    t.eq({ err.code, err.retryable }, { "bad_response", true }, state)
    t.ok(tostring(err):find("task t1 has state", 1, true), tostring(err))
  end
end)

-- A roll-out whose add-rule operation ends in a state none of Exoscale's: the operation may still
-- land, so the target is not restored over it (reported rolled back while the rule lands after);
-- its state is unknown and the journal kept for --recover.
t.test("exoscale: a roll-out whose operation state is unknown keeps its journal, not rolled back", function()
  local c = conn("exoscale", { { "/rules$", '{"id":"op1","state":"pending"}', method = "POST" },
    { "/operation/op1$", '{"id":"op1","state":"weird"}' },
    { "/security%-group$", '{"security-groups":[{"id":"g1","name":"unknown-state-web","rules":[' ..
      '{"id":"e1","flow-direction":"egress","protocol":"tcp","start-port":1,"end-port":65535,' ..
      '"network":"0.0.0.0/0"}]}]}' } })
  local desired = { rule.normalize { direction = "ingress", protocol = "tcp", port = 22, cidr = "10.0.0.0/8" },
    rule.normalize { direction = "egress", protocol = "tcp", cidr = "0.0.0.0/0" } }
  local report = sg.rollout(desired, { { c, "unknown-state-web" } })
  local target = report.targets[1]
  if report.journal_kept then os.remove(report.journal_kept) end
  t.ok(target.status ~= "rolled_back", "status " .. tostring(target.status))
  t.ok(report.journal_kept, "the journal is kept")
  t.ok(tostring(target.error):find("state is unknown", 1, true), tostring(target.error))
end)

t.run()
