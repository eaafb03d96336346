--- The sixth provider's emulator module (the interface in sim/sgsim/init.lua): groups in memory,
-- X-Sixth-Key checked, no async work.
local M = { name = "sixth", prefix = "/sixth/api", demo_target = "web" }

local KEY = "sixth-demo-key"

M.credentials_banner = "Sixth: SIXTH_API_KEY=" .. KEY

function M.env(base_url)
  return { SGRUN_SIXTH_URL = base_url .. M.prefix, SIXTH_API_KEY = KEY }
end

function M.error_body(status, message)
  return { code = tostring(status), message = message }
end

function M.new_state()
  return { next_id = 1, groups = {} }
end

local function find(state, id)
  for i, g in ipairs(state.groups) do
    if g.id == id then return g, i end
  end
end

function M.handle(state, req)
  if req.headers["x-sixth-key"] ~= KEY then return 401, M.error_body(401, "bad key") end
  if req.path == "/groups" and req.method == "GET" then return 200, { groups = state.groups } end
  if req.path == "/groups" and req.method == "POST" then
    local body = req.json
    if type(body) ~= "table" or type(body.name) ~= "string" then return 400, M.error_body(400, "name") end
    local g = { id = "g" .. state.next_id, name = body.name, rules = {} }
    state.next_id = state.next_id + 1
    state.groups[#state.groups + 1] = g
    return 201, { group = g }
  end
  local id, rest = req.path:match("^/groups/([^/]+)(.*)$")
  local g, i = find(state, id)
  if not g then return 404, M.error_body(404, "no group " .. tostring(id)) end
  if rest == "/rules" and req.method == "PUT" then
    if type(req.json) ~= "table" or type(req.json.rules) ~= "table" then return 400, M.error_body(400, "rules") end
    g.rules = req.json.rules
    return 200, { group = g }
  end
  if rest == "" and req.method == "DELETE" then
    table.remove(state.groups, i)
    return 204, nil
  end
  return 405, M.error_body(405, "method not allowed")
end

return M
