-- sg.json.decode never raises on text: it returns a value, or nil and a message; what it decodes
-- encodes again (or is refused by encode with a clear message).
local json = require "sg.json"

return function(data)
  local ok, value, err = pcall(json.decode, data)
  if not ok then error("BUG: json.decode raised: " .. tostring(value), 0) end
  if value == nil then
    if type(err) ~= "string" or not err:find("invalid JSON", 1, true) then
      error("BUG: json.decode gave no usable message: " .. tostring(err), 0)
    end
    return
  end
  local good, text = pcall(json.encode, value)
  if not good and not tostring(text):find("sg.json.encode", 1, true) then
    error("BUG: json.encode of decoded data raised: " .. tostring(text), 0)
  end
end
