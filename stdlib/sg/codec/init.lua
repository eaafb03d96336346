--- Provider codecs: lookup by provider name, and what every codec shares.
--
-- A codec is the module `sg.codec.<provider>`: that provider's rules in the neutral model, pure
-- translation with no I/O (its groups on the wire are the adapter's, sg.groups.<provider>).
-- Each codec module has:
--   name          provider name ("gcore")
--   capabilities  sg.Capabilities (what the provider's rules can say)
--   decode(raw, ctx) -> sg.Rule | sg.Rule[]   one provider rule to canonical rule(s); raises on
--                 a rule sgrun cannot model. A list comes back where one provider rule stands for
--                 several canonical ones (HostUp "80,443"); `decode_all` flattens.
--   encode(rule, ctx) -> table   the body of the provider's add-rule call (or one element of its
--                 full-list update), from a rule already translated for that provider
--   translate(rule) -> sg.Translation
--   check(rule) -> status, rule, why   the same as multiple values, for plan's inner loop
--                 (both derived from capabilities by define() unless the codec has its own)
-- ctx (sg.GroupContext) carries what a rule alone does not: the group and the id <-> name maps
-- of the other groups that rules may reference.
local rule = require "sg.rule"

local M = {}

---@class sg.GroupContext
---@field group {id: string?, name: string?}? the group the rules belong to
---@field group_names table<string, string>? remote group id -> name
---@field group_ids table<string, string>? remote group name -> id

---@class sg.Capabilities
---@field provider string display name used in messages
---@field protocols table<string, boolean> canonical protocol names the provider accepts
---@field ports boolean port ranges on port protocols
---@field icmp_type boolean
---@field icmp_code boolean
---@field cidr boolean rules can be restricted to a network
---@field remote_group boolean rules can reference another group
---@field ipv6 boolean
---@field egress boolean
---@field actions table<string, boolean> canonical actions the provider accepts
---@field description boolean rules keep a description
---@field ordered boolean rule order matters (first match wins)
---@field max_rules integer? per group, where documented
---@field description_max integer? longest rule description the provider takes, in characters
---(the vendor schema's maxLength), where documented
---@field icmp_max integer? highest ICMP type and code the provider takes, where documented
---(canonical rules allow 0..255)

---@class sg.Translation
---@field status "exact"|"lossy"|"inexpressible"
---@field rule sg.Rule? the rule as the target will hold it (nil when inexpressible)
---@field why string? what was lost or why it cannot be expressed

---@class sg.Codec
---@field name string
---@field capabilities sg.Capabilities
---@field decode fun(raw: table, ctx: sg.GroupContext?): sg.Rule|sg.Rule[]
---@field encode fun(r: sg.Rule, ctx: sg.GroupContext?): table
---@field translate fun(r: sg.Rule): sg.Translation
---@field check fun(r: sg.Rule): string, sg.Rule?, string?

-- One codec per provider binding (the build lists the bindings that describe a provider).
M.PROVIDERS = require "_sg.providers"

local loaded = {}

---Completes a codec module (its last line: `return codec.define(M)`): translate and check come
---from its capability table unless it defines its own.
---@param c table the codec module
---@return sg.Codec
function M.define(c)
  local capabilities = c.capabilities
  ---@param r sg.Rule
  ---@return sg.Translation
  c.translate = c.translate or function(r) return M.translate(capabilities, r) end
  ---translate as multiple values: status, rule, why
  c.check = c.check or function(r) return M.check(capabilities, r) end
  return c
end

---Returns the codec of a provider.
---@param name string provider name, e.g. "gcore"
---@return sg.Codec
function M.get(name)
  local codec = loaded[name]
  if codec then return codec end
  if type(name) ~= "string" or not name:match("^[%w_]+$") then
    error(string.format("codec: provider %s is not a provider name (known: %s)", tostring(name),
      table.concat(M.PROVIDERS, ", ")), 2)
  end
  local ok, mod = pcall(require, "sg.codec." .. name)
  if not ok then
    if tostring(mod):find("module 'sg.codec." .. name .. "' not found", 1, true) then
      error(string.format("codec: no codec for provider %q (known: %s; a provider's codec is " ..
        "stdlib/sg/codec/%s.lua)", name, table.concat(M.PROVIDERS, ", "), name), 2)
    end
    error(mod, 0)
  end
  loaded[name] = mod
  return mod
end

---Decodes a provider's rule list to canonical rules, flattening rules that decode to several.
---Errors name the provider and the position of the offending rule.
---@param codec sg.Codec
---@param raws table[] provider rules as decoded from JSON
---@param ctx sg.GroupContext?
---@return sg.Rule[]
function M.decode_all(codec, raws, ctx)
  local out = {}
  for i = 1, #raws do
    local ok, r = pcall(codec.decode, raws[i], ctx)
    if not ok then error(string.format("%s rule %d: %s", codec.name, i, tostring(r)), 0) end
    if r[1] or next(r) == nil then
      for j = 1, #r do out[#out + 1] = r[j] end
    else
      out[#out + 1] = r
    end
  end
  return out
end

---Builds a set from a list: {"a", "b"} -> {a = true, b = true}.
---@param list string[]
---@return table<string, boolean>
function M.set(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

---Integer from a provider number field (cjson decodes every number as a float); nil for null.
---@param v any
---@return integer|any
function M.int(v)
  if v == nil or v == rule.NULL then return nil end
  return math.tointeger(v) or v
end

---A provider rule's port range read exactly, or an error naming the rule and what to do. Both
---ends unset (null or absent) or both 0 (the responses' placeholder on a rule without ports) mean
---every port; both ends set is the range (sg.rule.normalize checks it). One end alone, or a 0
---beside a real port (0-22), has no exact reading: as one port it would be narrower than the
---provider's rule, as every port wider, and a snapshot or roll-out would carry the guess on.
---@param raw table the provider's rule object
---@param lo_field string the field of the low end ("start-port")
---@param hi_field string the field of the high end ("end-port")
---@param where string the rule, e.g. "exoscale rule <id>"
---@param provider string display name ("Exoscale"), for what to do
---@return integer|any|nil port_min
---@return integer|any|nil port_max
function M.exact_ports(raw, lo_field, hi_field, where, provider)
  local lo, hi = M.int(raw[lo_field]), M.int(raw[hi_field])
  local lo_set, hi_set = lo ~= nil and lo ~= 0, hi ~= nil and hi ~= 0
  if lo_set and hi_set then return lo, hi end
  if not (lo_set or hi_set) then return nil, nil end
  error(string.format("%s: %s %s and %s %s give one end of a port range only (0 or null is no " ..
    "port), and sgrun does not guess the other: read as one port the rule would be narrower than " ..
    "%s's, as every port wider. In %s, replace the rule with one that sets both %s and %s (1 and " ..
    "65535 for every port), or remove it, then read the group again", where, lo_field,
    tostring(lo == nil and "null" or lo), hi_field, tostring(hi == nil and "null" or hi), provider,
    provider, lo_field, hi_field), 0)
end

---The port range of a rule in the OpenStack style (port_range_min, port_range_max), which only
---the protocols with ports carry. Both unset is every port; one end alone is refused as
---exact_ports refuses it (a 0 is left to sg.rule.normalize, which refuses it as out of range).
---@param protocol string the rule's protocol, normalised
---@param raw table the provider's rule object
---@param where string the rule, e.g. "genesis rule <id>"
---@param provider string display name ("Genesis Cloud"), for what to do
---@return integer? port_min, integer? port_max
function M.port_range(protocol, raw, where, provider)
  if not rule.PORT_PROTOCOLS[protocol] then return nil, nil end
  local lo, hi = M.int(raw.port_range_min), M.int(raw.port_range_max)
  if (lo == nil) ~= (hi == nil) then return M.exact_ports(raw, "port_range_min", "port_range_max", where, provider) end
  return lo, hi
end

---Why the provider's schema refuses a rule that its capabilities can otherwise say (a value past
---a documented limit: capabilities description_max, icmp_max), or nil. The message names the
---field, the limit and what to do; check makes it an "inexpressible" finding, so that a plan
---refuses the rule before anything is sent, and codecs whose encode feeds a request call it too.
---@param caps sg.Capabilities
---@param r sg.Rule normalised rule
---@return string? why
function M.limit_problem(caps, r)
  local p = caps.provider
  local max = caps.icmp_max
  if max then
    for _, field in ipairs { "icmp_type", "icmp_code" } do
      local v = r[field]
      if v and v > max then
        return string.format("%s takes an ICMP %s of at most %d (%s), not %d: choose a %s of 0..%d, " ..
          "or leave this rule out", p, field == "icmp_type" and "type" or "code", max,
          field == "icmp_type" and "icmp.type" or "icmp.code", v,
          field == "icmp_type" and "type" or "code", max)
      end
    end
  end
  max = caps.description_max
  local d = caps.description and r.description
  if max and d then
    local n = utf8.len(d) or #d -- the schema's maxLength counts characters
    if n > max then
      return string.format("%s takes a rule description of at most %d characters, and this one " ..
        "has %d: shorten the description", p, max, n)
    end
  end
  return nil
end

---The capability check every codec starts from: what the rule needs that the provider's
---capability table lacks. Returns multiple values, not a table, because plan runs it per rule.
---@param caps sg.Capabilities
---@param r sg.Rule normalised rule
---@return "exact"|"lossy"|"inexpressible" status
---@return sg.Rule? rule the rule as the target will hold it
---@return string? why
function M.check(caps, r)
  local p = caps.provider
  if r.direction == "egress" and not caps.egress then
    return "inexpressible", nil, p .. " has no egress rules"
  end
  if not caps.actions[r.action] then
    return "inexpressible", nil, p .. " has allow rules only; a " .. r.action ..
      " rule cannot be expressed"
  end
  if not caps.protocols[r.protocol] then
    return "inexpressible", nil, p .. " does not support protocol " .. r.protocol
  end
  if r.remote_group and not caps.remote_group then
    return "inexpressible", nil, p .. " rules cannot reference another group"
  end
  if r.ethertype == "IPv6" and not caps.ipv6 then
    return "inexpressible", nil, p .. " rules have no IPv6"
  end
  if r.port_min and not caps.ports then
    return "inexpressible", nil, p .. " rules have no port ranges"
  end
  local over = M.limit_problem(caps, r)
  if over then return "inexpressible", nil, over end
  local needs_cidr = r.cidr and not caps.cidr and not rule.is_any_cidr(r.cidr)
  local needs_icmp = (r.icmp_type and not caps.icmp_type) or (r.icmp_code and not caps.icmp_code)
  local drops_description = r.description and not caps.description
  if not (needs_cidr or needs_icmp or drops_description) then return "exact", r end

  local changes, losses = {}, {}
  if needs_cidr then
    local any = r.ethertype == "IPv6" and rule.ANY_V6 or rule.ANY_V4
    changes.cidr = any
    losses[#losses + 1] = p .. " rules carry no CIDR: the rule restricted to " .. r.cidr ..
      " would be open to " .. any
  end
  if r.icmp_type and not caps.icmp_type then
    changes.icmp_type, changes.icmp_code = rule.NULL, rule.NULL
    losses[#losses + 1] = p .. " rules carry no ICMP type: the rule for ICMP type " .. r.icmp_type ..
      " would allow every ICMP type"
  elseif needs_icmp then
    changes.icmp_code = rule.NULL
    losses[#losses + 1] = p .. " rules carry no ICMP code: the rule for code " .. r.icmp_code ..
      " would allow every code of type " .. r.icmp_type
  end
  if drops_description then changes.description = rule.NULL end
  local out = rule.with(r, changes)
  if #losses > 0 then return "lossy", out, table.concat(losses, "; ") end
  return "exact", out, p .. " rules keep no description (not part of a rule's identity)"
end

---The translation of a rule for a provider, as a table (see check).
---@param caps sg.Capabilities
---@param r sg.Rule normalised rule
---@return sg.Translation
function M.translate(caps, r)
  local status, out, why = M.check(caps, r)
  return { status = status, rule = out, why = why }
end

return M
