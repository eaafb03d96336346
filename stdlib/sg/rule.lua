--- The canonical firewall rule: one shape for every provider.
--
-- A canonical rule is a plain table (see docs/PRODUCT.md, "The canonical rule"):
--   direction   "ingress" | "egress"
--   protocol    lower-case name ("tcp", "udp", "icmp", "icmpv6", "any", "esp", ...)
--   port_min, port_max   1..65535, both nil = all ports
--   cidr        canonical CIDR ("10.0.0.0/8", "2001:db8::/32"); any is written out
--   remote_group  name of another group, instead of cidr
--   ethertype   "IPv4" | "IPv6", derived from cidr
--   icmp_type, icmp_code   0..255, nil = any
--   action      "accept" (default) | "drop" | "reject"
--   description free text, not part of the identity
--
-- Decisions worth knowing:
-- * Host bits in a CIDR ("10.0.0.1/8") are an error by default: widening to 10.0.0.0/8 or
--   narrowing to 10.0.0.1/32 silently would change who can connect. Provider decoders pass
--   `clear_host_bits = true`, because there the provider has already decided what the rule means.
-- * "icmp" on an IPv6 network is ICMPv6 (ICMPv4 cannot travel over IPv6), so it is stored as
--   "icmpv6"; that keeps rules read back from OpenStack-style clouds equal to what was written.
-- * A rule without cidr and remote_group means any source: "0.0.0.0/0", or "::/0" when the
--   rule says ethertype = "IPv6".
local cjson = require "cjson"

local M = {}

local NULL = cjson.null
local type, tostring, tonumber, next = type, tostring, tonumber, next
local mtointeger = math.tointeger
local sformat, smatch, slower, sfind, ssub, sgsub, sbyte = string.format, string.match,
  string.lower, string.find, string.sub, string.gsub, string.byte
local concat, sort = table.concat, table.sort

---@class sg.Rule
---@field direction "ingress"|"egress"
---@field protocol string
---@field port_min integer?
---@field port_max integer?
---@field cidr string?
---@field remote_group string?
---@field ethertype "IPv4"|"IPv6"
---@field icmp_type integer?
---@field icmp_code integer?
---@field action "accept"|"drop"|"reject"
---@field description string?

---@class sg.NormalizeOpts
---@field clear_host_bits boolean? clear host bits of a CIDR instead of raising (for provider data)
---@field where string? prefix for error messages instead of "rule" (e.g. "web.json: rules[3]")

M.ANY_V4 = "0.0.0.0/0"
M.ANY_V6 = "::/0"

--- JSON null as decoded by cjson; `absent` treats it like nil.
M.NULL = NULL

---True when v is nil or JSON null.
---@param v any
---@return boolean
function M.absent(v)
  return v == nil or v == NULL
end

-- Protocols whose rules may carry ports (the set Neutron and Proxmox validate ports for).
local PORT_PROTOCOLS = { tcp = true, udp = true, udplite = true, sctp = true, dccp = true }
---@type table<string, boolean>
M.PORT_PROTOCOLS = PORT_PROTOCOLS

-- IANA numbers to the names the providers use (OpenStack spellings where they differ from
-- /etc/protocols, since Gcore and Barrack speak Neutron). 58 is "icmpv6" as in the canonical rule.
local PROTOCOL_BY_NUMBER = {
  [0] = "hopopt", [1] = "icmp", [2] = "igmp", [4] = "ipip", [6] = "tcp", [8] = "egp",
  [17] = "udp", [33] = "dccp", [41] = "ipv6-encap", [43] = "ipv6-route", [44] = "ipv6-frag",
  [46] = "rsvp", [47] = "gre", [50] = "esp", [51] = "ah", [58] = "icmpv6", [59] = "ipv6-nonxt",
  [60] = "ipv6-opts", [89] = "ospf", [112] = "vrrp", [113] = "pgm", [132] = "sctp",
  [136] = "udplite",
}
M.PROTOCOL_BY_NUMBER = PROTOCOL_BY_NUMBER

-- Other spellings of the same protocol. "ipencap" is /etc/protocols' name for 4 (IP-in-IP).
local PROTOCOL_ALIASES = {
  all = "any", ["-1"] = "any", ["*"] = "any", ip = "any",
  ["ipv6-icmp"] = "icmpv6", icmp6 = "icmpv6", ipencap = "ipip", ospfigp = "ospf",
}

local ACTIONS = { accept = "accept", allow = "accept", drop = "drop", deny = "drop",
  reject = "reject" }
local DIRECTIONS = { ingress = "ingress", egress = "egress" }

local KNOWN_FIELDS = {
  direction = true, protocol = true, port_min = true, port_max = true, port = true, cidr = true,
  remote_group = true, ethertype = true, icmp_type = true, icmp_code = true, action = true,
  description = true,
}

local function fail(where, fmt, ...)
  error(sformat("%s: " .. fmt, where, ...), 0)
end

local function show(v)
  if type(v) == "string" then return sformat("%q", v) end
  return tostring(v)
end

---------------------------------------------------------------------------------------------------
-- CIDR parsing

local function octet(part)
  -- a leading zero reads as octal in some parsers: refuse rather than guess
  if #part > 3 or (#part > 1 and sbyte(part) == 48) then return nil end
  local v = tonumber(part)
  if v > 255 then return nil end
  return v
end

local function ipv4_value(s)
  local a, b, c, d = smatch(s, "^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return nil end
  a, b, c, d = octet(a), octet(b), octet(c), octet(d)
  if not (a and b and c and d) then return nil end
  return a << 24 | b << 16 | c << 8 | d
end

local function ipv4_text(n)
  return sformat("%d.%d.%d.%d", n >> 24 & 255, n >> 16 & 255, n >> 8 & 255, n & 255)
end

-- Returns the 8 16-bit groups of an IPv6 address, or nil.
local function ipv6_groups(s)
  if sfind(s, "%%") then return nil end -- zone ids name an interface, not a network
  local head, tail = s, nil
  local i = sfind(s, "::", 1, true)
  if i then
    head, tail = ssub(s, 1, i - 1), ssub(s, i + 2)
    if sfind(tail, "::", 1, true) then return nil end
  end
  local function parse(part, out, allow_v4)
    if part == "" then return true end
    local pieces = {}
    for piece in (part .. ":"):gmatch("([^:]*):") do pieces[#pieces + 1] = piece end
    for k, piece in ipairs(pieces) do
      if k == #pieces and allow_v4 and sfind(piece, ".", 1, true) then
        local v4 = ipv4_value(piece)
        if not v4 then return false end
        out[#out + 1] = v4 >> 16
        out[#out + 1] = v4 & 0xffff
      elseif smatch(piece, "^%x%x?%x?%x?$") then
        out[#out + 1] = tonumber(piece, 16)
      else
        return false
      end
    end
    return true
  end
  local left, right = {}, {}
  if not parse(head, left, tail == nil) then return nil end
  if tail and not parse(tail, right, true) then return nil end
  local groups = left
  if tail then
    local fill = 8 - #left - #right
    if fill < 1 then return nil end
    for _ = 1, fill do groups[#groups + 1] = 0 end
    for _, g in ipairs(right) do groups[#groups + 1] = g end
  end
  if #groups ~= 8 then return nil end
  return groups
end

-- RFC 5952: lower-case hex, no leading zeros, the longest run (first on a tie) of two or more
-- zero groups written as "::".
local function ipv6_text(g)
  local best, best_len, run, run_len = 0, 0, 0, 0
  for i = 1, 8 do
    if g[i] == 0 then
      if run_len == 0 then run = i end
      run_len = run_len + 1
      if run_len > best_len then best, best_len = run, run_len end
    else
      run_len = 0
    end
  end
  local out = {}
  if best_len < 2 then
    for i = 1, 8 do out[i] = sformat("%x", g[i]) end
    return concat(out, ":")
  end
  for i = 1, best - 1 do out[#out + 1] = sformat("%x", g[i]) end
  local left = concat(out, ":")
  out = {}
  for i = best + best_len, 8 do out[#out + 1] = sformat("%x", g[i]) end
  return left .. "::" .. concat(out, ":")
end

-- Returns the canonical cidr and, when the input had host bits set, its /32 or /128 host form;
-- or nil and the reason it is invalid.
local function parse_cidr(s)
  local addr, len = smatch(s, "^([^/]+)/(%d+)$")
  if not addr then
    if sfind(s, "/", 1, true) then return nil, "has a bad prefix length" end
    addr = s
  end
  local v4 = ipv4_value(addr)
  if v4 then
    local bits = len and tonumber(len) or 32
    if bits > 32 then return nil, "has a prefix length above 32" end
    local net = bits == 0 and 0 or v4 & ((0xffffffff << (32 - bits)) & 0xffffffff)
    if net ~= v4 then return ipv4_text(net) .. "/" .. bits, ipv4_text(v4) .. "/32" end
    -- decimal octets without leading zeros are already canonical
    if len and tostring(bits) == len then return s end
    return addr .. "/" .. bits
  end
  local g = ipv6_groups(slower(addr))
  if not g then return nil, "is not a valid IPv4 or IPv6 network" end
  local bits = len and tonumber(len) or 128
  if bits > 128 then return nil, "has a prefix length above 128" end
  local host = ipv6_text(g) .. "/128"
  local dirty = false
  for i = 1, 8 do
    local keep = bits - (i - 1) * 16
    local m = keep >= 16 and 0xffff or keep <= 0 and 0 or (0xffff << (16 - keep)) & 0xffff
    local v = g[i] & m
    if v ~= g[i] then dirty = true end
    g[i] = v
  end
  return ipv6_text(g) .. "/" .. bits, dirty and host or nil
end

-- Rule sets repeat networks, so clean inputs are memoised (input -> canonical); the table is
-- dropped when it grows large so that a stream of distinct networks cannot hold memory.
local cidr_cache, cidr_cache_size = {}, 0

---Parses and canonicalises a CIDR or a bare address (a bare address is a /32 or /128).
---@param s string e.g. "10.0.0.1", "2001:DB8:0:0::/32"
---@param clear_host_bits boolean? clear host bits instead of failing
---@return string? cidr canonical form, or nil on error
---@return string ethertype_or_error "IPv4"/"IPv6", or the reason it is invalid
function M.parse_cidr(s, clear_host_bits)
  local canon = cidr_cache[s]
  if not canon then
    local host
    canon, host = parse_cidr(s)
    if not canon then return nil, host end
    if host then
      if not clear_host_bits then
        return nil, sformat("has host bits set (did you mean %s or %s?)", canon, host)
      end
    else
      if cidr_cache_size >= 100000 then cidr_cache, cidr_cache_size = {}, 0 end
      cidr_cache[s], cidr_cache_size = canon, cidr_cache_size + 1
    end
  end
  return canon, sfind(canon, ":", 1, true) and "IPv6" or "IPv4"
end

---True when cidr is the whole address space of its family ("0.0.0.0/0" or "::/0").
---@param cidr string? canonical cidr
---@return boolean
function M.is_any_cidr(cidr)
  return cidr == "0.0.0.0/0" or cidr == "::/0"
end

---------------------------------------------------------------------------------------------------
-- Normalisation

local function integer_field(where, name, v, lo, hi)
  local n = v
  if type(v) == "string" then n = tonumber(v) end
  n = type(n) == "number" and mtointeger(n) or nil
  if not n then fail(where, "%s %s is not an integer", name, show(v)) end
  if n < lo or n > hi then fail(where, "%s %s is out of range %d..%d", name, show(v), lo, hi) end
  return n
end

---Canonical protocol name for a name or IANA number; raises on nonsense.
---@param v string|integer|nil
---@param where string? error prefix
---@return string
function M.protocol(v, where)
  if v == nil or v == NULL then return "any" end
  if type(v) == "number" then
    local n = mtointeger(v)
    if n == -1 then return "any" end
    if not n or n < 0 or n > 255 then
      fail(where or "rule", "protocol %s is not an IANA protocol number (0..255)", show(v))
    end
    return PROTOCOL_BY_NUMBER[n] or tostring(n)
  end
  if type(v) ~= "string" then fail(where or "rule", "protocol %s is not a string", show(v)) end
  local s = slower(v)
  if PORT_PROTOCOLS[s] or s == "any" or s == "icmp" then return s end
  local alias = PROTOCOL_ALIASES[s]
  if alias then return alias end
  if smatch(s, "^%d+$") then return M.protocol(tonumber(s), where) end
  if not smatch(s, "^%a[%w%-_%.]*$") then
    fail(where or "rule", "protocol %s is not a protocol name or number", show(v))
  end
  return s
end

-- Zero-padded port text so that keys sort in numeric port order; memoised per port.
local padded = setmetatable({}, { __index = function(cache, p)
  local s = sformat("%05d", p)
  cache[p] = s
  return s
end })

-- One concatenation per key: this runs for every rule read or planned.
local function compute_key(r)
  local pmin, itype, cidr = r.port_min, r.icmp_type, r.cidr
  local head = r.direction .. " " .. r.protocol .. " "
  if itype then
    head = head .. itype .. "/" .. (r.icmp_code or "*") .. " "
  end
  if cidr then
    if pmin then
      return head .. padded[pmin] .. "-" .. padded[r.port_max] .. " " .. cidr .. " " .. r.action
    end
    return head .. "* " .. cidr .. " " .. r.action
  end
  local source = "@" .. r.remote_group .. " " .. r.ethertype
  if pmin then
    return head .. padded[pmin] .. "-" .. padded[r.port_max] .. " " .. source .. " " .. r.action
  end
  return head .. "* " .. source .. " " .. r.action
end

-- A rule returned by normalize carries its key in its own metatable: normalised rules are values
-- (change one with M.with, never in place), so the key is computed once, and plain-table users
-- (pairs, JSON) never see it. A weak rule -> key table would cost far more: the collector
-- re-traverses weak-keyed tables in every cycle.
local function seal(r)
  return setmetatable(r, { __name = "sg.Rule", key = compute_key(r) })
end

local function port_pair(where, t)
  local pmin, pmax = t.port_min, t.port_max
  if pmin == NULL then pmin = nil end
  if pmax == NULL then pmax = nil end
  local port = t.port
  if port ~= nil and port ~= NULL then
    if pmin ~= nil or pmax ~= nil then fail(where, "give either port or port_min/port_max") end
    if type(port) == "string" and sfind(port, "-", 1, true) then
      pmin, pmax = smatch(port, "^%s*(%d+)%s*%-%s*(%d+)%s*$")
      if not pmin then fail(where, "port %s is not a port or a range like 8000-8080", show(port)) end
    else
      pmin, pmax = port, port
    end
  end
  if pmin == nil and pmax == nil then return nil, nil end
  -- one bound alone means a single port
  if pmin == nil then pmin = pmax elseif pmax == nil then pmax = pmin end
  pmin = integer_field(where, "port_min", pmin, 1, 65535)
  pmax = integer_field(where, "port_max", pmax, 1, 65535)
  if pmin > pmax then fail(where, "port_min %d is above port_max %d", pmin, pmax) end
  if pmin == 1 and pmax == 65535 then return nil, nil end
  return pmin, pmax
end

---Validates and normalises a rule; returns a new canonical rule (the input is not changed).
---Raises an error naming the field and the value, e.g. `rule: port_min 70000 is out of range 1..65535`.
---@param t table rule-like table; also accepts `port = 22` or `port = "8000-8080"`
---@param opts sg.NormalizeOpts?
---@return sg.Rule
function M.normalize(t, opts)
  local where = opts and opts.where or "rule"
  if type(t) ~= "table" then fail(where, "expected a table, got %s", type(t)) end
  for k in next, t do
    if not KNOWN_FIELDS[k] then
      fail(where, "unknown field %s (fields: direction, protocol, port_min, port_max, cidr, " ..
        "remote_group, ethertype, icmp_type, icmp_code, action, description)", show(k))
    end
  end

  local v = t.direction
  local direction = DIRECTIONS[v] or (type(v) == "string" and DIRECTIONS[slower(v)])
  if not direction then
    if v == nil or v == NULL then fail(where, "direction is missing (ingress or egress)") end
    fail(where, "direction %s is not ingress or egress", show(v))
  end

  local protocol = M.protocol(t.protocol, where)

  v = t.action
  local action = "accept"
  if v ~= nil and v ~= NULL then
    action = type(v) == "string" and (ACTIONS[v] or ACTIONS[slower(v)])
    if not action then fail(where, "action %s is not accept, drop or reject", show(v)) end
  end

  local ethertype = t.ethertype
  if ethertype == NULL then ethertype = nil end
  if ethertype ~= nil then
    local e = type(ethertype) == "string" and slower(ethertype)
    if e == "ipv4" then ethertype = "IPv4" elseif e == "ipv6" then ethertype = "IPv6"
    else fail(where, "ethertype %s is not IPv4 or IPv6", show(ethertype)) end
  end

  local cidr, remote_group = t.cidr, t.remote_group
  if cidr == NULL then cidr = nil end
  if remote_group == NULL or remote_group == "" then remote_group = nil end
  if remote_group ~= nil then
    if type(remote_group) ~= "string" then
      fail(where, "remote_group %s is not a group name", show(remote_group))
    end
    if cidr ~= nil then fail(where, "give either cidr or remote_group, not both") end
    ethertype = ethertype or "IPv4"
  elseif cidr == nil then
    cidr = ethertype == "IPv6" and "::/0" or "0.0.0.0/0"
    ethertype = ethertype or "IPv4"
  else
    if type(cidr) ~= "string" then fail(where, "cidr %s is not a string", show(cidr)) end
    local canon, eth = M.parse_cidr(cidr, opts and opts.clear_host_bits)
    if not canon then fail(where, "cidr %s %s", show(cidr), eth) end
    if ethertype and ethertype ~= eth then
      fail(where, "ethertype %s does not match cidr %s", ethertype, canon)
    end
    cidr, ethertype = canon, eth
  end

  if protocol == "icmp" and ethertype == "IPv6" then protocol = "icmpv6" end
  if protocol == "icmpv6" and ethertype == "IPv4" then
    fail(where, "protocol icmpv6 needs an IPv6 cidr, got %s", cidr or "an IPv4 group")
  end

  local port_min, port_max = port_pair(where, t)
  if port_min and not PORT_PROTOCOLS[protocol] then
    fail(where, "protocol %s has no ports (ports need tcp, udp, udplite, sctp or dccp)", protocol)
  end

  local icmp_type, icmp_code = t.icmp_type, t.icmp_code
  if icmp_type == NULL or icmp_type == -1 then icmp_type = nil end
  if icmp_code == NULL or icmp_code == -1 then icmp_code = nil end
  if icmp_type ~= nil or icmp_code ~= nil then
    if protocol ~= "icmp" and protocol ~= "icmpv6" then
      fail(where, "icmp_type/icmp_code need protocol icmp or icmpv6, not %s", protocol)
    end
    if icmp_type == nil then fail(where, "icmp_code %s needs an icmp_type", show(icmp_code)) end
    icmp_type = integer_field(where, "icmp_type", icmp_type, 0, 255)
    if icmp_code ~= nil then icmp_code = integer_field(where, "icmp_code", icmp_code, 0, 255) end
  end

  local description = t.description
  if description == NULL or description == "" then description = nil end
  if description ~= nil and type(description) ~= "string" then
    fail(where, "description %s is not a string", show(description))
  end

  return seal({
    direction = direction, protocol = protocol, port_min = port_min, port_max = port_max,
    cidr = cidr, remote_group = remote_group, ethertype = ethertype, icmp_type = icmp_type,
    icmp_code = icmp_code, action = action, description = description,
  })
end

---True when t was returned by normalize (or by `with` on such a rule). Lets plan and audit take
---canonical rules in O(1) and still normalise hand-written tables; a rule changed in place after
---normalisation is not checked again.
---@param t any
---@return boolean
function M.is_normalized(t)
  local mt = getmetatable(t)
  return mt ~= nil and mt.__name == "sg.Rule"
end

---------------------------------------------------------------------------------------------------
-- Identity and printing

---The identity of a normalised rule: every field but description, as one string.
---Keys sort by direction, protocol, then port. Pass normalised rules only.
---@param r sg.Rule
---@return string
function M.key(r)
  local mt = getmetatable(r)
  return mt and mt.key or compute_key(r)
end

---True when two normalised rules have the same identity (description is ignored).
---@param a sg.Rule
---@param b sg.Rule
---@return boolean
function M.equal(a, b)
  return M.key(a) == M.key(b)
end

---One stable human line, e.g. `ingress tcp 22 from 0.0.0.0/0`.
---@param r sg.Rule normalised rule
---@return string
function M.tostring(r)
  local parts = {}
  if r.action ~= "accept" then parts[#parts + 1] = r.action end
  parts[#parts + 1] = r.direction
  parts[#parts + 1] = r.protocol
  if r.port_min then
    parts[#parts + 1] = r.port_min == r.port_max and tostring(r.port_min) or
      (r.port_min .. "-" .. r.port_max)
  end
  if r.icmp_type then
    parts[#parts + 1] = "type " .. r.icmp_type
    if r.icmp_code then parts[#parts + 1] = "code " .. r.icmp_code end
  end
  parts[#parts + 1] = r.direction == "ingress" and "from" or "to"
  if r.remote_group then
    parts[#parts + 1] = "group " .. r.remote_group
    if r.ethertype == "IPv6" then parts[#parts + 1] = "(IPv6)" end
  else
    parts[#parts + 1] = r.cidr
  end
  local line = concat(parts, " ")
  if r.description then
    line = line .. "  # " .. require("sg.printable").escape((sgsub(r.description, "[\r\n]", " ")))
  end
  return line
end

---Returns a copy of a normalised rule with some fields replaced (use M.NULL to clear a field).
---The changes must keep the rule canonical (codecs use it to state a translation's loss).
---@param r sg.Rule
---@param changes table
---@return sg.Rule
function M.with(r, changes)
  local out = {}
  for k, v in next, r do out[k] = v end
  for k, v in next, changes do
    if v == NULL then out[k] = nil else out[k] = v end
  end
  if M.is_normalized(r) then seal(out) end
  return out
end

---Sorts a list of normalised rules in place by key (stable, human-friendly order).
---@param rules sg.Rule[]
---@return sg.Rule[] rules
function M.sort(rules)
  local keys = {}
  for i = 1, #rules do
    local r = rules[i]
    keys[r] = M.key(r) .. "\0" .. (r.description or "")
  end
  sort(rules, function(a, b) return keys[a] < keys[b] end)
  return rules
end

return M
