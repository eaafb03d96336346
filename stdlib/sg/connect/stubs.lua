-- sg.connect.stubs: the LuaLS annotation stubs (stdlib/meta/sg_providers.lua), generated from the
-- endpoint tables of the bindings:
--   sgrun -e 'io.write(require("sg.connect").stubs())' > stdlib/meta/sg_providers.lua
local request = require "sg.connect.request"

local M = {}

---The stubs, for the providers named and described as sg.connect.providers and describe do.
---@param providers string[]
---@param describe fun(provider: string): table
---@return string
function M.generate(providers, describe)
  local out = {}
  local function w(s) out[#out + 1] = s end
  w("---@meta")
  w("-- luacheck: ignore (stub bodies are empty by design)")
  w("-- LuaLS annotations for the connection objects of sg.connect: one class per provider, one")
  w("-- method per endpoint of its binding (bindings/<provider>.c). Generated from those tables;")
  w("-- tests/lua/test_connect.lua checks that it lists every endpoint. Requiring it does nothing.")
  w("")
  w("---@class sg.Connection")
  w("---@field provider string")
  w("---@field base_url string")
  w("local Connection = {}")
  w("")
  w("---Waits for the async work a method started: polls with backoff until done, failed (raises")
  w("---an sg.Error) or the deadline passes (raises with code \"timeout\").")
  w("---@async")
  w("---@param x any the value an async method returned (or an operation/task id)")
  w("---@param opts? {timeout?: number, interval?: number, max_interval?: number, factor?: number, max_errors?: integer}")
  w("---@return any final, any created_item")
  w("function Connection:wait(x, opts) end")
  w("")
  for _, name in ipairs(providers) do
    local def = describe(name)
    local cls = "sg.conn." .. name
    w("---@class " .. cls .. " : sg.Connection")
    local var = name:gsub("^%l", string.upper) .. "Connection"
    w("local " .. var .. " = {}")
    w("")
    for _, ep in ipairs(def.endpoints) do
      w("---" .. ep.doc .. ".")
      w("---`" .. ep.method .. " " .. ep.path .. "`" .. (ep.async and (" (async: " .. ep.async .. ")") or "")
        .. (ep.create and " (not idempotent: never blindly re-sent)" or ""))
      w("---@async")
      local params = request.params_of(def, ep)
      for i = 1, #params - 1 do
        if params[i] ~= "body" then w("---@param " .. params[i] .. " string|integer") end
      end
      if ep.body then
        w("---@param body table" .. (ep.body_key
          and ("|string|integer|(string|integer)[] a bare value is sent as {" .. ep.body_key .. " = value}")
          or " the JSON request body"))
      end
      w("---@param query? table query parameters" .. (ep.items and " (paging ones fetch a single page)" or ""))
      w("---@return table response the decoded JSON response, envelope included")
      w("function " .. var .. ":" .. ep.name .. "(" .. table.concat(params, ", ") .. ") end")
      w("")
    end
  end
  local names = {}
  for i, name in ipairs(providers) do names[i] = string.format("%q", name) end
  w("---@param provider " .. table.concat(names, "|"))
  w("---@param opts? table credentials by name, profile, base_url, zone, timeout, max_size, retry, transport")
  w("---@return sg.Connection")
  w("local function connect(provider, opts) end")
  w("")
  w("return { connect = connect }")
  return table.concat(out, "\n") .. "\n"
end

return M
