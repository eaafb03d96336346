-- sg.cli: what the shipped playbooks share: strict reading of their options and of
-- "provider:group" targets, user errors that end the run with exit 2 and no traceback,
-- connecting with the settings the environment provides, and printing reports.
local M = {}

---@class sg.UsageError
---@field message string what went wrong and what to do
---@field exit_code integer 2: sgrun prints the message without a traceback and exits with it

local UsageError = { __name = "sg.UsageError" }
UsageError.__tostring = function(e) return e.message end

---Ends the run with exit status 2 and `message` (no traceback: the user has something to fix).
---@param message string
---@param usage string? the playbook's usage line, shown below the message
function M.usage_error(message, usage)
  if usage then message = message .. "\n" .. usage end
  error(setmetatable({ message = message, exit_code = 2 }, UsageError), 0)
end

---True when v is an error raised by usage_error.
---@param v any
---@return boolean
function M.is_usage_error(v)
  return getmetatable(v) == UsageError
end

local function providers()
  local list = require("_sg.providers")
  local names = table.move(list, 1, #list, 1, {})
  table.sort(names)
  return names
end

local function is_provider(name)
  for _, known in ipairs(providers()) do
    if name == known then return true end
  end
  return false
end

-- "expected PROVIDER:GROUP such as barrack:web, hostup:vm=10000 or barrack:instance=BRK-100001A":
-- the references other than a name come from the adapters that take them.
local function target_form(forms)
  local examples = { providers()[1] .. ":web" }
  local keys = {}
  for key in pairs(forms) do keys[#keys + 1] = key end
  table.sort(keys)
  for _, key in ipairs(keys) do
    local f = forms[key]
    examples[#examples + 1] = string.format("%s:%s=%s", f.provider, key, f.form.example)
  end
  local last = table.remove(examples)
  return "expected PROVIDER:GROUP such as " ..
    (#examples > 0 and table.concat(examples, ", ") .. " or " or "") .. last
end

-- The group reference of a target's text after "provider:": "vm=10000" -> {vm = 10000},
-- "instance=BRK-1" -> {instance = "BRK-1"}, anything else the text itself.
local function target_ref(text, group)
  local key, value = group:match("^(%a+)=(.*)$")
  if not key then return group end
  local forms = require("sg.groups").ref_forms()
  local known = forms[key]
  if not known then
    M.usage_error(string.format("target %q: unknown reference %q: %s", text, key, target_form(forms)))
  end
  local example = string.format("%s:%s=%s", known.provider, key, known.form.example)
  if known.form.type == "integer" then
    local n = math.tointeger(tonumber(value))
    if not n or n <= 0 or not value:match("^%d+$") then
      M.usage_error(string.format("target %q: %s= takes a positive whole number, as in %s", text, key, example))
    end
    return { [key] = n }
  end
  if value == "" then
    M.usage_error(string.format("target %q: %s= needs a value, as in %s", text, key, example))
  end
  return { [key] = value }
end

---Whether text reads as a target of a known provider, its name in any letter case ("gcore:web",
---"GCORE:web", and "gcore:" with no group). Such an argument is a target always, never a file of that name in the current
---directory (which another user may have planted there, or an earlier command written): a file
---so named is given as ./gcore:web, and a name in another case is the usage error parse_target
---gives, not whatever file happens to be there.
---@param text string
---@return boolean
function M.names_target(text)
  local provider = type(text) == "string" and text:match("^([%w_]+):")
  return provider and is_provider(provider:lower()) or false
end

---Whether an argument that may be a target or a file is meant as a target: one that names_target,
---or "word:..." that names no file (parse_target then says the provider is unknown).
---@param text string
---@return boolean
function M.is_target(text)
  if M.names_target(text) then return true end
  if type(text) ~= "string" or not text:match("^[%w_]+:.") then return false end
  -- stat, not open: opening a FIFO of that name would block
  return require("_sg.fs").mode(text) == nil
end

---Parses "provider:group" into a provider name and a group reference: "gcore:web",
---"hostup:vm=10000" -> {vm = 10000}, "barrack:instance=BRK-1" -> {instance = "BRK-1"}.
---A malformed target, or a reference of a form the provider does not take (hostup:web,
---gcore:vm=1), is a usage error naming the expected form.
---@param text string
---@return string provider
---@return any ref
function M.parse_target(text)
  text = tostring(text)
  local provider, group = text:match("^([%w_]+):(.+)$")
  if not provider then
    M.usage_error(string.format("target %q: %s", text, target_form(require("sg.groups").ref_forms())))
  end
  local known = providers()
  if not is_provider(provider) then
    local lower = is_provider(provider:lower()) and provider:lower()
    M.usage_error(string.format("target %q: unknown provider %q (known: %s)%s", text, provider,
      table.concat(known, ", "), lower and ("; provider names are lower case: " .. lower) or ""))
  end
  local ref = target_ref(text, group)
  local why = require("sg.groups").ref_problem(provider, ref)
  if why then M.usage_error(string.format("target %q: %s", text, why)) end
  return provider, ref
end

-- sgrun's own options: after the playbook name they would reach the playbook, not sgrun.
local SGRUN_OPTIONS = { "dry-run", "json", "sim", "profile", "every", "cron", "log-format", "no-lock",
  "lock-name", "debug", "state", "seed", "tls" }

---@class sg.CliSpec
---@field usage string the usage line(s), printed with every usage error and by --help
---@field options table<string, "flag"|"seconds"|string>? "flag": a boolean; "seconds": a
---positive number; any other text names a string value (shown in messages, e.g. "FILE")

---Reads a playbook's arguments strictly: options the spec declares (--name, --name=VALUE or
-----name VALUE), everything else positional in order ("--" ends the options). An undeclared
---option, a missing or malformed value, or one of sgrun's own options (which belong before the
---playbook name) is a usage error; --help prints the usage and exits 0.
---@param args string[]
---@param spec sg.CliSpec
---@return table<string, string|number|boolean> flags
---@return string[] positional
function M.parse_args(args, spec)
  local declared = spec.options or {}
  local flags, positional = {}, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--" then
      table.move(args, i + 1, #args, #positional + 1, positional)
      break
    elseif a == "--help" or a == "-h" then
      print(spec.usage)
      os.exit(0)
    elseif a:sub(1, 1) == "-" and #a > 1 and not a:match("^%-%d") then
      local name, value = a:match("^%-%-([%w%-]+)=(.*)$")
      name = name or a:match("^%-%-([%w%-]+)$")
      local kind = name and declared[name]
      if not kind then
        for _, own in ipairs(SGRUN_OPTIONS) do
          if name == own then
            M.usage_error(string.format("--%s is an option of sgrun, not of the playbook: put --%s " ..
              "before the playbook name", own, own), spec.usage)
          end
        end
        M.usage_error(string.format("unknown option %s", a), spec.usage)
      end
      if kind == "flag" then
        if value then M.usage_error(string.format("--%s takes no value", name), spec.usage) end
        flags[name] = true
      else
        if not value then
          i = i + 1
          value = args[i]
          if value == nil then
            M.usage_error(string.format("--%s needs a value (%s)", name, kind), spec.usage)
          end
          -- a forgotten value must not swallow the next option or target: "--save --additive"
          -- would otherwise run authoritatively, "--save gcore:web ..." lose a target
          if value:match("^%-%-?%a") then
            M.usage_error(string.format("--%s needs a value (%s) before %s (to name a file that " ..
              "starts with '-', write --%s=%s)", name, kind, value, name, value), spec.usage)
          end
          if kind == "FILE" and M.names_target(value) then
            M.usage_error(string.format("--%s needs a file name, and %s is a target (to name a " ..
              "file so, write --%s=./%s)", name, value, name, value), spec.usage)
          end
        end
        if kind == "seconds" then
          -- decimal only: tonumber would also read "0x10" as 16 and "1e3" as 1000
          local decimal = value:match("^%d+%.?%d*$") or value:match("^%.%d+$")
          local n = decimal and tonumber(value)
          if not n or n <= 0 then
            M.usage_error(string.format("--%s takes a number of seconds greater than 0, not %q", name,
              value), spec.usage)
          end
          flags[name] = n
        else
          if value == "" then M.usage_error(string.format("--%s needs a %s", name, kind), spec.usage) end
          flags[name] = value
        end
      end
    else
      positional[#positional + 1] = a
    end
    i = i + 1
  end
  return flags, positional
end

-- One connection per provider per playbook run.
local connections = {}

---A connection to `provider` with credentials and scope from the environment or profile; a
---missing credential or unknown provider is a usage error (the user has settings to fix).
---@param provider string
---@param opts {timeout: number?}? the first call's options hold for the whole run
---@return sg.Connection
function M.connect(provider, opts)
  if not connections[provider] then
    local ok, conn = pcall(require("sg").connect, provider, opts)
    if not ok then M.usage_error(tostring(conn)) end
    connections[provider] = conn
  end
  return connections[provider]
end

---Reads a snapshot file; a file that cannot be read is a usage error.
---@param path string
---@return sg.Snapshot
function M.load(path)
  local ok, snap = pcall(require("sg").load, path)
  if not ok then M.usage_error(tostring(snap)) end
  return snap
end

---Whether a standard stream is a terminal (sgrun records it in sg.options.tty).
---@param name "stdin"|"stdout"|"stderr"
---@return boolean
function M.isatty(name)
  local tty = (package.loaded["sg.options"] or {}).tty or {}
  return tty[name] == true
end

---Whether output to a standard stream gets colour: a terminal, and NO_COLOR unset or empty.
---@param name "stdout"|"stderr"
---@return boolean
function M.color(name)
  local no_color = os.getenv("NO_COLOR")
  if no_color and no_color ~= "" then return false end
  return M.isatty(name)
end

---Prints a value for people, or as JSON with --json.
---@param value table with a __tostring and a to_table method (plans, reports)
function M.print(value)
  local options = package.loaded["sg.options"] or {}
  if options.json then print(require("sg.json").encode(value:to_table())) else print(tostring(value)) end
end

return M
