-- sg.journal: the intent journal of a roll-out, so that a killed run can be completed or undone
-- by the next run of the same roll-out.
--
-- One small file per roll-out, next to the playbook locks (the directory runtime/schedule.c
-- checks and uses), named after the
-- roll-out's identity (its targets, mode and atomicity). It holds JSON lines, each flushed and
-- fsynced before the step it announces: "begin" with every target's snapshot and plan, then per
-- target "write" (its writes are starting) and "written" (they finished, successfully or not).
-- A finished run removes the file. A torn last line (a kill mid-append) is ignored.
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
---@field file file*
local Journal = {}
Journal.__index = Journal

---Starts a journal at path (replacing an old one) with its first record.
---@param path string
---@param begin table the "begin" record
---@return sg.Journal
function M.start(path, begin)
  local f, err = io.open(path, "wb")
  if not f then
    error(string.format("roll-out journal %s: cannot write: %s (set SGRUN_LOCK_DIR to a writable directory)",
      path, tostring(err)), 0)
  end
  local j = setmetatable({ path = path, file = f }, Journal)
  begin.ev = "begin"
  j:record(begin)
  local dir = path:match("^(.*)/[^/]*$") or "."
  fsync(dir)
  return j
end

---Appends one record, flushed and fsynced before returning.
---@param rec table
function Journal:record(rec)
  local ok, err = self.file:write(json.encode(rec), "\n")
  if ok then ok, err = self.file:flush() end
  if ok then ok, err = fsync(self.path) end
  if not ok then error(string.format("roll-out journal %s: write failed: %s", self.path, tostring(err)), 0) end
end

---Ends the run: the journal is removed.
function Journal:finish()
  self.file:close()
  os.remove(self.path)
end

---Reads an unfinished journal: nil when there is none, else {begin = record, started = {[i] =
---true}, finished = {[i] = true}}.
---@param path string
---@return table|nil
function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local out = { started = {}, finished = {} }
  for line in f:lines() do
    local rec = json.decode(line)
    if type(rec) == "table" then
      if rec.ev == "begin" then
        out.begin = rec
      elseif rec.ev == "write" then
        out.started[rec.target] = true
      elseif rec.ev == "written" then
        out.finished[rec.target] = true
      end
    end
  end
  f:close()
  if not out.begin then return nil end
  return out
end

---Removes a journal that has been dealt with.
---@param path string
function M.remove(path)
  os.remove(path)
end

return M
