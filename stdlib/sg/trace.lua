-- sg.trace: the SGRUN_DEBUG=http trace of provider calls on stderr. Every header a provider
-- declares as carrying a credential is shown as [REDACTED], and every credential value (and any
-- 8 or more characters of one a server echoes) is scrubbed from URLs and bodies, because a trace
-- is exactly what users paste into bug reports.
local errors = require "sg.errors"

local M = {}

-- Headers redacted whatever the provider says: the usual carriers of credentials.
local ALWAYS = { authorization = true, ["x-api-key"] = true, ["x-auth-token"] = true,
  cookie = true, ["set-cookie"] = true, ["proxy-authorization"] = true }

local BODY_LIMIT = 2000 -- bytes of a body shown; bodies can be megabytes

---True when SGRUN_DEBUG lists "http" (comma-separated, or "all").
---@return boolean
function M.enabled()
  local v = os.getenv("SGRUN_DEBUG")
  if not v then return false end
  for item in v:gmatch("[^,%s]+") do
    if item == "http" or item == "all" then return true end
  end
  return false
end

---The header lines of a request or response, credentials redacted, sorted for stable output.
---@param headers table|nil
---@param redact string[]|nil
---@param secrets string[]|nil
---@return string[]
local function header_lines(headers, redact, secrets)
  local hidden = {}
  for _, name in ipairs(redact or {}) do hidden[name:lower()] = true end
  local lines = {}
  for name, value in pairs(headers or {}) do
    local lname = tostring(name):lower()
    local shown = (ALWAYS[lname] or hidden[lname]) and "[REDACTED]" or errors.scrub(tostring(value), secrets)
    lines[#lines + 1] = tostring(name) .. ": " .. shown
  end
  table.sort(lines)
  return lines
end

local function body_text(body, secrets)
  if type(body) ~= "string" or body == "" then return nil end
  local shown = body
  if #shown > BODY_LIMIT then shown = shown:sub(1, BODY_LIMIT) .. string.format("... (%d bytes)", #body) end
  if errors.escapes_secret(shown, secrets) then
    return string.format("[body not shown: it carries a credential in an escaped form (%d bytes)]", #body)
  end
  return errors.scrub(shown, secrets)
end

---Formats one exchange; exposed for tests.
---@param provider string
---@param op string
---@param req table {method, url, headers, body}
---@param resp table|nil {status, headers, body, time}
---@param err string|nil transport failure
---@param opts {redact: string[]|nil, secrets: string[]|nil, attempt: integer|nil}
---@return string
function M.format(provider, op, req, resp, err, opts)
  local redact, secrets = opts.redact, opts.secrets
  local out = { string.format("[sgrun http] %s %s%s", provider, op,
    (opts.attempt and opts.attempt > 1) and (" (attempt " .. opts.attempt .. ")") or "") }
  out[#out + 1] = "> " .. req.method .. " " .. errors.scrub(req.url, secrets)
  for _, line in ipairs(header_lines(req.headers, redact, secrets)) do out[#out + 1] = "> " .. line end
  local b = body_text(req.body, secrets)
  if b then out[#out + 1] = "> " .. b end
  if resp then
    out[#out + 1] = string.format("< %d (%.0f ms)", resp.status, (resp.time or 0) * 1000)
    for _, line in ipairs(header_lines(resp.headers, redact, secrets)) do out[#out + 1] = "< " .. line end
    b = body_text(resp.body, secrets)
    if b then out[#out + 1] = "< " .. b end
  else
    out[#out + 1] = "< failed: " .. errors.scrub(tostring(err), secrets)
  end
  return table.concat(out, "\n") .. "\n"
end

---Writes one exchange to stderr when the trace is on.
function M.log(provider, op, req, resp, err, opts)
  if not M.enabled() then return end
  io.stderr:write(M.format(provider, op, req, resp, err, opts))
end

return M
