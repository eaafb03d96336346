-- Snapshot files: atomic save, validating load, clear errors.
local t = require "testlib"
local rule = require "sg.rule"
local snapshot_file = require "sg.snapshot_file"

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p '" .. dir .. "'"))

local function path(name) return dir .. "/" .. name end
local function write(name, text)
  local f = assert(io.open(path(name), "wb"))
  f:write(text)
  f:close()
  return path(name)
end
local function files()
  local out = {}
  local p = io.popen("ls -A '" .. dir .. "'")
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  table.sort(out)
  return out
end

local function snap(rules, raw)
  return { format = "sgrun.snapshot/1", provider = "exoscale",
    group = { id = "a02baf5a", name = "web", description = "web tier" },
    rules = rules, raw = raw, taken_at = "2026-08-20T10:00:00Z" }
end

t.test("save and load round-trip, rules normalised", function()
  local rules = { rule.normalize { direction = "ingress", protocol = "tcp", port = 22, description = "ssh" },
    { direction = "egress", protocol = "ALL" } }
  local raw = { { ["flow-direction"] = "ingress", protocol = "tcp", ["start-port"] = 22 } }
  snapshot_file.save(snap(rules, raw), path("web.json"))
  local s = snapshot_file.load(path("web.json"))
  t.eq(s.format, "sgrun.snapshot/1")
  t.eq(s.group, { id = "a02baf5a", name = "web", description = "web tier" })
  t.eq(#s.rules, 2)
  t.ok(rule.equal(s.rules[1], rules[1]))
  t.eq(s.rules[1].description, "ssh")
  t.eq(s.rules[2].protocol, "any")
  t.ok(rule.is_normalized(s.rules[2]))
  t.eq(s.raw[1]["start-port"], 22)
  t.eq(s.taken_at, "2026-08-20T10:00:00Z")
  t.eq(files(), { "web.json" }, "no temporary file left behind")
end)

t.test("an empty rule list round-trips as a list", function()
  snapshot_file.save(snap({}, nil), path("empty.json"))
  local f = assert(io.open(path("empty.json")))
  local text = f:read("a")
  f:close()
  t.ok(text:find('"rules":[]', 1, true), text)
  t.ok(text:find('"raw":[]', 1, true), text)
  local s = snapshot_file.load(path("empty.json"))
  t.eq(s.rules, {})
  os.remove(path("empty.json"))
end)

t.test("save replaces atomically and calls the fsync hook", function()
  local synced = {}
  local saved = snapshot_file.fsync
  snapshot_file.fsync = function(p) synced[#synced + 1] = p return saved(p) end
  snapshot_file.save(snap({}), path("web.json"))
  snapshot_file.fsync = saved
  t.eq(#synced, 2)
  t.ok(synced[1]:find("web.json.", 1, true) and synced[1]:find("%.tmp$"), synced[1])
  t.eq(synced[2], dir)
  t.eq(#snapshot_file.load(path("web.json")).rules, 0)
  t.eq(files(), { "web.json" })
end)

-- The pid of a process that has exited, and of one that runs until killed.
local function shell_pid(cmd)
  local p = assert(io.popen(cmd))
  local pid = assert(tonumber(p:read("l")))
  p:close()
  return pid
end

t.test("a killed save's temporary file is removed by the next save; a live writer's is kept", function()
  local dead = shell_pid("sh -c 'echo $$'")
  local live = shell_pid("sleep 60 >/dev/null 2>&1 & echo $!")
  local dead_tmp = "web.json." .. dead .. ".a1B2c3.tmp"
  local live_tmp = "web.json." .. live .. ".d4E5f6.tmp"
  write(dead_tmp, "half a snap")
  write(live_tmp, "being written")
  write("other.json." .. dead .. ".a1B2c3.tmp", "another target's")
  snapshot_file.save(snap({}), path("web.json"))
  local left = files()
  os.execute("kill " .. live)
  t.eq(left, { "other.json." .. dead .. ".a1B2c3.tmp", "web.json", live_tmp })
  os.remove(path(live_tmp))
  os.remove(path("other.json." .. dead .. ".a1B2c3.tmp"))
end)

t.test("save refuses invalid snapshots before writing", function()
  t.raises(function()
    snapshot_file.save(snap { { direction = "ingress", protocol = "tcp", port = 99999 } }, path("bad.json"))
  end, "snapshot " .. path("bad.json") .. ": rules[1]: port_min 99999 is out of range 1..65535")
  t.raises(function() snapshot_file.save(snap({}), dir .. "/missing/dir/x.json") end, "cannot write")
  t.eq(files(), { "web.json" })
end)

t.test("load: clear errors naming the file", function()
  t.raises(function() snapshot_file.load(path("nope.json")) end,
    "snapshot " .. path("nope.json") .. ": cannot read")
  t.raises(function() snapshot_file.load(write("damaged.json", '{"format": "sgrun.snapshot/1", "rules": [1,}')) end,
    "damaged.json: damaged file: invalid JSON")
  t.raises(function() snapshot_file.load(write("damaged.json", '{"format": "sgrun.snapshot/1", "rules": [1,}')) end,
    "at character")
  t.raises(function() snapshot_file.load(write("empty.json", "")) end, "empty.json: the file is empty")
  t.raises(function() snapshot_file.load(write("nofmt.json", '{"provider":"gcore"}')) end,
    "nofmt.json: missing field 'format'")
  t.raises(function() snapshot_file.load(write("v2.json", '{"format":"sgrun.snapshot/2"}')) end,
    'v2.json: unknown format "sgrun.snapshot/2"; this sgrun reads "sgrun.snapshot/1"')
  t.raises(function()
    snapshot_file.load(write("noprov.json", '{"format":"sgrun.snapshot/1","group":{"id":"x"},"rules":[]}'))
  end, "noprov.json: missing field 'provider'")
  t.raises(function()
    snapshot_file.load(write("norules.json", '{"format":"sgrun.snapshot/1","provider":"gcore","group":{"id":"x"}}'))
  end, "norules.json: missing field 'rules'")
  t.raises(function()
    snapshot_file.load(write("badrule.json", '{"format":"sgrun.snapshot/1","provider":"gcore",' ..
      '"group":{"id":"x"},"rules":[{"direction":"ingress","cidr":"10.0.0.1/8"}]}'))
  end, 'badrule.json: rules[1]: cidr "10.0.0.1/8" has host bits set')
end)

-- The group reference goes to the provider as it stands (drift re-reads that group): a hostile or
-- hand-edited one is the file's error, naming the field, not a traceback from an adapter.
local function with_group(group)
  return '{"format":"sgrun.snapshot/1","provider":"gcore","group":' .. group .. ',"rules":[]}'
end

t.test("load: a group reference of the wrong type is refused, naming the field", function()
  local cases = {
    { '{"name":["web"]}', "field 'group.name' must be the group's name, a non-empty string, not a list" },
    { '{"id":1.5}', "field 'group.id' must be the group's id, a non-empty string or an integer, not 1.5" },
    { '{"id":{"a":1},"name":"web"}', "field 'group.id' must be the group's id, a non-empty string or an integer, not an object" },
    { '{"id":"","name":"web"}', "field 'group.id' must be the group's id, a non-empty string or an integer, not an empty string" },
    { '{"id":true}', "not boolean" },
    { '{"id":"x","description":5}', "field 'group.description' must be a string, not 5" },
  }
  for i, c in ipairs(cases) do
    t.raises(function() snapshot_file.load(write("ref" .. i .. ".json", with_group(c[1]))) end, c[2])
  end
  -- null stands for absent
  local s = snapshot_file.load(write("nullid.json", with_group('{"id":null,"name":"web","description":null}')))
  t.eq({ s.group.id, s.group.name, s.group.description }, { nil, "web", nil })
  t.eq(snapshot_file.load(write("intid.json", with_group('{"id":7}'))).group.id, 7)
end)

t.test("drift.lua on such a file: a usage error (exit 2) naming the field, no traceback", function()
  local sgrun = arg[-1]
  local root = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../.."
  for i, c in ipairs({ { '{"name":["web"]}', "group.name" }, { '{"id":1.5}', "group.id" } }) do
    local file = write("drift" .. i .. ".json", with_group(c[1]))
    -- credentials and a loopback URL (nothing listens: no request may be needed to refuse it)
    local p = assert(io.popen(string.format("GCORE_API_KEY=k GCORE_CLOUD_PROJECT_ID=1 " ..
      "GCORE_CLOUD_REGION_ID=1 SGRUN_GCORE_URL=http://127.0.0.1:9 '%s' '%s/scripts/drift.lua' '%s' 2>&1; " ..
      "echo \"exit=$?\"", sgrun, root, file)))
    local out = p:read("a")
    p:close()
    t.ok(out:find("exit=2", 1, true), out)
    t.ok(out:find("field '" .. c[2] .. "'", 1, true), out)
    t.ok(not out:find("traceback", 1, true) and not out:find("%.lua:%d+:"), out)
  end
end)

t.test("cleanup", function()
  for _, name in ipairs(files()) do os.remove(path(name)) end
  t.ok(os.remove(dir))
end)

t.run()
