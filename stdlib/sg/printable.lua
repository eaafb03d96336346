-- sg.printable: text from a provider (a rule's description, a group's name, an error message)
-- made safe to show on a terminal. A hostile or broken endpoint could otherwise send escape
-- sequences that erase a finding line, move the cursor or retitle the window: every C0 control
-- (but the line breaks a message may keep), DEL and the C1 controls (U+0080..U+009F, which some
-- terminals obey) are shown as \xHH or \u{HH} instead.
local M = {}

local function hex(c) return string.format("\\x%02x", c:byte()) end

---Returns s with every control character shown as an escape; with keep_lines, "\n" and "\t"
---stay as they are (a message's own layout). A non-string is returned as is.
---@param s any
---@param keep_lines boolean?
---@return any
function M.escape(s, keep_lines)
  if type(s) ~= "string" then return s end
  s = s:gsub(keep_lines and "[%z\1-\8\11-\31\127]" or "[%z\1-\31\127]", hex)
  return (s:gsub("\194([\128-\159])", function(b) return string.format("\\u{%x}", b:byte()) end))
end

return M
