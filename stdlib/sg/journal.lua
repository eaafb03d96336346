-- sg.journal: the intent journal of a roll-out, so that a killed run can be completed or undone
-- by the next run of the same roll-out, or by `scripts/rollout.lua --recover`.
--
-- One small file per roll-out, next to the playbook locks (the directory runtime/lock.c
-- checks and uses), named after the roll-out's identity (its targets, mode and atomicity). It
-- holds JSON lines, each flushed and (but "async") fsynced before the step it announces: "begin"
-- with the roll-out's mode and every target's snapshot and plan, then per target "write" (its
-- writes are starting), "async" (one of them started work that goes on at the provider: its
-- handle, for conn:follow) and "written" (they finished, successfully or not), and "end" just
-- before a finished run removes the file. A torn
-- last line (a kill mid-append) is ignored; a journal whose only line is torn recorded no write
-- and is removed by whoever claims it.
--
-- The run writing a journal holds an exclusive flock on it until it ends; the kernel drops it
-- when the process dies, SIGKILL included. Whoever deals with a journal takes the same lock
-- first (without waiting), so a journal whose run is still alive is never touched.
local errors = require "sg.errors"
local json = require "sg.json"

local M = {}

local fsync = require("_sg.fs").fsync

---The directory of the journals: the playbook locks' (checked, created 0700 where sgrun picks it).
---@return string
function M.dir()
  local dir, err = require("_sg.fs").lock_dir()
  if not dir then error("roll-out journal: " .. tostring(err), 0) end
  return dir
end

---The journal path of a roll-out identity (any string).
---@param identity string
---@return string
function M.path(identity)
  local crypto = require "_sg.crypto"
  return string.format("%s/sgrun-rollout-%s.journal", M.dir(),
    crypto.hex_encode(crypto.sha256(identity)):sub(1, 16))
end

---@class sg.Journal
---@field path string
---@field file file* where records are appended
---@field lock file* holds the flock that tells a live run's journal from a dead one's
local Journal = {}
Journal.__index = Journal

local function open_locked(path, mode)
  local f, err = io.open(path, mode)
  if not f then return nil, err end
  local locked, lerr = require("_sg.fs").try_lock(f)
  if locked then return f end
  f:close()
  if locked == false then return false end
  return nil, lerr
end

local function busy_message(path)
  return string.format("roll-out journal %s is held by a run that is still going (it holds the " ..
    "journal's lock); wait for that run to end, then run the roll-out (or --recover) again", path)
end

---Starts a journal at path (replacing an old one) with its first record; the journal stays
---locked by this process until finish(). Waits a little when a claim holds the lock.
---@async
---@param path string
---@param begin table the "begin" record
---@return sg.Journal
function M.start(path, begin)
  local fs = require "_sg.fs"
  local lock, err
  -- Locked before truncating: a live run's journal is never overwritten. Whoever removes a
  -- journal holds its lock, so one that is still at its path once locked stays there; one that
  -- went (a claim removing a dead run's leftover just before) is created again. A claim holds
  -- the lock only for a moment, unless it is recovering that journal: busy is asked again a few
  -- times before it is believed.
  for _ = 1, 10 do
    local created
    created, err = fs.create_private(path)
    lock = nil
    if created then lock, err = open_locked(path, "ab") end
    if lock and fs.is_at(lock, path) then
      -- owner-only, as the lock directory is: it holds every target's rules (io.open may have
      -- made the file, if it went between create_private and the open)
      created, err = fs.create_private(path)
      if not created then
        lock:close()
        lock = nil
      end
      break
    end
    if lock then
      lock:close()
      lock, err = nil, "it was removed each time it was locked"
    elseif lock == nil then
      break
    end
    require("sg.task").sleep(0.05)
  end
  local f
  if lock then f, err = io.open(path, "wb") end
  if lock == false then errors.raise_local(busy_message(path)) end
  if not f then
    if lock then lock:close() end
    errors.raise_local(string.format("roll-out journal %s: cannot write: %s; nothing was sent to any " ..
      "provider (set SGRUN_LOCK_DIR to a writable directory)", path, tostring(err)))
  end
  local j = setmetatable({ path = path, file = f, lock = lock }, Journal)
  begin.ev = "begin"
  local ok, rerr = pcall(j.record, j, begin)
  if not ok then
    -- nothing may be written that the journal does not cover: stop here, with no journal left
    os.remove(path)
    f:close()
    lock:close()
    errors.raise_local(tostring(rerr) .. "; nothing was sent to any provider")
  end
  local dir = path:match("^(.*)/[^/]*$") or "."
  fsync(dir)
  return j
end

---Starts this run's journal in place of a claimed one (a killed run's, which this run takes
---over), atomically: the new journal is written and locked beside it, then renamed over it. Until
---then the claimed journal stays whole, so that a journal that cannot be written (a full disk)
---leaves the killed run's record as it was; it stays claimed (the caller releases it).
---@param claimed sg.ClaimedJournal
---@param begin table the "begin" record
---@return sg.Journal
function M.replace(claimed, begin)
  local fs = require "_sg.fs"
  local path = claimed.path
  -- a fixed name: the directory is this user's alone, and the claim excludes every other run of
  -- this roll-out; one left by a run killed right here is stale
  local next_path = path .. ".next"
  os.remove(next_path)
  local created, err = fs.create_private(next_path)
  local lock, f
  if created then lock, err = open_locked(next_path, "ab") end
  if lock then f, err = io.open(next_path, "wb") end
  local function fail(why)
    if f then f:close() end
    if lock then lock:close() end
    os.remove(next_path)
    errors.raise_local(string.format("roll-out journal %s: cannot write: %s; nothing was sent to any " ..
      "provider, and the killed run's journal is kept (free space there, or set SGRUN_LOCK_DIR to a " ..
      "writable directory)", path, tostring(why)))
  end
  if not f then fail(err or "it is locked") end
  local j = setmetatable({ path = next_path, file = f, lock = lock }, Journal)
  begin.ev = "begin"
  local ok, rerr = pcall(j.record, j, begin)
  if ok then ok, rerr = os.rename(next_path, path) end
  if not ok then fail(rerr) end
  j.path = path
  fsync(path:match("^(.*)/[^/]*$") or ".")
  claimed:release() -- its file is gone from the path: nothing is left to unlock but the old one
  return j
end

-- Appends one record, flushed to the kernel, and fsynced when `durable`.
local function append(j, rec, durable)
  local ok, err = j.file:write(json.encode(rec), "\n")
  if ok then ok, err = j.file:flush() end
  if ok and durable then ok, err = fsync(j.path) end
  if not ok then
    errors.raise_local(string.format("roll-out journal %s: write failed: %s (free space there, or set " ..
      "SGRUN_LOCK_DIR to another directory)", j.path, tostring(err)))
  end
end

---Appends one record, flushed and fsynced before returning.
---@param rec table
function Journal:record(rec) append(self, rec, true) end

---Appends one record, flushed to the kernel but not fsynced: what only matters after the process
---is killed, which the kernel's copy survives (async work's handles: after a machine crash, that
---work has long ended by the time anything recovers).
---@param rec table
function Journal:note(rec) append(self, rec, false) end

---Ends the run: the journal is marked finished, removed, and only then unlocked (so that
---whoever takes the lock next never mistakes it for the journal of a killed run).
function Journal:finish()
  -- "end" only covers a kill between it and the removal: if it cannot be written (a full disk),
  -- removing the journal still ends it, and the roll-out's report is not lost to that
  pcall(self.record, self, { ev = "end" })
  local removed, err = os.remove(self.path)
  self.file:close()
  self.lock:close()
  if not removed then
    require("_sg.log").write("warn", "journal_left", string.format("could not remove the finished roll-out's " ..
      "journal (%s): the next run of the same roll-out finds it and checks every target again, which " ..
      "changes nothing that is already right", tostring(err)), { path = self.path })
  end
end

---Ends the run but keeps the journal, unlocked, for the next run of the same roll-out or a
---recovery (--recover): a target was left in a state the run could not settle.
function Journal:keep()
  self.file:close()
  self.lock:close()
end

local function parse(f)
  local out = { started = {}, finished = {}, async = {} }
  for line in f:lines() do
    local rec = json.decode(line)
    if type(rec) == "table" then
      if rec.ev == "begin" then
        out.begin = rec
      elseif rec.ev == "write" then
        out.started[rec.target] = true
      elseif rec.ev == "written" then
        out.finished[rec.target] = true
      elseif rec.ev == "async" and type(rec.handle) == "table" then
        local list = out.async[rec.target] or {}
        list[#list + 1] = rec.handle
        out.async[rec.target] = list
      elseif rec.ev == "end" then
        return nil
      end
    end
  end
  if not out.begin then return nil end
  return out
end

---Reads an unfinished journal without locking it: nil when there is none, else {begin =
---record, started = {[i] = true}, finished = {[i] = true}, async = {[i] = {handle...}}}.
---@param path string
---@return table|nil
function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local out = parse(f)
  f:close()
  return out
end

---@class sg.ClaimedJournal
---@field path string
---@field begin table the "begin" record: mode, atomic, targets
---@field started table<integer, true> targets whose writes had started
---@field finished table<integer, true> targets whose writes had finished
---@field async table<integer, table[]> per target, the handles of the async work its writes started
---@field lock file*
---@field file file*? where note appends (opened by the first note)

---Takes an unfinished journal to deal with it: nil when there is none, false and a message when
---its run is still alive, else the journal, locked until release() or remove(). A dead run's
---journal that records nothing to finish is removed (nil): one that ended but was not yet
---removed, or one whose "begin" record is torn (killed while starting, before any write).
---@param path string
---@return sg.ClaimedJournal|false|nil
---@return string? busy
function M.claim(path)
  local f = open_locked(path, "rb")
  if f == false then return false, busy_message(path) end
  if not f then return nil end
  if not require("_sg.fs").is_at(f, path) then
    -- removed by its run as it ended, between our open and our lock: what the path names now
    -- (if anything) is another run's
    f:close()
    return nil
  end
  local out = parse(f)
  if not out then
    os.remove(path)
    f:close()
    return nil
  end
  out.path, out.lock = path, f
  return setmetatable(out, { __index = {
    ---Appends a record (not fsynced, as Journal:note): the async work a recovery's writes
    ---start, for whoever takes over if this run is killed too.
    note = function(self, rec)
      if io.type(self.file) ~= "file" then
        local appender, err = io.open(self.path, "ab")
        if not appender then
          errors.raise_local(string.format("roll-out journal %s: cannot append: %s", self.path, tostring(err)))
        end
        self.file = appender
      end
      append(self, rec, false)
    end,
    ---Keeps the journal for a later attempt and unlocks it (once; later calls do nothing).
    release = function(self)
      if io.type(self.file) == "file" then self.file:close() end
      if io.type(self.lock) == "file" then self.lock:close() end
    end,
    ---Removes the journal that has been dealt with, then unlocks it.
    remove = function(self)
      if io.type(self.lock) ~= "file" then return end
      if io.type(self.file) == "file" then self.file:close() end
      os.remove(self.path)
      self.lock:close()
    end,
  } })
end

---The paths of every roll-out journal in the journal directory, sorted.
---@return string[]
function M.list()
  local dir = M.dir()
  local names, err = require("_sg.fs").list(dir)
  if not names then error("roll-out journals: cannot list " .. tostring(err), 0) end
  local out = {}
  for _, name in ipairs(names) do
    local path = dir .. "/" .. name
    -- a FIFO or a directory so named is no journal: opening a FIFO would wait for a writer
    if name:match("^sgrun%-rollout%-%x+%.journal$") and select(2, require("_sg.fs").mode(path)) then
      out[#out + 1] = path
    end
  end
  table.sort(out)
  return out
end

return M
