-- sg.connect.credentials: a connection's credentials, from the connect options, the vendor's
-- environment variables (the whitespace around a value trimmed; a control character left inside
-- any credential is refused) or the profile file. Error messages name where a value came from,
-- never the value.
local errors = require "sg.errors"
local profiles = require "sg.connect.profiles"

local M = {}

---The value of an environment variable without the whitespace around it: a Kubernetes Secret
---made from a file, or a systemd EnvironmentFile, often ends it with a line break (or "\r\n").
---nil when unset or blank.
---@param var string
---@return string|nil
local function env_value(var)
  local v = os.getenv(var)
  v = v and v:match("^%s*(.-)%s*$")
  if v == "" then return nil end
  return v
end
M.env_value = env_value

-- Raises a user error when a credential holds a control character, which no HTTP header may
-- carry (the request would fail deep inside with a traceback). The message names where the value
-- came from, never the value.
---@param v string
---@param who string what the message starts with: "sg.connect('gcore')", "account lab"
---@param source string "the environment variable GCORE_API_KEY", ...
local function check_credential(v, who, source)
  if not v:find("%c") then return end
  errors.raise_user(string.format("%s: %s holds a control character (a line break or a tab inside " ..
    "the credential, say), which cannot be sent: set it to the credential alone, on one line " ..
    "(the value is not shown)", who, source))
end

---Reads a credential from the environment variable `var` as sg.connect does: the whitespace
---around it trimmed, nil when unset or blank. Raises a user error naming `var` (never the value)
---when a control character is left inside it.
---@param var string
---@param who string what an error message starts with ("account lab-hostup")
---@return string|nil
function M.env_credential(var, who)
  local v = env_value(var)
  if v then check_credential(v, who, "the environment variable " .. var) end
  return v
end

---A connection's credentials, first match wins: the connect options, then
---  with no profile chosen: the vendor's environment variable, then [default.provider];
---  with a profile chosen (the profile option or --profile): [profile.provider] only. The chosen
---  profile is the whole account: the environment never completes it key by key (its API key with
---  another account's project, say). A required credential it lacks is a user error naming both.
---@param def table the provider's description (sg.connect.describe)
---@param opts table the connect options
---@return table<string, string> creds by name, string[] secrets the secret values, string[] sources where each secret came from (names, never values)
function M.resolve(def, opts)
  local creds, secrets, missing, sources = {}, {}, {}, {}
  local profile_values, profile_file, profile_read = nil, nil, false
  local profile, chosen = profiles.name(opts)
  local who = "sg.connect('" .. def.name .. "')"
  for _, c in ipairs(def.credentials) do
    local v, source = opts[c.name], "the option " .. c.name
    if v == nil and not chosen then v, source = env_value(c.env), "the environment variable " .. c.env end
    if v == "" then v = nil end
    if v == nil then
      if not profile_read then
        profile_values, profile_file = profiles.section(opts, profile, def)
        profile_read = true
      end
      local key = profile_values and (profile_values[c.name] and c.name or profile_values[c.env] and c.env)
      v = key and profile_values[key] or nil
      if v == "" and chosen then v = nil end -- `api_key =` left blank: said missing, not sent
      source = string.format("'%s' under [%s.%s] in %s", key, profile, def.name,
        profile_file or profiles.path() or "the profile file")
    end
    if v ~= nil then
      if type(v) ~= "string" and type(v) ~= "number" then
        error(string.format("sg.connect('%s'): %s must be a string or a number, not a %s",
          def.name, c.name, type(v)), 0)
      end
      check_credential(tostring(v), who, source)
      creds[c.name] = tostring(v)
      if c.secret then
        secrets[#secrets + 1] = tostring(v)
        sources[#sources + 1] = source
      end
    elseif c.required then
      missing[#missing + 1] = c
    end
  end
  if #missing > 0 and chosen then
    -- the names of what is missing, never a value; the environment variable is named as not used
    -- (set, it would otherwise look like the fix)
    local c = missing[1]
    local file = profile_file or profiles.path() or "~/.config/sgrun/profiles"
    local fix = profile_values and string.format("add '%s = ...' under [%s.%s] in %s", c.name, profile, def.name, file)
      or string.format("%s has no section [%s.%s]: add it, with '%s = ...'%s", file, profile, def.name, c.name,
        profiles.guess_section(opts, profile .. "." .. def.name))
    errors.raise_user(string.format("sg.connect('%s'): profile '%s' has no %s: %s (or pass {%s = ...}); " ..
      "%s in the environment is not used with a profile chosen: a profile is one whole account",
      def.name, profile, c.name, fix, c.name, c.env))
  end
  if #missing > 0 then
    local c = missing[1]
    errors.raise_user(string.format("sg.connect('%s'): no %s: pass {%s = ...}, set the environment variable %s, " ..
      "or add '%s = ...' under [%s.%s] in %s", def.name, c.name, c.name, c.env, c.name, profile,
      def.name, profile_file or profiles.path() or "~/.config/sgrun/profiles"))
  end
  return creds, secrets, sources
end

---A digest of a connection's credentials: equal accounts share a rate limit.
---@param creds table<string, string>
---@return string
function M.digest(creds)
  local parts = {}
  for k, v in pairs(creds) do parts[#parts + 1] = tostring(k) .. "=" .. tostring(v) end
  table.sort(parts)
  local crypto = require "_sg.crypto"
  return crypto.hex_encode(crypto.sha256(table.concat(parts, "\n"))):sub(1, 16)
end

return M
