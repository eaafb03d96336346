-- sg.pretty (what the REPL prints): a string under a credential-carrying name is redacted however
-- the name is spelt (the five providers' auth headers X-API-Key and Authorization, snake_case,
-- kebab-case, camelCase, any case), and ordinary fields are shown.
local t = require "testlib"
local pretty = require "sg.pretty"

local VALUE = "hostup-demo-key-5f3a9c0d7e"

-- every credential-carrying name: the auth headers of bindings/*.c (HostUp X-API-Key; Exoscale,
-- Gcore, Genesis Cloud and Barrack Authorization), Genesis Cloud's X-Auth-Token, the credential
-- names of sg.connect (api_key, token, key, secret) and the usual spellings of such fields
local secret_names = { "X-API-Key", "x-api-key", "X-Api-Key", "api-key", "api_key", "API_KEY", "apiKey",
  "ApiKey", "x_api_key", "Authorization", "authorization", "Proxy-Authorization", "X-Auth-Token",
  "x-auth-token", "token", "access_token", "accessToken", "secret", "client_secret", "clientSecret",
  "password", "Password", "key", "Key", "private-key", "privateKey", "access_key_id", "credentials",
  "Cookie", "Set-Cookie" }
local ordinary_names = { "name", "description", "id", "author", "monkey", "x-request-id", "content-type",
  "protocol", "port", "keys_seen" }

t.test("a string under a credential-carrying name is redacted, however the name is spelt", function()
  for _, name in ipairs(secret_names) do
    local text = pretty.format({ [name] = VALUE })
    t.ok(not text:find("5f3a9c0d7e", 1, true), name .. " shows its value: " .. text)
    t.ok(text:find("<redacted>", 1, true), name .. " is marked redacted: " .. text)
  end
end)

t.test("also nested, as response headers and request tables are", function()
  local text = pretty.format({ status = 401, headers = { ["X-API-Key"] = VALUE, ["content-type"] = "json" },
    req = { headers = { Authorization = "Bearer " .. VALUE } } })
  t.ok(not text:find("5f3a9c0d7e", 1, true), text)
  t.ok(text:find('["content-type"] = "json"', 1, true), text)
end)

t.test("ordinary fields are shown", function()
  for _, name in ipairs(ordinary_names) do
    local text = pretty.format({ [name] = "shown-value" })
    t.ok(text:find("shown-value", 1, true), name .. " is hidden: " .. text)
  end
end)

t.run()
