-- sg.cli: what the shipped playbooks share: reading "provider:group" targets and --flags from
-- the command line, and connecting with the settings the environment provides.
local M = {}

---Parses "provider:group" into a provider name and a group reference: "gcore:web",
---"hostup:vm=10000" -> {vm = 10000}, "barrack:instance=BRK-1" -> {instance = "BRK-1"}.
---@param text string
---@return string provider
---@return any ref
function M.parse_target(text)
  local provider, group = tostring(text):match("^([%w_]+):(.+)$")
  if not provider then
    error(string.format("target %q: expected PROVIDER:GROUP (e.g. gcore:web, hostup:vm=10000, " ..
      "barrack:instance=BRK-1)", tostring(text)), 0)
  end
  local key, value = group:match("^(%a+)=(.+)$")
  if key then return provider, { [key] = tonumber(value) or value } end
  return provider, group
end

---Splits arguments into --flags (a set; --name=value kept as a string) and the rest, in order.
---@param args string[]
---@return table<string, string|boolean> flags
---@return string[] positional
function M.parse_args(args)
  local flags, positional = {}, {}
  for _, a in ipairs(args) do
    local name, value = a:match("^%-%-([%w%-]+)=(.*)$")
    if name then flags[name] = value
    elseif a:match("^%-%-[%w%-]+$") then flags[a:sub(3)] = true
    else positional[#positional + 1] = a end
  end
  return flags, positional
end

-- One connection per provider per playbook run.
local connections = {}

---A connection to `provider` with credentials and scope from the environment or profile.
---@param provider string
---@return sg.Connection
function M.connect(provider)
  if not connections[provider] then connections[provider] = require("sg").connect(provider) end
  return connections[provider]
end

---Prints a value for people, or as JSON with --json.
---@param value table with a __tostring and a to_table method (plans, reports)
function M.print(value)
  local options = package.loaded["sg.options"] or {}
  if options.json then print(require("sg.json").encode(value:to_table())) else print(tostring(value)) end
end

return M
