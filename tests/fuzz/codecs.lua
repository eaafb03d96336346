-- Provider rule decoders on arbitrary JSON: each either returns canonical rules or raises an
-- error that names the provider; what decodes and translates exactly or lossily also encodes.
local json = require "sg.json"
local codec = require "sg.codec"

local providers = require "_sg.providers"

return function(data)
  local raws = json.decode(data)
  if type(raws) ~= "table" then return end
  if raws[1] == nil then raws = { raws } end
  for _, name in ipairs(providers) do
    local c = codec.get(name)
    local ok, rules = pcall(codec.decode_all, c, raws, {})
    if not ok then
      if type(rules) ~= "string" or not rules:find(name, 1, true) then
        error("BUG: " .. name .. " decode failed without naming the provider: " .. tostring(rules), 0)
      end
    else
      for _, r in ipairs(rules) do
        local tr = c.translate(r)
        if tr.rule then
          local enc_ok, err = pcall(c.encode, tr.rule, { group = { id = "g", name = "g" },
            group_ids = setmetatable({}, { __index = function(_, k) return "id-" .. tostring(k) end }) })
          if not enc_ok then error("BUG: " .. name .. " could not encode a translated rule: " .. tostring(err), 0) end
        end
      end
    end
  end
end
