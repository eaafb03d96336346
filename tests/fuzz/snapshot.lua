-- Snapshot files: sg.load on arbitrary bytes returns a snapshot or raises an error that reads
-- "snapshot <path>: ..." (a user error object, printed without a traceback).
local snapshot_file = require "sg.snapshot_file"

local path = os.tmpname()

return function(data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
  local ok, err = pcall(snapshot_file.load, path)
  if not ok and tostring(err):sub(1, 9) ~= "snapshot " then
    error("BUG: sg.load raised an unclear error: " .. tostring(err), 0)
  end
end
