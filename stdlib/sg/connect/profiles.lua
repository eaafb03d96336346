-- sg.connect.profiles: the profile file (SGRUN_PROFILES or ~/.config/sgrun/profiles;
-- [profile.provider] sections of key = value; refused when group/other can read it or it is not
-- the user's or root's), and which profile a connection reads.
local errors = require "sg.errors"
local fs = require "_sg.fs"

local M = {}

---@return string|nil path
function M.path()
  local p = os.getenv("SGRUN_PROFILES")
  if p and p ~= "" then return p end
  local home = os.getenv("HOME")
  if home and home ~= "" then return home .. "/.config/sgrun/profiles" end
end

-- A key as a message names it: a credential pasted on a line of its own reads as a key
-- ("dG9rZW4=" is key = ""), so a key is named only when it looks like one, or like a known one
-- misspelt (`guess`).
local function shown_key(k, guess)
  return (guess or (#k <= 32 and k:match("^[%l_][%l%d_]*$"))) and ("'" .. k .. "'")
    or "(not shown: it does not look like a key name; a credential on a line of its own?)"
end

---Reads every section of the profile file: {["profile.provider"] = {key = value}} (empty when
---the file does not exist) and its path (nil when neither SGRUN_PROFILES nor HOME names one).
---Raises when the file is readable by others or belongs to someone other than the invoking user
---or root (checked on the opened file, symlinks by target), or when a line is not
---`key = value`, `[profile.provider]`, blank or a comment. A caller that connects many accounts
---reads it once and passes the result as the `profiles` connect option.
---@return table<string, table<string, string>> sections, string|nil path
function M.read_profiles()
  local path = M.path()
  if not path then return {} end
  local text, err, kind = fs.read_private(path)
  if not text then
    if kind == "missing" then return {}, path end
    errors.raise_user("sg.connect: " .. err)
  end
  local sections, values, name, lineno = {}, nil, nil, 0
  local first_line = {} -- per section, the line each key was given on
  for line in (text .. "\n"):gmatch("(.-)\r?\n") do
    lineno = lineno + 1
    line = line:match("^%s*(.-)%s*$")
    if line ~= "" and not line:match("^[#;]") then
      local section = line:match("^%[%s*(.-)%s*%]$")
      if section then
        name = section
        sections[name] = sections[name] or {}
        first_line[name] = first_line[name] or {}
        values = sections[name]
      else
        local k, v = line:match("^([%w_%.%-]+)%s*=%s*(.-)$")
        if not k then
          errors.raise_user(string.format("sg.connect: %s line %d: expected 'key = value' or '[profile.provider]'",
            path, lineno))
        end
        -- either would otherwise be dropped or overridden without a word (values never shown)
        if not values then
          errors.raise_user(string.format("sg.connect: %s line %d: key %s is before any [profile.provider] " ..
            "section; put it under the section of the account it belongs to", path, lineno, shown_key(k)))
        end
        if first_line[name][k] then
          errors.raise_user(string.format("sg.connect: %s line %d: key %s is given again in [%s] (first on line " ..
            "%d); keep the one that is meant", path, lineno, shown_key(k), name, first_line[name][k]))
        end
        first_line[name][k] = lineno
        values[k] = v:match('^"(.*)"$') or v:match("^'(.*)'$") or v
      end
    end
  end
  return sections, path
end

---Reads [profile.provider] from the profile file: a table of key = value, or nil when the
---file or the section does not exist; raises as read_profiles does.
---@param profile string
---@param provider string
---@return table|nil values, string|nil path
function M.read_profile(profile, provider)
  local sections, path = M.read_profiles()
  return sections[profile .. "." .. provider], path
end

---"; did you mean [name]?" for a section name that is not in the profile file but is close to
---one that is (a misspelt --profile), else "".
---@param opts table the connect options (their `profiles`, when given, are the file's sections)
---@param name string "profile.provider"
---@return string
function M.guess_section(opts, name)
  local sections = opts.profiles
  if sections == nil then
    local ok, read = pcall(M.read_profiles)
    sections = ok and read or {}
  end
  local names = {}
  for section in pairs(sections) do names[#names + 1] = section end
  table.sort(names)
  local guess = require("sg.optcheck").nearest(name, names)
  return guess and string.format("; did you mean [%s]?", guess) or ""
end

---The connection's [profile.provider] section: from the `profiles` option (the sections
---read_profiles returned) when given, else from the file. Raises on a key that is neither one of
---the provider's credentials (by name or environment variable) nor a transport setting.
---@param opts table the connect options
---@param profile string
---@param def table the provider's description (sg.connect.describe)
---@return table|nil values, string|nil path
function M.section(opts, profile, def)
  local provider = def.name
  local values, path
  if opts.profiles ~= nil then
    values = opts.profiles[profile .. "." .. provider]
  else
    values, path = M.read_profile(profile, provider)
  end
  if values then
    -- a misspelt key would be dropped: a missing credential then says to add what is there, and a
    -- misspelt ca_file would leave TLS trusting the system's CAs
    local known = { "allow_insecure_http", "ca_file", "ca_path" }
    for _, c in ipairs(def.credentials) do
      known[#known + 1] = c.name
      known[#known + 1] = c.env
    end
    local k, guess, sorted = require("sg.optcheck").first_unknown(values, known)
    if k ~= nil then
      local named = shown_key(k, guess)
      errors.raise_user(string.format("sg.connect('%s'): %s [%s.%s]: unknown key %s%s (known: %s)", provider,
        path or M.path() or "the profile file", profile, provider, named,
        guess and ("; did you mean '" .. guess .. "'?") or "", table.concat(sorted, ", ")))
    end
  end
  return values, path
end

---The profile a connection reads, and whether it was chosen (the profile option or --profile)
---rather than being "default".
---@param opts table the connect options
---@return string profile, boolean chosen
function M.name(opts)
  local options = package.loaded["sg.options"]
  local chosen = opts.profile or (options and options.profile)
  return chosen or "default", chosen ~= nil
end

return M
