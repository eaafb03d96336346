--- A throw-away sixth provider for tests/lua/test_sixth_provider.lua: the description table a
-- bindings/NAME.c would push (bindings/provider.h), written as a Lua table so that the test can
-- add a provider without building one. Groups carry their rules; the rule list is replaced whole.
local function ep(name, method, path, flags, doc)
  local e = { name = name, method = method, path = path, doc = doc, body = false, read = false, create = false }
  for f in (flags or ""):gmatch("%a+") do e[f] = true end
  return e
end

local endpoints = {
  ep("list_groups", "GET", "/groups", "read", "List groups with their rules"),
  ep("create_group", "POST", "/groups", "body create", "Create a group {name}"),
  ep("replace_rules", "PUT", "/groups/{group_id}/rules", "body", "Replace a group's rules {rules}"),
  ep("delete_group", "DELETE", "/groups/{group_id}", nil, "Delete a group"),
}
local by_name = {}
for _, e in ipairs(endpoints) do by_name[e.name] = e end

return {
  name = "sixth",
  base_url_env = "SGRUN_SIXTH_URL",
  default_base_url = "https://sixth.invalid/api",
  defaults = {},
  scope = {},
  credentials = { { name = "api_key", env = "SIXTH_API_KEY", secret = true, required = true } },
  endpoints = endpoints,
  endpoint = by_name,
  auth = function(req, creds) req.headers["X-Sixth-Key"] = creds.api_key end,
  redact = { "x-sixth-key" },
  errors = { code = "code", message = "message" },
  paging = {},
  async = {},
}
