-- sg.journal on its own: owner-only files, the lock that tells a live run from a dead one, and
-- what a claim does with journals that record nothing to finish.
local t = require "testlib"
local journal = require "sg.journal"
local fs = require "_sg.fs"

local function temp_path()
  local p = os.tmpname()
  os.remove(p)
  return p .. ".journal"
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

t.test("a journal is its owner's only, locked while its run lives, removed when it ends", function()
  local path = temp_path()
  write(path, "left by an older version\n")
  assert(fs.create_private(path)) -- narrows what is there
  t.eq(fs.mode(path), tonumber("600", 8))
  os.remove(path)
  local j = journal.start(path, { targets = {} })
  t.eq(fs.mode(path), tonumber("600", 8))
  local claimed, busy = journal.claim(path)
  t.eq(claimed, false)
  t.ok(busy:find("still going", 1, true), busy)
  j:record({ ev = "write", target = 1 })
  j:finish()
  t.eq(exists(path), false)
end)

t.test("a start waits out a claim's moment on the lock instead of calling the journal busy", function()
  local path = temp_path()
  write(path, '{"ev":"begin","targ') -- a dead run's leftover, which a claim is looking at
  local claim = assert(io.open(path, "rb"))
  t.eq(fs.try_lock(claim), true)
  local task = require "sg.task"
  task.spawn(function()
    task.sleep(0.1)
    os.remove(path) -- what the claim does with it: nothing to finish
    claim:close()
  end)
  local j = journal.start(path, { targets = {} })
  t.eq(fs.mode(path), tonumber("600", 8))
  t.eq(fs.is_at(j.lock, path), true, "the lock is on the file at the path")
  j:finish()
  t.eq(exists(path), false)
end)

t.test("a dead run's journal with a torn first line is removed by a claim: nothing was written", function()
  local path = temp_path()
  write(path, '{"ev":"begin","targ')
  t.eq(journal.read(path), nil)
  t.eq(journal.claim(path), nil)
  t.eq(exists(path), false)
end)

t.test("a dead run's journal that ended but was not removed goes too", function()
  local path = temp_path()
  write(path, '{"ev":"begin","targets":[]}\n{"ev":"end"}\n')
  t.eq(journal.claim(path), nil)
  t.eq(exists(path), false)
end)

t.test("a live run's journal is left alone, torn or not", function()
  local path = temp_path()
  local holder = assert(io.open(path, "ab"))
  t.eq(fs.try_lock(holder), true)
  holder:write('{"ev":"beg')
  holder:flush()
  t.eq(journal.claim(path), false)
  t.eq(exists(path), true)
  holder:close()
  os.remove(path)
end)

t.test("a dead run's unfinished journal is claimed and kept until dealt with", function()
  local path = temp_path()
  write(path, '{"ev":"begin","targets":[{"provider":"hostup"}]}\n{"ev":"write","target":1}\n{"ev":"wri')
  local claimed = assert(journal.claim(path))
  t.eq(claimed.started, { true })
  t.eq(claimed.finished, {})
  claimed:release()
  t.eq(exists(path), true)
  claimed = assert(journal.claim(path))
  claimed:remove()
  t.eq(exists(path), false)
end)

t.test("replace: a killed run's journal stays whole until the run taking over has written its own", function()
  local path = temp_path()
  local killed = '{"ev":"begin","targets":[{"provider":"gcore"}]}\n{"ev":"write","target":1}\n'
  write(path, killed)
  local claimed = assert(journal.claim(path))
  -- a begin record that cannot be written (as on a full disk): the old journal is untouched
  t.raises(function() journal.replace(claimed, { targets = { function() end } }) end,
    "the killed run's journal is kept")
  local f = assert(io.open(path, "rb"))
  t.eq(f:read("a"), killed)
  f:close()
  t.eq(exists(path .. ".next"), false, "nothing half-written is left beside it")
  t.eq(journal.claim(path), false, "still claimed: no other run takes it meanwhile")
  -- written: the new journal is at the path, locked by this run, and the old one is gone
  local j = journal.replace(claimed, { targets = { { provider = "hostup" } } })
  t.eq(j.path, path)
  t.eq(fs.mode(path), tonumber("600", 8))
  t.eq(journal.claim(path), false, "the new journal is locked by its run")
  j:record({ ev = "write", target = 1 })
  local again = journal.read(path)
  t.eq(again.begin.targets[1].provider, "hostup")
  t.eq(again.started, { true })
  j:finish()
  t.eq(exists(path), false)
end)

t.test("is_at: a lock guards a path only while the path still names the locked file", function()
  local path = temp_path()
  write(path, "a")
  local f = assert(io.open(path, "rb"))
  t.eq(fs.is_at(f, path), true)
  os.remove(path)
  t.eq(fs.is_at(f, path), false)
  write(path, "b") -- another file at the same path
  t.eq(fs.is_at(f, path), false)
  f:close()
  os.remove(path)
end)

t.run()
