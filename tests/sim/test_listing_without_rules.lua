-- A listing that leaves the rules field out says nothing about the rules: neither Exoscale's nor
-- Gcore's schema requires it in a listed group. A group listed so is read alone; taken for empty,
-- it would lose every rule to an authoritative apply. The transport below strips the field from
-- list responses only, as such a server would send them.
local t = require "testlib"
local w = require "sim_wire"
local sg = require "sg"
local json = require "sg.json"
local http = require "_sg.http"

-- list requests: the path ends at the collection (no group id after it)
local LISTS = {
  exoscale = { pattern = "/security%-group$", items = "security-groups", rules = "rules" },
  gcore = { pattern = "/securitygroups/%d+/%d+$", items = "results", rules = "security_group_rules" },
}

local function stripping(provider)
  local spec = LISTS[provider]
  local gets = {}
  local o = { retry = { base = 0.05, cap = 1 } }
  o.transport = function(req)
    local resp, err, code = http.request(req)
    local path = req.url:match("^[^?]*")
    gets[#gets + 1] = req.method .. " " .. path
    if resp and resp.status == 200 and req.method == "GET" and path:match(spec.pattern) then
      local body = json.decode(resp.body)
      for _, g in ipairs(body[spec.items]) do g[spec.rules] = nil end
      resp.body = json.encode(body)
    end
    return resp, err, code
  end
  return sg.connect(provider, o), gets
end

for _, provider in ipairs { "exoscale", "gcore" } do
  t.test(provider .. ": a group listed without its rules is read alone", function()
    w.reset()
    local full = w.connect(provider)
    local name = "web"
    local want = sg.snapshot(full, name).rules
    t.ok(#want > 0, "the seeded group has rules")
    local conn, gets = stripping(provider)
    local got = sg.snapshot(conn, name).rules
    t.eq(w.keys(got), w.keys(want))
    local alone = 0
    for _, g in ipairs(gets) do if not g:match(LISTS[provider].pattern) and g:match("^GET ") then alone = alone + 1 end end
    t.ok(alone >= 1, "read alone: " .. table.concat(gets, ", "))
    -- and a plan against it removes nothing that is there
    local p = sg.plan(conn, name, want)
    t.eq(#p.remove, 0)
    t.eq(#p.add, 0)
  end)
end

t.run()
