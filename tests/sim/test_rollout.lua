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
  -- the journals earlier cases kept name groups of the old emulator (see sim_wire.reset)
  for _, path in ipairs(require("sg.journal").list()) do os.remove(path) end
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

-- every emulated cloud but the source's own, at its demo group
local function targets()
  local out = {}
  for _, name in ipairs(require("sg.connect").providers()) do
    if name ~= "exoscale" then
      local _, ref = require("sg.cli").parse_target(name .. ":" .. require("sgsim." .. name).demo_target)
      out[#out + 1] = { conn(name), ref }
    end
  end
  return out
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
  t.ok(sg.json.decode(report:to_json()).targets[1].provider == report.targets[1].provider, "and has a JSON form")
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

t.test("a target its provider would refuse at apply is refused at plan: the dry run says so, atomic writes nothing", function()
  -- HostUp's rules have no egress, and an Exoscale group left without egress rules lets all
  -- egress out: Exoscale refuses that, and said so only when writing, after the dry run said ok
  reset()
  local snap = sg.snapshot(conn("hostup"), { vm = 10000 })
  local targets_ = { { conn("exoscale"), "web" }, { conn("gcore"), "web" } }
  local preview = sg.rollout(snap, targets_, { lossy = "allow", atomic = true, dry_run = true })
  t.eq(preview.ok, false, tostring(preview))
  t.ok(tostring(preview.targets[1].error):find("no egress rule", 1, true), tostring(preview))
  local report = sg.rollout(snap, targets_, { lossy = "allow", atomic = true })
  t.eq(report.ok, false, tostring(report))
  t.ok(tostring(report.targets[1].error):find("no egress rule", 1, true), tostring(report))
  t.eq(mutations(), 0, "the atomic roll-out stopped before touching any")
end)

t.test("a group whose creation was refused is not reported as created and deleted again", function()
  reset()
  local refusing = sg.connect("gcore", { retry = { attempts = 1 }, transport = function(req)
    if req.method == "POST" then return { status = 400, headers = {}, body = '{"message":"refused by the test"}' } end
    return sg.http.request(req)
  end })
  local ssh = rule.normalize { direction = "ingress", protocol = "tcp", port = 22, cidr = "198.51.100.0/24" }
  local report = sg.rollout({ ssh }, { { refusing, "never-made" } }, { create = true })
  t.eq(report.ok, false, tostring(report))
  t.ok(not tostring(report):find("created group", 1, true), tostring(report))
  t.eq(report.targets[1].create_group, false, tostring(report))
end)

-- A full disk under the journal once writes are under way (tests/e2e/test_disk_full covers a full
-- one from the start): the journal's records fail where a full disk would make them fail.
t.test("a journal record that cannot be written mid-run: that target is restored, the report is whole", function()
  reset()
  local journal, errors = require "sg.journal", require "sg.errors"
  local before = assert(conn("gcore"):group("web"))
  local real_start = journal.start
  local path
  journal.start = function(...)
    local j = real_start(...)
    path = j.path
    local real_record = j.record
    j.record = function(self, rec)
      if (rec.ev == "written" and rec.target == 1) or rec.ev == "end" then
        errors.raise_local("roll-out journal " .. self.path .. ": write failed: No space left on device")
      end
      return real_record(self, rec)
    end
    return j
  end
  local snap = sg.snapshot(conn("exoscale"), "web")
  local ok, report = pcall(sg.rollout, snap, { { conn("gcore"), "web" }, { conn("hostup"), { vm = 10000 } } },
    { lossy = "allow" })
  journal.start = real_start
  t.ok(ok, "the roll-out returns its report: " .. tostring(report))
  t.eq(report.ok, false)
  t.eq(report.targets[1].status, "rolled_back", tostring(report))
  t.ok(tostring(report.targets[1].error):find("No space left on device", 1, true), tostring(report))
  t.eq(report.targets[2].status, "converged", tostring(report))
  t.eq(keyset(assert(conn("gcore"):group("web")).rules), keyset(before.rules), "gcore is back to its snapshot")
  t.eq(io.open(path), nil, "no journal is left, though its end record could not be written")
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

-- A connection whose writes start failing (400, not retried) once `broken()` says so.
local function breakable(provider, broken, after)
  return sg.connect(provider, { retry = { attempts = 2, base = 0.01, cap = 0.05 }, transport = function(req)
    if req.method ~= "GET" and broken(req) then
      return { status = 400, headers = {}, body = '{"message":"refused by the test"}' }
    end
    local resp, err, code = sg.http.request(req)
    if after then after(req, resp) end
    return resp, err, code
  end })
end

local SSH = rule.normalize { direction = "ingress", protocol = "tcp", port = 22, cidr = "198.51.100.0/24" }
-- Exoscale refuses to leave a group without egress rules
local EXO = { SSH, rule.normalize { direction = "egress", protocol = "any", cidr = "0.0.0.0/0" },
  rule.normalize { direction = "egress", protocol = "any", cidr = "::/0" } }

t.test("a rollback that fails is contained: the report names every rule it could not put back", function()
  reset()
  local deleted, restoring = false, false
  -- HostUp deletes one rule at a time: the second delete fails, and so does every restoring write
  local hu = breakable("hostup", function(req) return restoring or (req.method == "DELETE" and deleted) end,
    function(req, resp) if req.method == "DELETE" and resp and resp.status < 300 then deleted = true end end)
  local before = assert(hu:group({ vm = 10000 }))
  local events = {}
  local report = sg.rollout(EXO, { { hu, { vm = 10000 } }, { conn("exoscale"), "web" } }, {
    lossy = "allow", restore_deadline = 1,
    on_progress = function(ev)
      events[#events + 1] = ev
      if ev.step == "restoring" then restoring = true end
    end })
  t.eq(report.ok, false)
  local rt = report.targets[1]
  t.eq(rt.status, "failed", tostring(report))
  t.eq(report.targets[2].status, "converged", tostring(report))
  -- what the report says matches what the group holds
  local after = assert(conn("hostup"):group({ vm = 10000 }))
  local missing = {}
  for k, r in pairs(keyset(before.rules)) do
    if not keyset(after.rules)[k] then missing[k] = r end
  end
  t.ok(next(missing) ~= nil, "the test removed a rule before breaking: " .. tostring(report))
  t.eq(keyset(rt.not_restored), missing, tostring(report))
  t.eq(keyset(rt.changes.remove), missing)
  t.ok(tostring(report):find("not restored", 1, true), tostring(report))
  local steps = {}
  for _, ev in ipairs(events) do if ev.target == 1 then steps[ev.step] = ev.status or true end end
  t.eq(steps.done, "failed")
  t.ok(steps.reading and steps.planning and steps.applying and steps.restoring, "progress events")
end)

t.test("a target whose read-back fails after its apply went through fails the report", function()
  reset()
  -- every read fails once the roll-out verifies: the apply went through, its result is unknown
  local verifying = false
  local gen = sg.connect("genesis", { retry = { attempts = 1 }, transport = function(req)
    if req.method == "GET" and verifying then
      return { status = 400, headers = {}, body = '{"code":"bad","message":"refused by the test"}' }
    end
    return sg.http.request(req)
  end })
  local report = sg.rollout(EXO, { { conn("exoscale"), "web" }, { gen, "web" } }, { lossy = "allow",
    on_progress = function(ev) if ev.target == 2 and ev.step == "verifying" then verifying = true end end })
  t.eq(report.targets[2].status, "failed", tostring(report))
  t.ok(tostring(report.targets[2].error):find("state is unknown", 1, true), tostring(report))
  t.eq(report.ok, false, "a failed target fails the report")
end)

t.test("a target rolled back leaves no group it created; the other target stays converged", function()
  reset()
  local exo = breakable("exoscale", function(req) return req.method == "POST" and req.url:find("/rules", 1, true) end)
  local report = sg.rollout(EXO, { { exo, "made-by-rollout" }, { conn("hostup"), { vm = 10000 } } },
    { lossy = "allow" })
  t.eq(report.ok, false)
  t.eq(report.targets[1].status, "rolled_back", tostring(report))
  t.eq(report.targets[1].create_group, true)
  t.eq(report.targets[2].status, "converged", tostring(report))
  t.eq(conn("exoscale"):group("made-by-rollout"), nil, "the created group is deleted again")
end)

t.test("dry run plans; write_plan/read_plan apply exactly that plan and refuse a changed target", function()
  reset()
  local ro = require "sg.rollout"
  control("DELETE", "/_sim/log")
  local dry = sg.rollout({ SSH }, { { conn("gcore"), "web" }, { conn("genesis"), "new-group" } },
    { lossy = "allow", dry_run = true })
  t.eq(mutations(), 0)
  t.eq(dry.targets[1].status, "planned")
  t.eq(dry.targets[2].create_group, true)
  t.eq(#dry.targets[1].changes.add, 1)
  local path = os.tmpname()
  ro.write_plan(dry, path)
  -- made for another account (the same rules there would match the fingerprint): refused, and
  -- the plan's other target is not applied either, since a plan is applied whole or not at all
  local elsewhere = ro.read_plan(path)
  elsewhere.targets[1].account = "0123456789abcdef"
  local refused = sg.rollout(nil, { { conn("gcore"), "web" }, { conn("genesis"), "new-group" } },
    { plan_file = elsewhere })
  t.eq(refused.ok, false)
  t.ok(tostring(refused.targets[1].error):find("the plan was made for another gcore account", 1, true),
    tostring(refused.targets[1].error))
  t.eq(refused.targets[2].status, "unchanged", tostring(refused))
  t.ok(tostring(refused.targets[2].error):find("applied whole or not at all", 1, true), tostring(refused))
  t.eq(mutations(), 0)
  local plan = ro.read_plan(path)
  local report = sg.rollout(nil, { { conn("gcore"), "web" }, { conn("genesis"), "new-group" } },
    { plan_file = plan })
  t.ok(report.ok, tostring(report))
  t.eq(keyset(assert(conn("gcore"):group("web")).rules), keyset({ SSH }))
  -- the same plan again: gcore now differs from what was planned against
  report = sg.rollout(nil, { { conn("gcore"), "web" }, { conn("genesis"), "new-group" } },
    { plan_file = plan })
  t.eq(report.ok, false)
  t.eq(report.targets[1].status, "failed")
  t.ok(tostring(report.targets[1].error):find("gcore web changed since the plan", 1, true),
    tostring(report.targets[1].error))
  os.remove(path)
end)

t.test("one group named twice, by name and by id, is written once", function()
  reset()
  local gc = conn("gcore")
  local id = assert(gc:group("web")).id
  control("DELETE", "/_sim/log")
  local report = sg.rollout({ SSH }, { { gc, "web" }, { conn("gcore"), id } }, { lossy = "allow" })
  t.eq(report.targets[1].status, "converged", tostring(report))
  t.eq(report.targets[2].status, "failed", tostring(report))
  t.ok(tostring(report.targets[2].error):find("is the group target 1 (web) names", 1, true),
    tostring(report.targets[2].error))
  t.eq(mutations(), 1, "one PATCH of the group, not two")
  t.eq(keyset(assert(gc:group("web")).rules), keyset({ SSH }))
end)

t.test("a plan file naming one group twice, by name and by id, is refused whole (exit 2)", function()
  reset()
  local ro = require "sg.rollout"
  local gc = conn("gcore")
  local id = assert(gc:group("web")).id
  local dry = sg.rollout({ SSH }, { { gc, "web" } }, { lossy = "allow", dry_run = true })
  local path = os.tmpname()
  ro.write_plan(dry, path)
  -- the hand-edit: the same target again, naming the group by its id
  local doc = sg.json.decode(assert(io.open(path)):read("a"))
  local copy = {}
  for k, v in pairs(doc.targets[1]) do copy[k] = v end
  copy.group = id
  doc.targets[2] = copy
  local f = assert(io.open(path, "w"))
  f:write(sg.json.encode(doc))
  f:close()
  control("DELETE", "/_sim/log")
  local ok, err = pcall(sg.rollout, nil, { { gc, "web" }, { conn("gcore"), id } }, { plan_file = ro.read_plan(path) })
  t.ok(not ok, "refused")
  t.eq(type(err) == "table" and err.exit_code, 2, tostring(err))
  t.ok(tostring(err):find("the plan file names one group twice: targets 1 (gcore web) and 2", 1, true), tostring(err))
  t.eq(mutations(), 0)
  os.remove(path)
end)

t.test("read_plan refuses a damaged plan, naming the place and what to do", function()
  local ro = require "sg.rollout"
  local F = string.format("%q", ro.PLAN_FORMAT)
  local function target(extra)
    return '{"provider":"gcore","account":"a","group":"web","fingerprint":"f"' .. extra .. '}'
  end
  local cases = {
    { '"x"', "'targets' is not a list" },
    { '{"a":1}', "'targets' is not a list" },
    { '[]', "'targets' is not a list" },
    { '[1]', "target 1 is incomplete" },
    { '[' .. target("") .. ',"x"]', "target 2 is incomplete" },
    { '[{"provider":"gcore","account":"a","group":{},"fingerprint":"f"}]', "target 1 is incomplete" },
    { '[{"provider":"gcore","account":"a","group":"","fingerprint":"f"}]', "target 1 is incomplete" },
    { '[{"provider":"gcore","group":"web","fingerprint":"f"}]', "target 1 is incomplete (a provider, an account" },
    -- refused before any write, not at that target's turn once the others are written
    { '[{"provider":"hostup","account":"a","group":"web","fingerprint":"f"}]', 'target 1: hostup: group reference "web"' },
    { '[{"provider":"nocloud","account":"a","group":"web","fingerprint":"f"}]', "target 1: nocloud is not a provider" },
    { '[' .. target("") .. ',' .. target("") .. ']', "target 2 names gcore web again (as target 1)" },
    { '[' .. target(',"add":"x"') .. ']', "target 1: 'add' is not a list of rules" },
    { '[' .. target(',"remove":{"a":1}') .. ']', "target 1: 'remove' is not a list of rules" },
    { '[' .. target(',"create_group":"yes"') .. ']', "target 1: 'create_group' is not true or false" },
  }
  local path = os.tmpname()
  for _, c in ipairs(cases) do
    local f = assert(io.open(path, "w"))
    f:write('{"format":' .. F .. ',"targets":' .. c[1] .. '}')
    f:close()
    local ok, err = pcall(ro.read_plan, path)
    t.eq(ok, false, c[1])
    t.ok(tostring(err):find(c[2], 1, true), c[1] .. ": " .. tostring(err))
    t.ok(tostring(err):find("make the plan again", 1, true), tostring(err))
  end
  -- a plan of the format before accounts were recorded: said so, not "incomplete"
  local f = assert(io.open(path, "w"))
  f:write('{"format":"sgrun.plan/1","targets":[{"provider":"gcore","group":"web","fingerprint":"f"}]}')
  f:close()
  local ok, err = pcall(ro.read_plan, path)
  t.eq(ok, false)
  t.ok(tostring(err):find("made by an earlier sgrun", 1, true) and tostring(err):find("make the plan again", 1, true),
    tostring(err))
  os.remove(path)
end)

t.test("a rollback keeps the rules the target held that its write API cannot make", function()
  reset()
  -- HostUp reads outbound rules, which its v1 write body cannot carry; an atomic additive
  -- roll-out whose other target fails restores HostUp's snapshot, and that restore must leave
  -- the outbound DROP it never touched
  local st = control("GET", "/_sim/state")
  st.providers.hostup.vms[1].rules = {
    { type = "out", action = "DROP", proto = "tcp", dport = "25", source = "0.0.0.0/0", comment = "no smtp out", enable = 1 },
    { type = "in", action = "ACCEPT", proto = "tcp", dport = "22", source = "198.51.100.10", comment = "", enable = 1 },
  }
  local vm = 10000 -- the first VM
  control("POST", "/_sim/load", st)
  local hu = conn("hostup")
  local before = hu:list_firewall_rules(vm).data
  local https = rule.normalize { direction = "ingress", protocol = "tcp", port = 443 }
  -- the other target: a stopped legacy Barrack instance, which refuses rule writes
  local report = sg.rollout({ https }, { { hu, { vm = vm } }, { conn("barrack"), { instance = "BRK-100002B" } } },
    { mode = "additive", atomic = true, lossy = "allow" })
  t.eq(report.ok, false, tostring(report))
  t.eq(report.targets[1].status, "rolled_back", tostring(report))
  local after = hu:list_firewall_rules(vm).data
  t.eq(#after, #before, "the restore deleted nothing it did not add")
  t.eq({ after[1].type, after[1].action, after[1].dport }, { "out", "DROP", "25" })
end)

t.test("a target's error in the report is the message, without the traceback sg.all adds", function()
  reset()
  -- Exoscale's rule writes run concurrently (sg.all), which adds a traceback to a string error
  local exo = sg.connect("exoscale", { transport = function(req)
    if req.method == "POST" then error("simulated transport failure", 0) end
    return sg.http.request(req)
  end, retry = { attempts = 1 } })
  local report = sg.rollout({ rule.normalize { direction = "ingress", protocol = "tcp", port = 4443 },
    rule.normalize { direction = "ingress", protocol = "tcp", port = 4444 } }, { { exo, "web" } },
    { mode = "additive" })
  local text = tostring(report)
  t.ok(text:find("simulated transport failure", 1, true), text)
  t.ok(not text:find("stack traceback", 1, true), text)
  t.ok(not sg.json.encode(report:to_table()):find("stack traceback", 1, true), "nor in the JSON form")
end)

t.test("confirm = false aborts before any write", function()
  reset()
  control("DELETE", "/_sim/log")
  local asked
  local report = sg.rollout({ SSH }, { { conn("gcore"), "web" } }, { lossy = "allow",
    confirm = function(r) asked = r.targets[1].changes.remove; return false end })
  t.eq(report.aborted, true)
  -- not "unchanged": it has changes to make, which were not confirmed
  t.eq(report.targets[1].status, "planned")
  t.ok(report.targets[1].removed > 0, "the report keeps the changes not made")
  t.ok(#asked > 0, "confirm sees the removals")
  t.eq(mutations(), 0)
end)

t.test("findings are listed once across targets", function()
  reset()
  local snap = sg.snapshot(conn("exoscale"), "web")
  local report = sg.rollout(snap, { { conn("genesis"), "web" }, { conn("hostup"), { vm = 10000 } } },
    { lossy = "allow", dry_run = true })
  local seen = {}
  for _, f in ipairs(report.findings_once) do
    local k = rule.key(f.rule) .. f.kind .. f.why
    t.eq(seen[k], nil, "once")
    seen[k] = true
  end
  t.ok(#report.findings_once > 0)
end)

-- Sends a signal to this sgrun process (a test of the first-signal handling).
local function signal_self(name)
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("n")
  f:close()
  -- not os.execute: system() ignores SIGINT in the caller while the command runs
  assert(io.popen(string.format("kill -%s %d", name, pid))):close()
end

t.test("SIGINT during planning: no write, every target reported interrupted, the run goes on", function()
  reset()
  control("DELETE", "/_sim/log")
  local sent = false
  local report = sg.rollout({ SSH }, { { conn("gcore"), "web" }, { conn("genesis"), "web" } }, {
    lossy = "allow",
    on_progress = function(ev)
      if ev.step == "planning" and not sent then
        sent = true
        signal_self("INT")
      end
    end })
  t.eq(report.interrupted, "SIGINT")
  t.eq(report.ok, false)
  for _, rt in ipairs(report.targets) do t.eq(rt.status, "interrupted", tostring(report)) end
  t.eq(mutations(), 0)
end)

t.test("SIGTERM while applying with atomic = true: every touched target is restored", function()
  reset()
  local before = assert(conn("hostup"):group({ vm = 10000 }))
  local sent = false
  local report = sg.rollout(EXO, { { conn("hostup"), { vm = 10000 } }, { conn("exoscale"), "web" } }, {
    lossy = "allow", atomic = true,
    on_progress = function(ev)
      if ev.step == "applying" and not sent then
        sent = true
        signal_self("TERM")
      end
    end })
  t.eq(report.interrupted, "SIGTERM")
  for _, rt in ipairs(report.targets) do
    t.ok(rt.status == "rolled_back" or rt.status == "interrupted", tostring(report))
  end
  t.eq(keyset(assert(conn("hostup"):group({ vm = 10000 })).rules), keyset(before.rules))
end)


t.test("recovering an interrupted atomic roll-out puts rules back in the provider's own form", function()
  reset()
  local hu = conn("hostup")
  local snap = sg.snapshot(hu, { vm = 10000 })
  local raw_before = hu:list_firewall_rules(10000).data
  local json = sg.json
  -- the journal of a run killed after it began writing: its begin record holds the snapshot
  local journal = require "sg.journal"
  local jpath = require("sg.rollout").journal_path({ { hu, { vm = 10000 } } }, { atomic = true })
  local jnl = journal.start(jpath, { atomic = true, targets = json.array { {
    provider = "hostup", group = { vm = 10000 }, exists = true, before = json.array(snap.rules),
    raw = json.array(snap.raw), group_id = snap.group.id, add = json.array(), remove = json.array() } } })
  jnl:record({ ev = "write", target = 1 })
  t.eq(require("_sg.fs").mode(jpath), tonumber("600", 8), "the journal is its owner's only")
  -- what the killed run did: one port of a multi-port rule is gone
  local narrower = {}
  for _, r in ipairs(snap.rules) do
    if r.port_min ~= 443 then narrower[#narrower + 1] = r end
  end
  t.ok(#narrower < #snap.rules, "the seeded VM has a rule on port 443")
  t.ok(sg.apply(sg.plan(hu, { vm = 10000 }, narrower)).ok)
  -- while its run lives (holds the journal's lock), the same roll-out leaves it alone
  t.raises(function()
    sg.rollout({ SSH }, { { hu, { vm = 10000 } } }, { lossy = "allow", atomic = true })
  end, "is held by a run that is still going")
  -- the kill: the kernel closes the run's files, and with them drops its lock
  jnl.file:close()
  jnl.lock:close()
  local report = sg.rollout({ SSH }, { { hu, { vm = 10000 } } }, { lossy = "allow", atomic = true })
  t.eq(report.recovered and report.recovered.action, "undone", tostring(report))
  t.eq(report.targets[1].status, "rolled_back", tostring(report))
  t.eq(hu:list_firewall_rules(10000).data, raw_before, "the raw rules the journal held")
end)

t.test("a failed target's restore waits for the provider's work still running from its writes", function()
  -- Exoscale's rule adds run concurrently; one is refused while the other's operation is still
  -- running at the provider. Restoring before that operation lands would find nothing to undo,
  -- report the target rolled back, and leave the rule it then adds.
  reset({ task_duration_ms = 1500 })
  local exo = sg.connect("exoscale", { transport = require("sim_wire").refusing_add(8080) })
  local before = keyset(assert(exo:group("web")).rules)
  local adds = { rule.normalize { direction = "ingress", protocol = "tcp", port = 8080 },
    rule.normalize { direction = "ingress", protocol = "tcp", port = 8443 } }
  local report = sg.rollout(adds, { { exo, "web" } }, { mode = "additive" })
  t.eq(report.ok, false)
  t.eq(report.targets[1].status, "rolled_back", tostring(report))
  sg.sleep(2) -- anything still running at the provider has landed by now
  t.eq(keyset(assert(exo:group("web")).rules), before, "the group holds its snapshot, for good")
end)

t.test("a deadline that leaves the provider's work running: failed, journal kept, --recover finishes", function()
  reset({ task_duration_ms = 1500 })
  local exo = conn("exoscale")
  local before = keyset(assert(exo:group("web")).rules)
  local adds = { rule.normalize { direction = "ingress", protocol = "tcp", port = 8081 } }
  local ro = require "sg.rollout"
  local report = sg.rollout(adds, { { exo, "web" } }, { mode = "additive", deadline = 0.6 })
  t.eq(report.ok, false)
  t.eq(report.targets[1].status, "failed", tostring(report))
  t.ok(tostring(report.targets[1].error):find("still running at the provider", 1, true), tostring(report))
  local jpath = ro.journal_path({ { exo, "web" } }, { mode = "additive" })
  local kept = io.open(jpath)
  t.ok(kept, "the journal is kept for a recovery")
  if kept then kept:close() end
  t.ok(tostring(report):find("--recover", 1, true), "the report says how to finish: " .. tostring(report))
  sg.sleep(2)
  local prior = assert(require("sg.journal").claim(jpath))
  local rec = sg.rollout(nil, { { exo, "web" } }, { mode = "additive", recover = prior })
  t.eq(rec.targets[1].status, "converged", tostring(rec))
  local want = {}
  for k in pairs(before) do want[k] = true end
  want[rule.key(adds[1])] = true
  t.eq(keyset(assert(exo:group("web")).rules), want)
  t.eq(io.open(jpath), nil, "a finished recovery removes the journal")
end)

t.test("a re-run that cannot plan every target keeps a killed run's journal; one that can takes it over", function()
  reset()
  local json = sg.json
  local journal = require "sg.journal"
  local gen = conn("genesis")
  local snap = sg.snapshot(gen, "demo-ssh-web")
  -- the journal of a non-atomic run killed while writing to that group
  local targets_of = function(c) return { { c, "demo-ssh-web" } } end
  local jpath = require("sg.rollout").journal_path(targets_of(gen), {})
  local jnl = journal.start(jpath, { atomic = false, mode = "authoritative", targets = json.array { {
    provider = "genesis", group = "demo-ssh-web", exists = true, before = json.array(snap.rules),
    raw = json.array(snap.raw), group_id = snap.group.id, keep = json.array(snap.rules),
    add = json.array { SSH }, remove = json.array() } } })
  jnl:record({ ev = "write", target = 1 })
  jnl.file:close()
  jnl.lock:close()
  -- the re-run cannot read the group: it must not drop the journal
  local failing = sg.connect("genesis", { transport = function(req)
    if req.method == "GET" then return { status = 503, headers = {}, body = '{"code":503,"message":"down"}' } end
    return sg.http.request(req)
  end, retry = { attempts = 1 } })
  local report = sg.rollout({ SSH }, targets_of(failing), { lossy = "allow" })
  t.eq(report.ok, false)
  t.eq(mutations(), 0, "nothing written")
  local kept = io.open(jpath)
  t.ok(kept, "the killed run's journal is still there")
  if kept then kept:close() end
  t.ok(not tostring(report):find("first completed", 1, true), "no claim of completing: " .. tostring(report))
  -- a re-run that can plan takes it over and ends it
  report = sg.rollout({ SSH }, targets_of(gen), { lossy = "allow" })
  t.ok(report.ok, tostring(report))
  t.ok(tostring(report):find("took over", 1, true), tostring(report))
  t.eq(io.open(jpath), nil, "the journal is gone once the roll-out is done")
end)

t.run()
