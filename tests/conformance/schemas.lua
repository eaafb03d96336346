-- Every provider the build lists (_sg.providers) has its vendor JSON Schema,
-- tests/schemas/NAME.schema.json, and it parses as a JSON object. A missing one fails naming the
-- file to write. (Registered as ctest conformance/schemas; see tests/CMakeLists.txt.)
local t = require "testlib"
local json = require "sg.json"

local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local ROOT = HERE .. "/../.."

for _, name in ipairs(require "_sg.providers") do
  t.test(name .. ": vendor schema", function()
    local file = "tests/schemas/" .. name .. ".schema.json"
    local f = io.open(ROOT .. "/" .. file, "r")
    t.ok(f, file .. ": missing; write the provider's request/response JSON Schema there")
    local doc = json.decode(f:read("a"))
    f:close()
    t.ok(type(doc) == "table", file .. ": not a JSON object")
  end)
end

t.run()
