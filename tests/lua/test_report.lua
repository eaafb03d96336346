-- Roll-out reports as people and programs read them (sg.report) and live progress
-- (sg.progress): +/- rule lines per target, "will create group", findings once across targets,
-- colour only when asked, the JSON form, and the progress views.
local t = require "testlib"
local rule = require "sg.rule"
local json = require "sg.json"
local report = require "sg.report"
local progress = require "sg.progress"

local function n(r) return rule.normalize(r) end
local SSH = n { direction = "ingress", protocol = "tcp", port = 22, cidr = "10.0.0.0/8" }
local HTTPS = n { direction = "ingress", protocol = "tcp", port = 443 }
local PING = n { direction = "ingress", protocol = "icmp", icmp_type = 8, icmp_code = 0 }
local LOSSY = { rule = PING, kind = "lossy", why = "no ICMP type" }

-- A report as sg.rollout's contract describes it.
local function sample(status)
  return {
    ok = true,
    targets = {
      { provider = "gcore", group = "web", status = status, added = 1, removed = 1,
        changes = { add = { HTTPS }, remove = { SSH } }, create_group = false, findings = { LOSSY } },
      { provider = "hostup", group = { vm = 10000 }, status = status, added = 2, removed = 0,
        changes = { add = { HTTPS, PING }, remove = {} }, create_group = true, findings = { LOSSY } },
    },
  }
end

t.test("text: a status line and +/- rule lines per target", function()
  local text = report.text(sample("planned"))
  t.ok(text:find("^roll%-out: ok %(2 planned%)"), text)
  t.ok(text:find("\n  gcore     web%s+planned%s+%+1 %-1\n"), text)
  t.ok(text:find("\n      %+ " .. rule.tostring(HTTPS):gsub("%p", "%%%0") .. "\n"), text)
  t.ok(text:find("\n      %- " .. rule.tostring(SSH):gsub("%p", "%%%0") .. "\n"), text)
  t.ok(text:find("\n  hostup    vm=10000"), text)
end)

t.test("text: will create group, created group", function()
  t.ok(report.text(sample("planned")):find("will create group vm=10000", 1, true))
  local done = report.text(sample("converged"))
  t.ok(done:find("created group vm=10000", 1, true) and not done:find("will create", 1, true))
end)

t.test("text: a finding shared by targets is stated once, naming them", function()
  local text = report.text(sample("planned"))
  local _, count = text:gsub("no ICMP type", "")
  t.eq(count, 1, text)
  t.ok(text:find("(gcore:web, hostup:vm=10000)", 1, true), text)
end)

t.test("text: errors, rules not restored, interrupted and aborted headlines", function()
  local r = sample("failed")
  r.ok = false
  r.targets[1].error = "HTTP 503"
  r.targets[1].not_restored = { SSH }
  local text = report.text(r)
  t.ok(text:find("roll-out: FAILED", 1, true) and text:find("error: HTTP 503", 1, true), text)
  t.ok(text:find("not restored: " .. rule.tostring(SSH), 1, true), text)
  r.interrupted = "SIGINT"
  t.ok(report.text(r):find("INTERRUPTED by SIGINT", 1, true))
  r.interrupted, r.aborted = nil, true
  t.ok(report.text(r):find("not confirmed, nothing changed", 1, true))
end)

t.test("an interrupted roll-out says per target what was changed, restored or left untouched", function()
  local r = sample("converged")
  r.ok, r.interrupted = false, "SIGTERM"
  r.targets[2].status, r.targets[2].changes = "rolled_back", { add = {}, remove = {} }
  local text = report.text(r)
  t.ok(text:find("converged    +1 -1  changed", 1, true), text)
  t.ok(text:find("rolled_back  +2 -0  restored", 1, true), text)
  t.ok(text:find("created group vm=10000, deleted again", 1, true), text)
  local j = report.json_table(r)
  t.eq({ j.targets[1].account, j.targets[2].account, j.interrupted }, { "changed", "restored", "SIGTERM" })
  t.eq(report.json_table(sample("converged")).targets[1].account, nil, "no account when not interrupted")
  r.abandoned, r.targets[1].status = true, "unknown"
  t.ok(report.text(r):find("INTERRUPTED by SIGTERM twice, stopped at once", 1, true), report.text(r))
  t.eq(report.json_table(r).abandoned, true)
  t.eq(report.json_table(r).targets[1].account, "unknown")
end)

t.test("colour only when asked", function()
  t.ok(not report.text(sample("planned")):find("\27", 1, true), "no escape codes by default")
  local colored = report.text(sample("planned"), { color = true })
  t.ok(colored:find("\27[32m+ ", 1, true), "green additions")
  t.ok(colored:find("\27[31m- ", 1, true), "red removals")
end)

t.test("pending: planned changes or not", function()
  t.ok(report.pending(sample("planned")))
  local none = { ok = true, targets = { { provider = "gcore", group = "web", status = "unchanged", added = 0,
    removed = 0, changes = { add = {}, remove = {} }, create_group = false, findings = {} } } }
  t.ok(not report.pending(none))
end)

t.test("json_table: changes, diff lines, create_group, findings once", function()
  local v = json.decode(json.encode(report.json_table(sample("planned"))))
  t.eq(v.ok, true)
  t.eq(#v.targets, 2)
  t.eq(v.targets[1].diff, { "- " .. rule.tostring(SSH), "+ " .. rule.tostring(HTTPS) }, "sorted by rule")
  t.eq(#v.targets[1].changes.add, 1)
  t.eq(rule.key(rule.normalize(v.targets[1].changes.remove[1])), rule.key(SSH), "canonical rules")
  t.eq(v.targets[2].create_group, true)
  t.eq(#v.findings, 1)
  t.eq(v.findings[1].targets, { 1, 2 })
  t.eq(v.findings[1].kind, "lossy")
  local empty = json.encode(report.json_table({ ok = true, targets = { { provider = "gcore", group = "web",
    status = "unchanged", added = 0, removed = 0, changes = { add = {}, remove = {} }, findings = {} } } }))
  t.ok(empty:find('"remove":[]', 1, true), "empty lists are JSON arrays: " .. empty)
end)

-- A stream that keeps what is written.
local function buffer()
  local parts = {}
  return { write = function(self, ...) for _, s in ipairs({ ... }) do parts[#parts + 1] = s end return self end,
    flush = function() end, text = function() return table.concat(parts) end }
end

t.test("progress on a terminal: one line per target, redrawn in place", function()
  local out = buffer()
  local on = progress.new(out, { tty = true })
  on { target = 1, provider = "gcore", group = "web", step = "reading" }
  on { target = 2, provider = "hostup", group = { vm = 10000 }, step = "reading" }
  on { target = 1, provider = "gcore", group = "web", step = "applying", done = 3, total = 7 }
  on { target = 1, provider = "gcore", group = "web", step = "done", status = "converged" }
  local text = out:text()
  t.ok(text:find("applying 3/7", 1, true), text)
  t.ok(text:find("\r\27[2A", 1, true), "moves back over the two lines drawn")
  t.ok(text:find("converged\n", 1, true), text)
  on(nil) -- a question was written below: the next event starts a new block
  local before = #out:text()
  on { target = 2, provider = "hostup", group = { vm = 10000 }, step = "applying", done = 1, total = 2 }
  local after = out:text():sub(before + 1)
  t.ok(not after:find("\27%[%d+A"), "no move up over the question: " .. after)
end)

t.test("progress on a terminal: a new step is drawn at once, a mere count at most every REDRAW", function()
  local out = buffer()
  local on = progress.new(out, { tty = true })
  on { target = 1, provider = "hostup", group = { vm = 10000 }, step = "applying", done = 0, total = 3 }
  on { target = 1, provider = "hostup", group = { vm = 10000 }, step = "applying", done = 1, total = 3 }
  on { target = 1, provider = "hostup", group = { vm = 10000 }, step = "waiting", done = 1, total = 3 }
  local text = out:text()
  t.ok(text:find("applying 0/3 writes", 1, true), text)
  t.ok(not text:find("applying 1/3", 1, true), "a count right after a draw waits: " .. text)
  t.ok(text:find("waiting for the provider's task (1/3 writes)", 1, true), text)
end)

t.test("progress elsewhere: nothing written (logs are not flooded)", function()
  local out = buffer()
  local on = progress.new(out, { tty = false })
  on { target = 1, provider = "gcore", group = "web", step = "reading" }
  t.eq(out:text(), "")
end)

-- A provider's text (a description, a group name, an error message) may carry terminal escape
-- sequences: a report shows them escaped, so none can erase a line, move the cursor or set the
-- window title. Only the report's own colours are escape sequences.
t.test("text: control characters from a provider are shown escaped, never sent to the terminal", function()
  local hostile = n { direction = "ingress", protocol = "tcp", port = 3306,
    description = "db\r\27[2K\27]0;pwned\7 no exposure\194\155found" }
  local line = rule.tostring(hostile)
  t.ok(not line:find("[%c\127]"), line)
  t.ok(line:find("\\x1b[2K", 1, true), line)
  t.ok(not line:find("\194\155", 1, true), "the C1 control is escaped: " .. line)
  local r = sample("failed")
  r.ok = false
  r.targets[1].group = "web\27[1A"
  r.targets[1].changes.add = { hostile }
  r.targets[1].error = "HTTP 400 \27]2;title\7refused\nsecond line"
  local text = report.text(r)
  t.ok(not text:find("\27", 1, true), text)
  t.ok(not text:find("\7", 1, true), text)
  t.ok(text:find("web\\x1b[1A", 1, true), text)
  t.ok(text:find("refused\nsecond line", 1, true), "a message keeps its own line breaks: " .. text)
  -- the colours asked for are the only escapes
  local colour = report.text(r, { color = true })
  for seq in colour:gmatch("\27(%[[%d;]*m?)") do t.ok(seq:match("^%[[%d;]*m$"), "only SGR colours: " .. seq) end
end)

t.test("the text log and an uncaught error show control characters escaped", function()
  local function stderr_of(code)
    local p = assert(io.popen(string.format("%q -e %q 2>&1", arg[-1], code)))
    local out = p:read("a")
    p:close()
    return out
  end
  local out = stderr_of('require("_sg.log").write("warn", "event", "a\\27[2Kb\\194\\155", { k = "v\\7" })')
  t.ok(out:find("a\\x1b[2Kb\\u{9b}", 1, true), out)
  t.ok(out:find("k=v\\x07", 1, true), out)
  t.ok(not out:find("[\27\7]") and not out:find("\194\155", 1, true), out)
  -- a provider's error that no playbook catches is printed by sgrun itself: escaped too, its
  -- own line breaks kept
  out = stderr_of('error(setmetatable({}, { __tostring = function() ' ..
    'return "HTTP 400 denied \\27]0;PWNED\\7\\27[2K\\nsecond line" end }))')
  t.ok(out:find("denied \\x1b]0;PWNED\\x07\\x1b[2K\nsecond line", 1, true), out)
  t.ok(not out:find("[\27\7]"), out)
end)

t.test("the JSON log stays valid JSON and UTF-8 whatever a message holds", function()
  local p = assert(io.popen(string.format("%q --log-format json -e %q 2>&1", arg[-1],
    'require("_sg.log").write("warn", "event", "caf\\195\\169 \\255\\192 \\27[2K tr\\226\\130", ' ..
    '{ k = "\\237\\160\\128" })')))
  local out = p:read("a")
  p:close()
  t.ok(utf8.len(out), "valid UTF-8: " .. out)
  local e = assert(json.decode(out), out)
  t.eq(e.message, "caf\195\169 \239\191\189\239\191\189 \27[2K tr\239\191\189\239\191\189")
  t.eq(e.fields.k, ("\239\191\189"):rep(3), "a UTF-16 surrogate is not UTF-8")
end)

t.test("a finding a target has twice names that target once", function()
  local f = { rule = rule.normalize { direction = "ingress", protocol = "icmp", cidr = "0.0.0.0/0" },
    kind = "lossy", why = "no ICMP type" }
  local once = require("sg.rollout.common").findings_once({ { findings = { f, f } }, { findings = { f } } })
  t.eq(#once, 1)
  t.eq(once[1].targets, { 1, 2 })
end)

t.run()
