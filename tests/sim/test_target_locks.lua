-- The locks of a roll-out's target groups (sg.rollout's target_lock_names and lock_targets): a
-- group named and the same group given by its id meet on one lock once it is read, another
-- account's group of the same name does not, and a lock another holder has is refused (exit 75)
-- naming the target and the holder.
local t = require "testlib"
local sg = require "sg"
local rollout = require "sg.rollout"
local wire = require "sim_wire"

local function shared(a, b)
  local in_a = {}
  for _, name in ipairs(a) do in_a[name] = true end
  for _, name in ipairs(b) do
    if in_a[name] then return true end
  end
  return false
end

local function refused(fn)
  local ok, err = pcall(fn)
  t.ok(not ok, "refused")
  return type(err) == "table" and err or { message = tostring(err) }
end

t.test("a group by its name and by its id is one lock once read; another account's is another", function()
  wire.reset()
  local gcore = sg.connect("gcore")
  local group = assert(gcore:group("web"))
  local ident = { id = group.id, name = group.name }
  local by_name = rollout.target_lock_names(gcore, "web", ident)
  local by_id = rollout.target_lock_names(gcore, group.id, ident)
  t.eq(by_name, by_id, "the same names, whichever reference was given")
  -- before the read, only the reference given is known: the id alone is the id's lock
  t.ok(shared(rollout.target_lock_names(gcore, group.id), by_name), "the id's lock is the read group's")
  t.ok(shared(rollout.target_lock_names(gcore, "web"), by_id), "the name's lock is the read group's")
  for _, name in ipairs(by_name) do t.ok(name:match("^sgrun%-target%-gcore%-%x+%.lock$"), name) end
  local other = sg.connect("gcore", { api_key = "4242_another-account-key" })
  t.ok(not shared(rollout.target_lock_names(other, "web", ident), by_name), "another account, other locks")
  t.ok(not shared(rollout.target_lock_names(sg.connect("exoscale"), "web"), by_name), "another provider, other locks")
end)

t.test("an account is its credentials and scope, not the spelling of its endpoint", function()
  wire.reset()
  -- the same account through another spelling of the same endpoint, and Exoscale through another
  -- zone's endpoint (its groups are the organisation's, whatever zone serves them): one lock, so
  -- two roll-outs cannot write to the group at once
  local gcore = sg.connect("gcore")
  local respelt = sg.connect("gcore", { base_url = gcore.base_url:gsub("127%.0%.0%.1", "localhost") })
  t.ok(respelt.base_url ~= gcore.base_url, respelt.base_url)
  t.eq(rollout.target_lock_names(respelt, "web"), rollout.target_lock_names(gcore, "web"), "localhost")
  local geneva = sg.connect("exoscale", { base_url = "https://api-ch-gva-2.exoscale.com/v2" })
  local frankfurt = sg.connect("exoscale", { base_url = "https://api-de-fra-1.exoscale.com/v2" })
  t.eq(rollout.target_lock_names(geneva, "web"), rollout.target_lock_names(frankfurt, "web"), "zones")
  -- Gcore's groups are a project's and a region's: another project with the same key is another account
  local project = sg.connect("gcore", { project_id = 424242 })
  t.ok(not shared(rollout.target_lock_names(project, "web"), rollout.target_lock_names(gcore, "web")),
    "another project, other locks")
end)

t.test("a held target lock refuses another holder with 75, naming the target and the holder", function()
  wire.reset()
  local gcore = sg.connect("gcore")
  local group = assert(gcore:group("web"))
  local first = {}
  rollout.lock_targets(first, { { gcore, "web", { id = group.id, name = group.name } } })
  -- a second holder (its own open file, as another process would have) by the id, not yet read
  local second = {}
  local err = refused(function() rollout.lock_targets(second, { { gcore, group.id } }) end)
  t.eq(err.exit_code, 75, err.message)
  local pid = io.open("/proc/self/stat"):read("l"):match("^%d+")
  t.ok(tostring(err.message):find("gcore " .. group.id .. ": another roll-out is writing to this group, pid " ..
    pid .. " since ", 1, true), err.message)
  t.eq(next(second), nil, "nothing held by the refused one")
  -- taking what is held already is a no-op; released, the lock is free
  rollout.lock_targets(first, { { gcore, group.id } })
  for _, lock in pairs(first) do lock:release() end
  rollout.lock_targets(second, { { gcore, group.id } })
  t.ok(next(second) ~= nil, "free once released")
  for _, lock in pairs(second) do lock:release() end
end)

t.run()
