-- sg.errors: the error object every failed remote call raises, for every provider:
-- {provider, op, status, code, message, request_id, retryable} with a readable __tostring, so
-- that pcall users can branch on fields and everyone else reads one line. Every string of it is
-- scrubbed of every credential the connection holds before the object exists, so no secret can
-- leak through an error, a log line or the REPL's printout.
local json = require "sg.json"

local M = {}

---@class sg.Error
---@field provider string
---@field op string the method name (vendor operation in snake_case)
---@field status integer|nil HTTP status; nil for transport failures
---@field code string|nil provider error code, or the transport code (timeout, connect, ...)
---@field message string
---@field request_id string|nil
---@field retryable boolean
---@field detail table|nil extra data (a failed task, operation or item)
---@field maybe_applied boolean|nil a non-idempotent call failed after an attempt that may have landed

local Error = {}
Error.__index = Error
Error.__name = "sg.Error"

function Error.__tostring(e)
  local parts = { e.provider or "?", " ", e.op or "?", ": " }
  if e.status then parts[#parts + 1] = "HTTP " .. e.status .. " " end
  if e.code then parts[#parts + 1] = "[" .. tostring(e.code) .. "] " end
  parts[#parts + 1] = e.message or "failed"
  if e.request_id then parts[#parts + 1] = " (request id " .. tostring(e.request_id) .. ")" end
  return table.concat(parts)
end

local LocalFailure = { __name = "sg.LocalFailure" }
LocalFailure.__tostring = function(e) return e.message end

---Raises a failure of this machine that the user can fix (a full disk, a directory sgrun may not
---write): sgrun prints the message, which must say what to do, without a traceback, and exits 1.
---@param message string
function M.raise_local(message)
  error(setmetatable({ message = message, exit_code = 1 }, LocalFailure), 0)
end

---Raises an error the user made and can fix (a group that does not exist, a file that cannot be
---read): sgrun prints the message, which must say what to fix, without a traceback, and exits
---with `exit_code` (2 unless given: README's "usage or user error").
---@param message string
---@param exit_code integer?
function M.raise_user(message, exit_code)
  error(setmetatable({ message = message, exit_code = exit_code or 2 }, LocalFailure), 0)
end

---An error as a user reads it: a string error without the traceback that sg.all's workers add
---(kept for --debug, which prints the raw error), any other error through its __tostring.
---@param err any
---@return string
function M.text(err)
  local text = type(err) == "string" and err:gsub("\nstack traceback:.*$", "") or tostring(err)
  -- a provider's message may carry terminal escape sequences: shown, not obeyed
  return require("sg.printable").escape(text, true)
end

---True when v is an error object made here.
---@param v any
---@return boolean
function M.is(v)
  return getmetatable(v) == Error
end

-- Servers echo what they were sent cut at either end ("Bad permanent token: 4242_sgr", "bad
-- token ...token minus its first character"), or a piece of it, so any run of WINDOW or more
-- consecutive characters of a secret is scrubbed wherever it stands; shorter pieces would hit
-- ordinary words and paths. A secret shorter than WINDOW is scrubbed whole, unless it is too short
-- to mean anything.
local WINDOW, MIN_SECRET = 8, 4
-- Every WINDOW characters of a secret hold one of its ANCHOR-character pieces that start at
-- 1, 1 + ANCHOR, 1 + 2 * ANCHOR...: a text is searched for those (C's memchr and memcmp), and
-- only where one stands is it looked at window by window.
local ANCHOR = WINDOW // 2

-- The forms a secret takes on the wire: as is, JSON-escaped (cjson writes "/" as "\/"; other
-- encoders escape quotes and backslashes), percent-encoded (in URLs and form bodies) and upper
-- case (servers that normalise what they echo; a long secret is matched in any letter case).
local function forms(secret)
  local out, seen = {}, {}
  local function add(f)
    if not seen[f] then
      seen[f] = true
      out[#out + 1] = f
    end
  end
  add(secret)
  local escaped = secret:gsub('[\\"]', "\\%0")
  add(escaped)
  add((escaped:gsub("/", "\\/")))
  add((secret:gsub("/", "\\/")))
  add((secret:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end)))
  add(secret:upper())
  return out
end

-- The spans {first, last} of s that hold a secret: every occurrence of a short secret's forms,
-- every WINDOW characters of a long secret's forms in any letter case. Unsorted, overlapping.
local function secret_spans(s, secrets)
  local spans = {}
  local windows, anchors = {}, {}
  for _, secret in ipairs(secrets) do
    if type(secret) == "string" and #secret >= WINDOW then
      for _, form in ipairs(forms(secret)) do
        form = form:lower()
        for i = 1, #form - WINDOW + 1 do windows[form:sub(i, i + WINDOW - 1)] = true end
        for i = 1, #form - ANCHOR + 1, ANCHOR do anchors[form:sub(i, i + ANCHOR - 1)] = true end
      end
    elseif type(secret) == "string" and #secret >= MIN_SECRET then
      for _, form in ipairs(forms(secret)) do
        local i = s:find(form, 1, true)
        while i do
          spans[#spans + 1] = { i, i + #form - 1 }
          i = s:find(form, i + 1, true)
        end
      end
    end
  end
  if next(anchors) == nil then return spans end
  local lower = s:lower()
  for anchor in pairs(anchors) do
    local at = lower:find(anchor, 1, true)
    while at do
      -- a window holding this anchor starts at most ANCHOR - 1 characters before it
      for i = math.max(1, at - ANCHOR + 1), at do
        if windows[lower:sub(i, i + WINDOW - 1)] then spans[#spans + 1] = { i, i + WINDOW - 1 } end
      end
      at = lower:find(anchor, at + 1, true)
    end
  end
  return spans
end

---Replaces every secret, and any run of 8 or more consecutive characters of one (a prefix, a
---suffix, a piece of the middle), raw, JSON-escaped or percent-encoded, in any letter case, with
---[REDACTED]: once per run, however many pieces of however many secrets make it up. A secret
---shorter than 8 characters is replaced only whole (raw, escaped, encoded or upper case).
---@param s string
---@param secrets string[]|nil
---@return string
function M.scrub(s, secrets)
  if type(s) ~= "string" or not secrets then return s end
  local spans = secret_spans(s, secrets)
  if #spans == 0 then return s end
  table.sort(spans, function(a, b) return a[1] < b[1] end)
  local out, kept = {}, 1
  local first, last = spans[1][1], spans[1][2]
  for i = 2, #spans + 1 do
    local span = spans[i]
    if span and span[1] <= last + 1 then
      last = math.max(last, span[2])
    else
      out[#out + 1] = s:sub(kept, first - 1)
      out[#out + 1] = "[REDACTED]"
      kept = last + 1
      if span then first, last = span[1], span[2] end
    end
  end
  out[#out + 1] = s:sub(kept)
  return table.concat(out)
end

---Whether s carries a secret (or 8 characters of one) in a form scrub does not know: escaped
---character by character as JSON \uXXXX or as %XX. Such a text is shown whole or not at all,
---since scrubbing the decoded copy would not say where the escaped run stands in s.
---@param s string
---@param secrets string[]|nil
---@return boolean
function M.escapes_secret(s, secrets)
  if type(s) ~= "string" or not secrets then return false end
  local decoded = s
  if s:find("\\u%x%x%x%x") then
    decoded = decoded:gsub("\\u(%x%x%x%x)", function(h) return utf8.char(tonumber(h, 16)) end)
  end
  if s:find("%%%x%x") then decoded = decoded:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end) end
  return decoded ~= s and #secret_spans(decoded, secrets) > 0
end

-- A copy of v with every string in it (keys too) scrubbed; tables are copied, not changed.
local function scrub_all(v, secrets, depth)
  if type(v) == "string" then return M.scrub(v, secrets) end
  if type(v) ~= "table" or v == json.null or depth > 20 or getmetatable(v) ~= nil and not json.is_array(v) then
    return v
  end
  local out = json.is_array(v) and json.array() or {}
  for k, item in pairs(v) do out[scrub_all(k, secrets, depth + 1)] = scrub_all(item, secrets, depth + 1) end
  return out
end

---A copy of a decoded value with every string in it (keys too) scrubbed of `secrets`.
---@param v any
---@param secrets string[]|nil
---@return any
function M.scrub_value(v, secrets)
  return scrub_all(v, secrets, 0)
end

-- The fields sgrun fills from the provider's description, never from what a server says: kept as
-- they are (a piece of a secret may spell a provider's name, as the emulator's Exoscale one does).
local OWN = { provider = true, op = true }

---Makes an error object. Every string in it (message, code, request_id, detail...) but the
---provider and operation names is scrubbed of `secrets`: a server may echo a credential in any
---field.
---@param fields table
---@param secrets string[]|nil
---@return sg.Error
function M.new(fields, secrets)
  local e = setmetatable({}, Error)
  for k, v in pairs(fields) do e[k] = OWN[k] and v or scrub_all(v, secrets, 0) end
  e.message = M.scrub(tostring(e.message or "request failed"), secrets)
  e.retryable = e.retryable and true or false
  return e
end

-- Follows a dotted path ("pagination.count") through nested tables.
local function dig(t, path)
  for key in path:gmatch("[^.]+") do
    if type(t) ~= "table" then return nil end
    t = t[key]
  end
  return t
end
M.dig = dig

-- The first candidate field ("a,b,c") holding a usable value, as a string.
local function first(body, candidates)
  if type(body) ~= "table" or not candidates then return nil end
  for name in candidates:gmatch("[^,]+") do
    local v = dig(body, name)
    if type(v) == "string" and v ~= "" then return v end
    if type(v) == "number" then return tostring(v) end
    if type(v) == "table" and v ~= json.null and next(v) ~= nil then
      local ok, text = pcall(json.encode, v)
      if ok then return text end
    end
  end
end

local RETRYABLE_STATUS = { [408] = true, [429] = true, [500] = true, [502] = true, [503] = true,
  [504] = true }

---Reads a provider's error response into an error object, using the field names its binding
---declares (def.errors: code, message, request_id as comma-separated candidates).
---@param def table provider description
---@param op string
---@param resp table {status, headers, body}
---@param secrets string[]|nil
---@return sg.Error
function M.from_response(def, op, resp, secrets)
  local spec = def.errors or {}
  local body = resp.body
  local decoded = type(body) == "string" and body ~= "" and json.decode(body) or nil
  local message = first(decoded, spec.message)
  local headers = resp.headers or {}
  local status = tonumber(resp.status) or 0
  if not message and status >= 300 and status < 400 then
    -- sgrun follows no redirect: credentials would go wherever it points
    message = string.format("a redirect%s, which sgrun does not follow: check the provider's base URL",
      headers.location and (" to " .. tostring(headers.location)) or " without a Location")
  elseif not message then
    -- not the documented shape: show the start of the body rather than nothing
    message = (type(body) == "string" and body ~= "") and body:sub(1, 200) or "(no body)"
  end
  return M.new({
    provider = def.name, op = op, status = resp.status,
    code = first(decoded, spec.code),
    message = message,
    request_id = first(decoded, spec.request_id)
        or (spec.request_id_header and headers[spec.request_id_header]) or nil,
    retryable = RETRYABLE_STATUS[resp.status] or false,
  }, secrets)
end

return M
