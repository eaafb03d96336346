-- sg.connect.transport: where a connection sends and how: its base URL (opts.base_url,
-- SGRUN_<PROVIDER>_URL, the documented default), the refusal of plain http:// off this machine,
-- and the transport settings (allow_insecure_http, ca_file, ca_path) from the connect options or
-- the profile. `cache` is one table per connection being opened: the profile's section is read
-- into it once.
local errors = require "sg.errors"
local profiles = require "sg.connect.profiles"

local M = {}

---A transport setting (allow_insecure_http, ca_file, ca_path): connect options, else the
---profile's section. Profile values are strings: "true" opts in.
---@param def table the provider's description (sg.connect.describe)
---@param opts table the connect options
---@param name string
---@param cache table
---@return any value, string|nil source
function M.setting(def, opts, name, cache)
  if opts[name] ~= nil then return opts[name], "sg.connect option " .. name end
  if cache.values == nil then cache.values = profiles.section(opts, profiles.name(opts), def) or false end
  local v = cache.values and cache.values[name] or nil
  if v == nil then return nil end
  if name == "allow_insecure_http" then v = v == "true" or v == "1" or v == "yes" end
  return v, "profile " .. profiles.name(opts) .. "." .. def.name
end

-- Loopback hosts: plain HTTP to them never leaves the machine.
local function is_loopback(host)
  host = host:lower()
  return host == "localhost" or host:match("%.localhost$") ~= nil or host == "[::1]"
      or host:match("^127%.%d+%.%d+%.%d+$") ~= nil
end

-- Credentials travel in headers: refuse to send them in clear text off this machine unless
-- asked to for a lab. (No redirect is ever followed, so they cannot be carried elsewhere.)
local function check_scheme(def, url, source, opts, cache)
  local rest = url:match("^http://(.*)$")
  if not rest then return end
  local authority = rest:match("^([^/?#]*)"):gsub("^.*@", "")
  local host = authority:match("^(%[[^%]]*%])") or authority:match("^([^:]*)")
  if is_loopback(host) then return end
  local allowed = M.setting(def, opts, "allow_insecure_http", cache)
  if allowed then return end
  errors.raise_user(string.format("sg.connect('%s'): refusing to send credentials in clear text: %s is %q, plain " ..
    "http:// to %s, which is not this machine. Use https://, or for a lab opt in with " ..
    "{allow_insecure_http = true} in the connect options or 'allow_insecure_http = true' under [%s.%s] " ..
    "in the profile file", def.name, source, url, host, profiles.name(opts), def.name))
end

---The connection's base URL, without trailing slashes.
---@param def table the provider's description (sg.connect.describe)
---@param opts table the connect options
---@param cache table
---@return string
function M.base_url(def, opts, cache)
  local source = opts.base_url and "the base_url option" or def.base_url_env
  local url = opts.base_url or os.getenv(def.base_url_env)
  if url == nil or url == "" then
    url = def.default_base_url:gsub("{([%w_]+)}", function(name)
      local v = opts[name] or def.defaults[name]
      if v == nil then
        errors.raise_user(string.format("sg.connect('%s'): %s is required to build the API URL", def.name, name))
      end
      -- it becomes part of the host name: "evil.example/x#" would send the request elsewhere
      if not tostring(v):match("^%w[%w%-]*$") then
        errors.raise_user(string.format("sg.connect('%s'): %s %q is not a name such as %s (letters, digits " ..
          "and '-')", def.name, name, tostring(v), tostring(def.defaults[name] or "ch-gva-2")))
      end
      return tostring(v)
    end)
  end
  if type(url) ~= "string" or not url:match("^https?://[^/]") then
    errors.raise_user(string.format("sg.connect('%s'): base URL %q is not an http(s) URL (check opts.base_url or %s)",
      def.name, tostring(url), def.base_url_env))
  end
  -- a password there would be shown wherever the URL is (print(conn), the http trace, messages),
  -- and no provider authenticates so: the URL is not shown here either
  if url:match("^https?://[^/?#]*@") then
    errors.raise_user(string.format("sg.connect('%s'): %s carries a user name or password (USER:PASSWORD@ before the " ..
      "host; not shown here): remove it; credentials go in the connect options, the environment or the " ..
      "profile file", def.name, source))
  end
  check_scheme(def, url, source, opts, cache)
  return (url:gsub("/+$", ""))
end

return M
