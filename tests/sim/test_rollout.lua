-- The neutral layer end to end against the emulator: a group snapshotted on Exoscale and rolled
-- out to Gcore, Genesis Cloud, Barrack and HostUp; a second roll-out changes nothing; a target
-- whose async work fails is restored while the others converge; 429s and 5xx are ridden out.
local t = require "testlib"
local sg = require "sg"
local codec = require "sg.codec"
local rule = require "sg.rule"

local SIM = assert(os.getenv("SGRUN_SIM_URL"), "run through with_sim.sh")

local function control(method, path, body)
  local res = assert(sg.http.request { method = method, url = SIM .. path,
    body = body and sg.json.encode(body), headers = { ["Content-Type"] = "application/json" } })
  assert(res.status < 300, res.body)
  return res.body ~= "" and sg.json.decode(res.body) or nil
end

local function reset(knobs)
  control("POST", "/_sim/reset")
  control("DELETE", "/_sim/log")
  local k = { task_duration_ms = 150, task_error_rate = 0, task_error_only = "", error_rate = 0,
    rate_limit = 0, drop_rate = 0 }
  for name, v in pairs(knobs or {}) do k[name] = v end
  control("PUT", "/_sim/knobs", k)
end

local function mutations()
  local n = 0
  for _, e in ipairs(control("GET", "/_sim/log").requests) do
    if e.method ~= "GET" and e.method ~= "HEAD" then n = n + 1 end
  end
  return n
end

local conns = {}
local function conn(provider)
  conns[provider] = conns[provider] or sg.connect(provider)
  return conns[provider]
end

local function targets()
  return { { conn("gcore"), "web" }, { conn("genesis"), "web" }, { conn("barrack"), "web" },
    { conn("hostup"), { vm = 10000 } } }
end

local function keyset(rules)
  local out = {}
  for _, r in ipairs(rules) do out[rule.key(r)] = true end
  return out
end

-- What each target should end with, and the source rules it cannot express exactly.
local function expected_for(provider, source_rules)
  local want, findings = {}, {}
  local c = codec.get(provider)
  for _, r in ipairs(source_rules) do
    local tr = c.translate(r)
    if tr.status ~= "exact" then findings[rule.key(r)] = tr.status end
    if tr.rule then want[rule.key(tr.rule)] = true end
  end
  return want, findings
end

t.test("Exoscale 'web' rolled out to four clouds ends with equal rule sets where expressible", function()
  reset()
  local snap = sg.snapshot(conn("exoscale"), "web")
  t.ok(#snap.rules >= 3, "the seeded group has rules")
  local report = sg.rollout(snap, targets(), { lossy = "allow" })
  t.ok(report.ok, tostring(report))
  for i, target in ipairs(targets()) do
    local rt = report.targets[i]
    t.eq(rt.provider, target[1].provider)
    t.ok(rt.status == "converged" or rt.status == "unchanged", rt.provider .. ": " .. rt.status)
    local want, findings = expected_for(rt.provider, snap.rules)
    local group = assert(target[1]:group(target[2]))
    t.eq(keyset(group.rules), want, rt.provider .. " holds exactly the translated rules")
    local reported = {}
    for _, f in ipairs(rt.findings) do reported[rule.key(f.rule)] = f.kind end
    t.eq(reported, findings, rt.provider .. " reports exactly what it could not express")
  end
  t.ok(tostring(report):find("converged", 1, true), "the report reads well")
  t.ok(sg.json.decode(report:to_json()).targets[1].provider == "gcore", "and has a JSON form")
end)

t.test("running the same roll-out twice changes nothing the second time", function()
  local snap = sg.snapshot(conn("exoscale"), "web")
  control("DELETE", "/_sim/log")
  local report = sg.rollout(snap, targets(), { lossy = "allow" })
  t.ok(report.ok, tostring(report))
  for _, rt in ipairs(report.targets) do t.eq(rt.status, "unchanged", rt.provider) end
  t.eq(mutations(), 0)
end)

t.test("without lossy = 'allow', untranslatable rules stop that target before it is touched", function()
  reset()
  local snap = sg.snapshot(conn("exoscale"), "web")
  control("DELETE", "/_sim/log")
  local report = sg.rollout(snap, { { conn("genesis"), "web" } })
  t.eq(report.ok, false)
  t.eq(report.targets[1].status, "failed")
  t.ok(#report.targets[1].findings > 0, "the findings are listed")
  t.eq(mutations(), 0)
end)

t.test("a target whose task ends in ERROR is restored while the others converge", function()
  reset({ task_error_rate = 1, task_error_only = "gcore" })
  local before = assert(conn("gcore"):group("web"))
  local snap = sg.snapshot(conn("exoscale"), "web")
  local report = sg.rollout(snap, { { conn("gcore"), "web" }, { conn("hostup"), { vm = 10000 } } },
    { lossy = "allow" })
  t.eq(report.ok, false)
  t.eq(report.targets[1].status, "rolled_back", tostring(report))
  t.ok(report.targets[1].error ~= nil, "the failure is reported")
  t.eq(report.targets[2].status, "converged", tostring(report))
  control("PUT", "/_sim/knobs", { task_error_rate = 0 })
  local after = assert(conn("gcore"):group("web"))
  t.eq(keyset(after.rules), keyset(before.rules), "gcore is back to its snapshot")
end)

t.test("with atomic = true a failure puts every touched target back", function()
  reset({ task_error_rate = 1, task_error_only = "gcore" })
  local hostup_before = assert(conn("hostup"):group({ vm = 10000 }))
  local snap = sg.snapshot(conn("exoscale"), "web")
  local report = sg.rollout(snap, { { conn("gcore"), "web" }, { conn("hostup"), { vm = 10000 } } },
    { lossy = "allow", atomic = true })
  t.eq(report.ok, false)
  t.eq(report.targets[2].status, "rolled_back", tostring(report))
  control("PUT", "/_sim/knobs", { task_error_rate = 0 })
  t.eq(keyset(assert(conn("hostup"):group({ vm = 10000 })).rules), keyset(hostup_before.rules))
end)

t.test("429s and 5xx are ridden out", function()
  reset({ rate_limit = 8, error_rate = 0.15 })
  local snap = sg.snapshot(conn("exoscale"), "web")
  local report = sg.rollout(snap, targets(), { lossy = "allow" })
  t.ok(report.ok, tostring(report))
  local statuses = {}
  for _, e in ipairs(control("GET", "/_sim/log").requests) do statuses[e.status] = true end
  t.ok(statuses[429] or statuses[503] or statuses[500] or statuses[502],
    "the emulator did answer with errors")
  control("PUT", "/_sim/knobs", { rate_limit = 0, error_rate = 0 })
end)

t.test("a plan is a value: sg.plan sends no write and prints a stable diff", function()
  reset()
  local snap = sg.snapshot(conn("exoscale"), "web")
  control("DELETE", "/_sim/log")
  local p1 = sg.plan(conn("gcore"), "web", snap, { lossy = "allow" })
  local p2 = sg.plan(conn("gcore"), "web", snap, { lossy = "allow" })
  t.eq(tostring(p1), tostring(p2))
  t.ok(tostring(p1):find("\n%+ "), tostring(p1))
  t.eq(mutations(), 0)
  local result = sg.apply(p1)
  t.ok(result.ok, tostring(result.error))
  t.ok(sg.plan(conn("gcore"), "web", snap, { lossy = "allow" }):empty(), "converged")
end)

t.test("snapshots round-trip through a file", function()
  local snap = sg.snapshot(conn("hostup"), { vm = 10000 })
  local path = os.tmpname()
  sg.save(snap, path)
  local back = sg.load(path)
  os.remove(path)
  t.eq(keyset(back.rules), keyset(snap.rules))
  t.eq(back.provider, "hostup")
  t.eq(#back.raw, #snap.raw)
end)

t.run()
