--- HostUp (Proxmox VE underneath) VM firewall rules <-> canonical rules.
--
-- Rule JSON: v1 `/api/vm/{vmid}/firewall` {pos, type "in"|"out"|"group", action
-- "ACCEPT"|"DROP"|"REJECT", proto, dport, sport, source, dest, comment, enable 0|1, ipversion};
-- v2 reads say `enabled` (boolean) and `description` instead of enable/comment; decode takes both.
-- Encode writes the v1 add/update body, the one the `{vm = N}` group reference uses.
-- Decisions:
-- * Rules are an ordered, first-match list; canonical rule sets are not. `order` gives the
--   positions sgrun writes: drop/reject rules above accept rules, so a denial always wins.
-- * One Proxmox rule may stand for several canonical ones: "80,443" port lists, comma-separated
--   sources, and a rule with no source (any IPv4 and any IPv6 address; ICMP rules only the
--   family of their protocol) [inferred from PVE].
-- * A rule restricted to one interface (Proxmox's iface, "net1") is refused: the canonical model
--   has no interface, and a rule read without it would be wider wherever it went.
-- * Disabled rules filter nothing, so they decode to no rule. Whether a rule is enabled is
--   `enable` (v1, documented as integer 0|1) or `enabled` (v2, boolean), read in either form and
--   as text ("0", "false"); any other value, or the two disagreeing, is refused (see M.enabled).
-- * The VM-side address (dest of an "in" rule, source of an "out" one) is read only when it is
--   0.0.0.0/0 or ::/0, which narrows the rule to that family: an "out" rule written through the
--   v1 body must carry a source. Any other VM-side address is not modelled.
-- * Port ranges are "a:b"; encode sends "1:65535" for every port and "" for icmp, because the
--   docs mark dport required and Proxmox refuses ports on icmp.
-- * What the v1 write body cannot say is inexpressible: egress rules (it has a source field but
--   no destination) and "any protocol" (proto is required and tcp|udp|icmp). ICMP types are not
--   written either: Proxmox takes one in an icmp rule's dport, but HostUp documents dport as a
--   port only. Rules read from a VM may still have them: an "out" rule's remote address is
--   `dest`, and an ICMP type is `icmp-type` or an icmp rule's dport (Proxmox semantics) [inferred].
-- * New rules are sent with enable = 1: Proxmox creates a rule disabled when enable is absent.
-- Groups on the wire (a VM's firewall, by position): stdlib/sg/groups/hostup.lua.
local rule = require "sg.rule"
local codec = require "sg.codec"

local M = { name = "hostup" }

---@type sg.Capabilities
M.capabilities = {
  provider = "HostUp",
  -- the v1 API's documented proto enum, and proto is required: no way to say "any protocol"
  protocols = codec.set { "tcp", "udp", "icmp" },
  ports = true,
  -- Proxmox takes an ICMP type in an icmp rule's dport; HostUp documents dport as ports only
  icmp_type = false,
  icmp_code = false,
  cidr = true,
  remote_group = false,
  ipv6 = true,
  -- the v1 rule body has type "out" but only a source field: a destination cannot be written
  egress = false,
  actions = { accept = true, drop = true, reject = true },
  description = true,
  ordered = true,
  -- per VM: only the v2 API reports it (limits.maxRules); groups/hostup.lua checks its apply's
  -- peak against the documented 100 (VM_RULE_LIMIT), since a v1 {vm = N} target cannot read it
  max_rules = nil,
  -- HostUp documents `comment` as free text with no length limit, so no description_max [the
  -- Proxmox limits underneath (source/dest 512 characters, 15 numbers per port list) are PVE's,
  -- not documented by HostUp, and not applied]
}

local DIRECTION = { ["in"] = "ingress", out = "egress" }
local TYPE = { ingress = "in", egress = "out" }

-- ICMP type names Proxmox accepts in place of numbers (the common ones).
local ICMP_TYPES = {
  ["echo-reply"] = 0, ["destination-unreachable"] = 3, redirect = 5, ["echo-request"] = 8,
  ["router-advertisement"] = 9, ["router-solicitation"] = 10, ["time-exceeded"] = 11,
  ["parameter-problem"] = 12, ["timestamp-request"] = 13, ["timestamp-reply"] = 14,
}

local VM_SIDE_ANY = { ["0.0.0.0/0"] = 4, ["::/0"] = 6 }

local function fail(fmt, ...)
  error(string.format("hostup rule: " .. fmt, ...), 0)
end

-- A listed field as text; "" and null say nothing. Blanks alone in a field that decides what the
-- rule matches (`field` names it) are refused: taken for nothing, a dport or source of spaces
-- would read as every port or any address. In a comment they are no comment.
local function text(v, field)
  if rule.absent(v) or v == "" then return nil end
  v = tostring(v)
  if not v:match("^%s+$") then return v end
  if not field then return nil end
  fail("%s %q is blank, so sgrun cannot tell what the rule matches; correct the rule's %s in HostUp's " ..
    "panel", field, v, field)
end

-- What `enable` and `enabled` may say, in either spelling and as text: on (true) or off (false).
local SWITCH = { [0] = false, [1] = true, ["0"] = false, ["1"] = true, [false] = false, [true] = true,
  ["false"] = false, ["true"] = true }

-- A listed value as a message shows it.
local function shown(v)
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) == "table" then return "a list or object" end
  return tostring(math.tointeger(v) or v)
end

---Whether a listed rule is enabled: `enable` (v1: 0|1) or `enabled` (v2: boolean), each taken as
---a number, a boolean or their text. A rule that says neither is enabled, as Proxmox reads a rule
---without its disabled mark (the documented v1 and v2 list items always carry one). Any other
---value, or the two disagreeing, gives nil and why: guessed "on", a disabled rule would read as
---one that lets traffic in, and a roll-out would copy it elsewhere as an active rule.
---@param raw table a Proxmox rule object as HostUp lists it
---@return boolean? enabled
---@return string? why it cannot tell
function M.enabled(raw)
  local on, said
  for _, field in ipairs { "enable", "enabled" } do
    local v = raw[field]
    if not rule.absent(v) then
      local this = SWITCH[v]
      if this == nil then
        return nil, string.format("%s %s is neither 0/1 nor true/false, so sgrun cannot tell whether " ..
          "the rule is active", field, shown(v))
      end
      if said and this ~= on then
        return nil, string.format("%s and %s %s disagree, so sgrun cannot tell whether the rule is " ..
          "active", said, field, shown(v))
      end
      on, said = this, field .. " " .. shown(v)
    end
  end
  return on ~= false
end

-- The entries of a comma-separated list, trimmed. An empty entry ("22,", ",", " , ") is refused:
-- skipped, a list of nothing but commas would read as no rule at all (a DROP gone).
local function entries(list, field)
  local out = {}
  for item in (list .. ","):gmatch("([^,]*),") do
    item = item:match("^%s*(.-)%s*$")
    if item == "" then
      fail("%s %q has an empty entry, so sgrun cannot tell what the rule matches; correct the rule's %s " ..
        "in HostUp's panel", field, list, field)
    end
    out[#out + 1] = item
  end
  return out
end

-- "22", "80,443", "1000:2000" -> {{22, 22}}, ... ; nil for every port
local function port_ranges(dport)
  if not dport then return { { nil, nil } } end
  local out = {}
  for _, item in ipairs(entries(dport, "dport")) do
    local a, b = item:match("^(%d+)[:%-](%d+)$")
    if not a then a = item:match("^%d+$") b = a end
    if not a then
      fail("dport %q: service names are not supported, give port numbers", dport)
    end
    out[#out + 1] = { tonumber(a), tonumber(b) }
  end
  return out
end

-- "10.0.0.0/8,192.168.1.1" -> {"10.0.0.0/8", "192.168.1.1"}; no address -> any of both families
local function networks(addr, ipversion, field)
  if not addr then
    if ipversion == 4 then return { rule.ANY_V4 } end
    if ipversion == 6 then return { rule.ANY_V6 } end
    return { rule.ANY_V4, rule.ANY_V6 }
  end
  local out = {}
  for _, item in ipairs(entries(addr, field)) do
    if item:sub(1, 1) == "+" or item:find("-", 1, true) or not item:find("[%.:]") then
      fail("address %q: ipsets, aliases and address ranges are not supported, give CIDRs", addr)
    end
    out[#out + 1] = item
  end
  return out
end

---@param raw table a Proxmox rule object as HostUp returns it
---@param _ctx sg.GroupContext? unused: HostUp rules reference nothing sgrun models
---@return sg.Rule[] zero (disabled rule), one or several canonical rules
function M.decode(raw, _ctx)
  local enabled, unsure = M.enabled(raw)
  if enabled == nil then
    fail("%s; turn the rule off or on in HostUp's panel, so that it lists enable 0 or 1", unsure)
  end
  if not enabled then return {} end
  local direction = DIRECTION[raw.type]
  if not direction then
    if raw.type == "group" then
      fail("pos %s references firewall group %s; group references are not modelled",
        tostring(raw.pos), tostring(raw.action))
    end
    fail("type %s is not in or out", tostring(raw.type))
  end
  if text(raw.macro, "macro") then fail("macro %s is not supported; give proto and dport", raw.macro) end
  if text(raw.sport, "sport") then fail("sport %s: source ports are not modelled", raw.sport) end
  if text(raw.iface, "iface") then
    fail("iface %s: the rule applies only on interface %s, and sgrun's rules cannot say which " ..
      "interface: read as a rule for every interface, it would be wider in a snapshot, a roll-out or " ..
      "a plan. sgrun cannot manage this VM while the rule is there: in HostUp's panel, delete it or " ..
      "replace it with rules that hold on every interface (narrower source addresses)",
      raw.iface, raw.iface)
  end
  local local_side, remote_side = "dest", "source"
  if direction == "egress" then local_side, remote_side = "source", "dest" end
  -- the VM-side address: "any address of a family" only narrows the family (the v1 body makes
  -- an "out" rule carry a source, which is this side); a real address is not modelled
  local vm_side = text(raw[local_side], local_side)
  local vm_family = vm_side and (VM_SIDE_ANY[vm_side] or
    fail("%s %s: the VM-side address is not modelled; sgrun reads only 0.0.0.0/0 or ::/0 there " ..
      "(edit or remove this rule in HostUp's panel to manage the VM with sgrun)", local_side, vm_side))

  local protocol = rule.protocol(text(raw.proto, "proto") and raw.proto:lower(), "hostup rule")
  local dport = text(raw.dport, "dport")
  local ranges, itype = { { nil, nil } }, nil
  if rule.PORT_PROTOCOLS[protocol] then
    ranges = port_ranges(dport)
  elseif (protocol == "icmp" or protocol == "icmpv6") and (text(raw["icmp-type"], "icmp-type") or dport) then
    -- Proxmox keeps an ICMP type in icmp-type, or in dport ("we re-use dport to store
    -- --icmp-type", PVE's verify_rule) [inferred]
    local name = text(raw["icmp-type"], "icmp-type") or dport
    if name:lower() ~= "any" then
      itype = math.tointeger(tonumber(name)) or (protocol == "icmp" and ICMP_TYPES[name:lower()])
      if not itype then fail("icmp type %q is not a known ICMP type name or number", name) end
    end
    dport = nil
  end
  if dport and not rule.PORT_PROTOCOLS[protocol] then
    fail("dport %s on protocol %s", dport, protocol)
  end

  local opts = { clear_host_bits = true, where = "hostup rule" }
  local out = {}
  -- an address-less rule covers both families, except ICMP, whose protocol picks the family
  local family = vm_family or codec.int(raw.ipversion) or
    (protocol == "icmp" and 4) or (protocol == "icmpv6" and 6) or nil
  for _, cidr in ipairs(networks(text(raw[remote_side], remote_side), family, remote_side)) do
    for _, range in ipairs(ranges) do
      out[#out + 1] = rule.normalize({
        direction = direction,
        protocol = protocol,
        action = raw.action,
        port_min = range[1],
        port_max = range[2],
        cidr = cidr,
        icmp_type = itype,
        description = text(raw.comment) or text(raw.description),
      }, opts)
    end
  end
  return out
end

---@param r sg.Rule a rule translated for HostUp
---@return table body of POST /api/vm/{vmid}/firewall (and PUT ?pos=)
function M.encode(r)
  if r.direction ~= "ingress" or r.protocol == "any" then
    error("hostup: only ingress tcp/udp/icmp rules can be written (translate the rule first)", 2)
  end
  -- every field the v1 docs list as required is sent; dport "" means no port (icmp: any type)
  local body = {
    type = TYPE[r.direction],
    action = r.action:upper(),
    proto = r.protocol,
    dport = "",
    source = r.cidr,
    comment = r.description or "",
    enable = 1,
  }
  if rule.PORT_PROTOCOLS[r.protocol] then
    local a, b = r.port_min or 1, r.port_max or 65535
    body.dport = a == b and tostring(a) or (a .. ":" .. b)
  end
  return body
end

local RANK = { drop = 1, reject = 1, accept = 2 }

---The order sgrun writes a rule set in (position 0 first): denials above allows, each part in
---key order, so that the same set always lands in the same positions.
---@param rules sg.Rule[] normalised rules
---@return sg.Rule[] a new, ordered list
function M.order(rules)
  local out, keys = {}, {}
  for i, r in ipairs(rules) do
    out[i] = r
    keys[r] = RANK[r.action] .. rule.key(r)
  end
  table.sort(out, function(a, b) return keys[a] < keys[b] end)
  return out
end

return codec.define(M)
