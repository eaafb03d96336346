-- A roll-out that creates its Exoscale group: the plan starts from what Exoscale gives a new
-- group (the implicit open egress), so the group reads back as planned and the roll-out converges;
-- an authoritative set without egress rules is refused before the group is created.
local t = require "testlib"
local sg = require "sg"
local rule = require "sg.rule"

local SIM = assert(os.getenv("SGRUN_SIM_URL"), "run through with_sim.sh")

local function control(method, path, body)
  local res = assert(sg.http.request { method = method, url = SIM .. path,
    body = body and sg.json.encode(body), headers = { ["Content-Type"] = "application/json" } })
  assert(res.status < 300, res.body)
  return res.body ~= "" and sg.json.decode(res.body) or nil
end

local function reset()
  control("POST", "/_sim/reset")
  control("PUT", "/_sim/knobs", { task_duration_ms = 50, task_error_rate = 0, task_error_only = "",
    error_rate = 0, rate_limit = 0, drop_rate = 0 })
end

local exo = sg.connect("exoscale")

local function keys(rules)
  local out = {}
  for _, r in ipairs(rules) do out[#out + 1] = rule.key(r) end
  table.sort(out)
  return out
end

local SSH = rule.normalize { direction = "ingress", protocol = "tcp", port = 22, cidr = "198.51.100.0/24" }
local HTTPS_OUT = rule.normalize { direction = "egress", protocol = "tcp", port = 443, cidr = "0.0.0.0/0" }
local ANY_V4 = rule.normalize { direction = "egress", protocol = "any", cidr = "0.0.0.0/0" }
local ANY_V6 = rule.normalize { direction = "egress", protocol = "any", cidr = "::/0" }

-- The new group holds exactly what the plan kept and added.
local function reads_back_as_planned(rt, name)
  local group = assert(exo:group(name), "the group was created")
  local planned = {}
  for _, r in ipairs(rt.plan.keep) do planned[#planned + 1] = r end
  for _, r in ipairs(rt.plan.add) do planned[#planned + 1] = r end
  t.eq(keys(group.rules), keys(planned), "reads back as the plan said")
  return group
end

t.test("ingress and egress rules onto a missing group: converged, the implicit egress gives way", function()
  reset()
  local report = sg.rollout({ SSH, HTTPS_OUT }, { { exo, "new-with-egress" } })
  local rt = report.targets[1]
  t.ok(report.ok, tostring(report))
  t.eq(rt.status, "converged", tostring(report))
  t.eq(rt.create_group, true)
  t.eq(keys(rt.plan.remove), keys({ ANY_V4, ANY_V6 }), "the plan says the open egress goes")
  local group = reads_back_as_planned(rt, "new-with-egress")
  t.eq(keys(group.rules), keys({ SSH, HTTPS_OUT }))
end)

t.test("ingress rules only, additive: converged, the new group keeps Exoscale's open egress", function()
  reset()
  local report = sg.rollout({ SSH }, { { exo, "new-additive" } }, { mode = "additive" })
  local rt = report.targets[1]
  t.ok(report.ok, tostring(report))
  t.eq(rt.status, "converged", tostring(report))
  t.eq(keys(rt.plan.keep), keys({ ANY_V4, ANY_V6 }), "the plan shows the open egress it keeps")
  local group = reads_back_as_planned(rt, "new-additive")
  t.eq(keys(group.rules), keys({ SSH, ANY_V4, ANY_V6 }))
end)

t.test("ingress rules and explicit open egress, authoritative: converged", function()
  reset()
  local report = sg.rollout({ SSH, ANY_V4, ANY_V6 }, { { exo, "new-open" } })
  local rt = report.targets[1]
  t.eq(rt.status, "converged", tostring(report))
  reads_back_as_planned(rt, "new-open")
end)

t.test("ingress rules only, authoritative: refused before the group is created", function()
  reset()
  local report = sg.rollout({ SSH }, { { exo, "new-no-egress" } })
  local rt = report.targets[1]
  t.eq(report.ok, false)
  t.eq(rt.status, "failed", tostring(report))
  t.ok(tostring(rt.error):find("would end with no egress rule", 1, true), tostring(rt.error))
  t.eq(exo:group("new-no-egress"), nil, "no group created")
  -- sg.plan says the same before anything is sent
  t.raises(function() sg.plan(exo, "new-no-egress", { SSH }, { create = true }) end,
    "would end with no egress rule")
end)

t.run()
