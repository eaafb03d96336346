-- Exoscale and Gcore responses in shapes their schemas do not allow, answered by a canned
-- transport: a rule list that is not a list of rule objects is a bad response, never an empty
-- group (a snapshot of it would hold no rule, and restoring it would delete every rule).
local t = require "testlib"
local sg = require "sg"
local errors = require "sg.errors"

local CREDS = {
  exoscale = { key = "EXOtestkey0123456789", secret = "exo-secret-0123456789-SECRET" },
  gcore = { api_key = "gcore-key-0123456789-SECRET", project_id = 1, region_id = 76 },
}

-- A connection whose requests are answered from routes: {url pattern, JSON text, method = ...},
-- the first match wins; anything else is a 404.
local function conn(provider, routes)
  local opts = { base_url = "https://api.test/v2", retry = { base = 0.001, jitter = false },
    transport = function(req)
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

t.run()
