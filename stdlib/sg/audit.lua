--- Exposure audit: which rules open sensitive services to any address.
--
-- "Any address" is a prefix of length 0 (0.0.0.0/0 or ::/0), which is also what a rule without
-- a source means once normalised, so implicit any-source rules are caught as well. Only ingress
-- accept rules expose anything; remote-group sources are never reported. Defaults follow
-- Prowler's per-service checks. With policy.allow_cidrs, sources outside the trusted networks
-- are reported as well, at severity "medium".
local rule = require "sg.rule"

local M = {}

---@class sg.AuditFinding
---@field rule sg.Rule
---@field severity "critical"|"high"|"medium"
---@field why string
---@field ports integer[]? the sensitive ports the rule exposes

---@class sg.AuditPolicy
---@field ports table<integer, string>? extra sensitive TCP ports: port -> service name
---@field ignore_ports integer[]? default ports not to report
---@field allow_cidrs string[]? trusted networks: when given, sensitive ports open to any source
---outside them are reported too (severity "medium"); a rule inside them is never reported
---@field severity ("critical"|"high"|"medium")? severity of sensitive-port findings, default "high"

-- Sensitive TCP ports and their services.
M.DEFAULT_PORTS = {
  [20] = "ftp-data", [21] = "ftp", [22] = "ssh", [23] = "telnet", [445] = "smb",
  [1433] = "mssql", [1434] = "mssql", [1521] = "oracle", [2375] = "docker", [2376] = "docker",
  [3306] = "mysql", [3389] = "rdp", [5432] = "postgresql", [5601] = "kibana", [5984] = "couchdb",
  [6379] = "redis", [7199] = "cassandra", [9042] = "cassandra", [9092] = "kafka",
  [9200] = "elasticsearch", [9300] = "elasticsearch", [11211] = "memcached",
  [27017] = "mongodb", [27018] = "mongodb",
}

local function prefix_len(cidr)
  return cidr and tonumber(cidr:match("/(%d+)$"))
end

-- true when network inner lies inside network outer (both canonical)
local function contains(outer, inner)
  local o_len, i_len = prefix_len(outer), prefix_len(inner)
  if i_len < o_len then return false end
  if (outer:find(":", 1, true) == nil) ~= (inner:find(":", 1, true) == nil) then return false end
  -- cut the inner network to the outer prefix length: inside when that gives the outer network
  return rule.parse_cidr(inner:match("^(.-)/") .. "/" .. o_len, true) == outer
end

local function build_ports(policy)
  local ports = {}
  for p, name in pairs(M.DEFAULT_PORTS) do ports[p] = name end
  for p, name in pairs(policy.ports or {}) do ports[p] = name end
  for _, p in ipairs(policy.ignore_ports or {}) do ports[p] = nil end
  local list = {}
  for p in pairs(ports) do list[#list + 1] = p end
  table.sort(list)
  return ports, list
end

---Checks rules for exposure to any address. Rules may be canonical or rule-like tables (they are
---normalised, so a rule without cidr counts as any-source). Findings come in input order.
---@param rules table[]
---@param policy sg.AuditPolicy?
---@return sg.AuditFinding[]
function M.check(rules, policy)
  policy = policy or {}
  if type(rules) ~= "table" then error("audit: rules must be a list, got " .. type(rules), 2) end
  local names, sorted_ports = build_ports(policy)
  local allowed = {}
  for i, c in ipairs(policy.allow_cidrs or {}) do
    local canon, err = rule.parse_cidr(c)
    if not canon then error(string.format("audit: allow_cidrs[%d] %q %s", i, c, err), 2) end
    allowed[#allowed + 1] = canon
  end
  local severity = policy.severity or "high"

  local findings = {}
  for i, r in ipairs(rules) do
    if not rule.is_normalized(r) then r = rule.normalize(r, { where = "audit: rules[" .. i .. "]" }) end
    local source = r.direction == "ingress" and r.action == "accept" and r.cidr
    local level
    if source then
      local trusted = false
      for _, a in ipairs(allowed) do
        if contains(a, source) then trusted = true break end
      end
      if prefix_len(source) == 0 and not trusted then
        level = "any"
      elseif #allowed > 0 and not trusted then
        level = "untrusted"
      end
    end
    if level then
      local whom = level == "any" and source or (source .. ", outside the allowed networks")
      if r.protocol == "any" then
        findings[#findings + 1] = { rule = r, severity = level == "any" and "critical" or "medium",
          why = "every protocol and port is open to " .. whom }
      elseif rule.PORT_PROTOCOLS[r.protocol] and not r.port_min then
        findings[#findings + 1] = { rule = r, severity = level == "any" and "critical" or "medium",
          why = "every " .. r.protocol .. " port is open to " .. whom }
      elseif r.protocol == "tcp" then
        local hit, labels = {}, {}
        for _, p in ipairs(sorted_ports) do
          if p >= r.port_min and p <= r.port_max then
            hit[#hit + 1] = p
            labels[#labels + 1] = p .. " (" .. names[p] .. ")"
          end
        end
        if #hit > 0 then
          findings[#findings + 1] = { rule = r, severity = level == "any" and severity or "medium",
            ports = hit, why = "tcp " .. table.concat(labels, ", ") .. " open to " .. whom }
        end
      end
    end
  end
  return findings
end

return M
