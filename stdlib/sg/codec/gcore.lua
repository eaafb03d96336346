--- Gcore Cloud (OpenStack Neutron underneath) rules <-> canonical rules.
--
-- Rule JSON (reference/gcore.md §3.2, §4.10): direction, ethertype, protocol, port_range_min,
-- port_range_max, remote_ip_prefix, remote_group_id, description.
-- Decisions:
-- * "any protocol" is null: responses may say null, "any" or (legacy) "0"; the v2 request enum
--   has no "any", so encode leaves protocol out (null).
-- * ICMP: as in Neutron, port_range_min/max carry the ICMP type/code [inferred for Gcore].
-- * IPv6 ICMP is "ipv6-icmp" on the wire and "icmpv6" in the canonical rule.
-- * No remote means any address of the rule's ethertype (IPv4 when absent); ports 0 or null, and
--   1-65535, all mean every port (Neutron stores a full range as null).
--
-- Groups (list_groups, get_group, create_group, apply): the groups of the connection's project
-- and region, by name or id. Names are not unique on Gcore: an ambiguous name raises.
-- * create_group sends "rules": [] so that the group starts empty: with "rules" omitted Gcore
--   applies a default template, and which one has changed over time (reference/gcore.md §8).
-- * apply is one v2 PATCH with the full rule list. Rules that stay are sent back as read (same
--   fields), so that Gcore keeps them as they are instead of replacing them.
local rule = require "sg.rule"
local codec = require "sg.codec"
local common = require "sg.codec.groups_common"
local json = require "sg.json"

local M = { name = "gcore" }

local DECODE_OPTS = { clear_host_bits = true, where = "gcore rule" }

-- SecurityGroupProtocolEnumV2 in canonical spelling, plus "any" (sent as null)
local PROTOCOLS = { "ah", "dccp", "egp", "esp", "gre", "icmp", "igmp", "ipip", "ipv6-encap",
  "ipv6-frag", "icmpv6", "ipv6-nonxt", "ipv6-opts", "ipv6-route", "ospf", "pgm", "rsvp", "sctp",
  "tcp", "udp", "udplite", "vrrp", "any" }

---@type sg.Capabilities
M.capabilities = {
  provider = "Gcore",
  protocols = codec.set(PROTOCOLS),
  ports = true,
  icmp_type = true,
  icmp_code = true,
  cidr = true,
  remote_group = true,
  ipv6 = true,
  egress = true,
  actions = { accept = true },
  description = true,
  ordered = false,
  max_rules = 250, -- inbound and outbound together (SPEC maxItems, firewall docs)
}

local function port(v)
  v = codec.int(v)
  if v == 0 then return nil end
  return v
end

---@param raw table a SecurityGroupRule object
---@param ctx sg.GroupContext?
---@return sg.Rule
function M.decode(raw, ctx)
  local protocol = raw.protocol
  if protocol == "0" or protocol == 0 then protocol = nil end -- legacy SDK spelling of "any"
  protocol = rule.protocol(protocol, "gcore rule")
  local pmin, pmax, itype, icode
  if protocol == "icmp" or protocol == "icmpv6" then
    itype, icode = codec.int(raw.port_range_min), codec.int(raw.port_range_max)
    if itype == nil then icode = nil end -- a code alone matches nothing narrower in Neutron
  elseif rule.PORT_PROTOCOLS[protocol] then
    pmin, pmax = port(raw.port_range_min), port(raw.port_range_max)
  end
  local remote
  local gid = raw.remote_group_id
  if not rule.absent(gid) then
    if not rule.absent(raw.remote_ip_prefix) then
      error(string.format("gcore rule %s: remote_ip_prefix and remote_group_id together cannot be " ..
        "modelled (a canonical rule has one source)", tostring(raw.id)), 0)
    end
    local group = ctx and ctx.group
    remote = (ctx and ctx.group_names and ctx.group_names[gid]) or
      (group and group.id == gid and group.name) or gid
  end
  return rule.normalize({
    direction = raw.direction,
    protocol = protocol,
    ethertype = raw.ethertype,
    port_min = pmin,
    port_max = pmax,
    cidr = raw.remote_ip_prefix,
    remote_group = remote,
    icmp_type = itype,
    icmp_code = icode,
    description = raw.description,
  }, DECODE_OPTS)
end

---@param r sg.Rule a rule translated for Gcore
---@param ctx sg.GroupContext?
---@return table one CreateSecurityGroupRuleSerializerV2 (also an element of the PATCH rules list)
function M.encode(r, ctx)
  local body = {
    direction = r.direction,
    ethertype = r.ethertype,
    description = r.description,
  }
  if r.protocol ~= "any" then
    body.protocol = r.protocol == "icmpv6" and "ipv6-icmp" or r.protocol
  end
  if r.port_min then
    body.port_range_min, body.port_range_max = r.port_min, r.port_max
  elseif r.icmp_type then
    body.port_range_min, body.port_range_max = r.icmp_type, r.icmp_code
  end
  if r.remote_group then
    local group = ctx and ctx.group
    local id = (ctx and ctx.group_ids and ctx.group_ids[r.remote_group]) or
      (group and group.name == r.remote_group and group.id)
    if not id then
      error(string.format("gcore: remote group %q has no id; pass ctx.group_ids", r.remote_group), 0)
    end
    body.remote_group_id = id
  else
    body.remote_ip_prefix = r.cidr
  end
  return body
end

---------------------------------------------------------------------------------------------------
-- Groups

-- The fields of CreateSecurityGroupRuleSerializerV2: what a rule in the PATCH list may carry.
local REQUEST_FIELDS = { "direction", "ethertype", "protocol", "port_range_min", "port_range_max",
  "remote_ip_prefix", "remote_group_id", "description" }

---A rule as read (SecurityGroupRule), in the shape of the PATCH list. Only fields that hold a
---value are sent: responses say null where the request schema has plain strings
---(remote_group_id, description), and an absent field takes the schema's default. "Any
---protocol" is left out (default null) whatever spelling the response used.
---@param raw table
---@return table
local function as_request(raw)
  local out = {}
  for _, f in ipairs(REQUEST_FIELDS) do
    if not rule.absent(raw[f]) then out[f] = raw[f] end
  end
  local p = out.protocol
  if p == "any" or p == "0" or p == 0 then out.protocol = nil end
  return out
end

-- Every group of the project and region as listed (the list carries the rules).
---@async
local function list_raw(conn)
  local groups = conn:list_security_groups().results
  if type(groups) ~= "table" then error("gcore: list_security_groups answered without a results list", 0) end
  return groups
end

---@param raw table a SecurityGroup
---@param maps table? id <-> name maps of the region's groups
---@return sg.Group
local function to_group(raw, maps)
  local rules = raw.security_group_rules
  if rule.absent(rules) then rules = {} end
  return common.group(M, { id = raw.id, name = raw.name, description = raw.description, raw = raw,
    ref = raw.id }, rules, maps)
end

-- list_groups(conn): every security group of the connection's project and region (one list request).
-- get_group(conn, ref): one group by name or id; nil and a message when there is none; raises when several groups
--   have the name.
M.list_groups, M.get_group = common.listing("gcore", list_raw, to_group)

---Creates an empty group (no default rules), waits for its task and returns it as re-read.
---@async
---@param conn sg.Connection
---@param name string
---@param description string?
---@return sg.Group
function M.create_group(conn, name, description)
  common.check_name("gcore", name, description)
  local tasks, created = conn:wait(conn:create_security_group({ name = name, description = description,
    rules = json.array() }))
  if not created then
    -- the wait finds the group by the id its task names; read it by that id ourselves otherwise
    local made = tasks[1] and tasks[1].created_resources
    local id = type(made) == "table" and type(made.security_groups) == "table" and made.security_groups[1]
    if not id then
      error(string.format("gcore: the task creating group %q finished without naming the group; list the " ..
        "groups before creating it again (names are not unique)", name), 0)
    end
    created = conn:get_security_group(id)
  end
  return to_group(created, nil)
end

---One PATCH with the full rule list (kept rules as read, added rules encoded), its tasks waited
---for. Nothing is sent when there is nothing to change.
---@async
---@param conn sg.Connection
---@param group sg.Group
---@param changes sg.GroupChanges
---@return {added: integer, removed: integer}
function M.apply(conn, group, changes)
  common.check_changes("gcore", group, changes)
  local final = common.final_rules("gcore", group, changes)
  if #changes.add == 0 and #changes.remove == 0 then return { added = 0, removed = 0 } end
  local max = M.capabilities.max_rules
  if #final > max then
    error(string.format("gcore: group %s would hold %d rules; Gcore allows at most %d per group " ..
      "(ingress and egress together)", group.name, #final, max), 0)
  end
  local ctx = { group = { id = group.id, name = group.name } }
  if common.references_others(group, changes.add) then
    local maps, shared = common.maps(list_raw(conn))
    common.check_shared("gcore", changes.add, shared)
    ctx.group_names, ctx.group_ids = maps.group_names, maps.group_ids
  end
  local list = json.array()
  for i, f in ipairs(final) do
    list[i] = f.raw and as_request(f.raw) or M.encode(f.rule, ctx)
  end
  conn:wait(conn:update_security_group(group.id, { rules = list }))
  return { added = #changes.add, removed = #changes.remove }
end

return codec.define(M)
