--- HostUp VM firewalls through a connection (get_group, apply; list_groups and create_group
-- explain why they cannot); the rule translation is stdlib/sg/codec/hostup.lua.
local rule = require "sg.rule"
local C = require "sg.codec.hostup"
local common = require "sg.groups.common"
local errors = require "sg.errors"
local json = require "sg.json"
local task = require "sg.task"

local M = { name = "hostup" }

-- A firewall is named by its VM: {vm = 10000}, hostup:vm=10000 on a command line.
M.ref_form = { key = "vm", type = "integer", example = "10000", names = "a HostUp VM", only = true }

-- one provider write per rule added or removed (sg.apply.write_count)
M.per_rule_writes = true

--
-- Positions are the only handle on a rule, and they move: a new rule lands at position 0 and
-- pushes every other rule down, a delete pulls the later ones up, and the API has no "move".
-- apply therefore
-- * re-reads the list first and refuses to write when it is not the list the group was read
--   from (a position read earlier may now name another rule);
-- * keeps a model of the list, changes it exactly as Proxmox does after every request, and takes
--   every position from the model;
-- * deletes from the highest position down, so a delete never moves a rule still to be deleted;
-- * rehearses every write on a copy of the model first and refuses, before the first request, a
--   rule it would have to write again that the v1 body cannot say as it is (see unwritable): a
--   listed rule may carry Proxmox options the body has no field for (iface, log, icmp-type, ...),
--   and writing it back without them would widen it without a word;
-- * re-reads the list at the end and raises when it differs from the model (a concurrent edit,
--   or a lost response whose retry found an equal rule instead of creating one).

-- The fields of the v1 write body (all documented as required), plus `dest`, which a listed rule
-- may carry (Proxmox's other address) and which tells two listed rules apart.
-- The v1 body has no `dest`: a listed rule with one cannot be written back (see unwritable).
local WRITE_FIELDS = { "type", "action", "proto", "dport", "source", "dest", "comment", "enable" }
local DENY = { DROP = true, REJECT = true, drop = true, reject = true }

-- The VM id a reference names ({vm = N}, N or "N"), or nil.
local function vmid_in(ref)
  local v = ref
  if type(ref) == "table" then
    v = ref.vm
    if next(ref, next(ref)) ~= nil then v = nil end
  end
  if type(v) == "string" and v:match("^%d+$") then v = tonumber(v) end
  v = type(v) == "number" and math.tointeger(v)
  if not v or v < 1 then return nil end
  return v
end

---Why ref cannot name a HostUp firewall, or nil when it can.
---@param ref any
---@return string? why
function M.ref_problem(ref)
  if vmid_in(ref) then return nil end
  return string.format("hostup: group reference %s is not {vm = N}: a HostUp firewall belongs to one VM, " ..
    "named by its numeric id ({vm = 10000}; hostup:vm=10000 on a command line)", common.ref_shown(ref))
end

local function vmid_of(ref)
  local v = vmid_in(ref)
  if not v then error(M.ref_problem(ref), 3) end
  return v
end

-- Fields of a listed rule that no write has to carry: its place (positions come from the model),
-- Proxmox's config digest, the address family it derives from the addresses, and v2's spelling
-- of enable, which body_of writes as enable.
local READ_ONLY = { pos = true, digest = true, ipversion = true, enabled = true }
local IN_BODY = {}
for _, f in ipairs(WRITE_FIELDS) do IN_BODY[f] = true end

-- What each Proxmox rule option that the v1 body lacks does, for the message that refuses to
-- drop it; an option not named here is still refused, with a generic why.
local DROPPED = {
  iface = "the rule would apply on every interface instead of only %s",
  log = "the rule would stop logging (log level %s)",
  ["icmp-type"] = "the rule would match every ICMP type instead of only %s",
  sport = "the rule would match every source port instead of only %s",
  macro = "the rule would lose its macro %s",
}

-- The listed rule each body copied from one was read as (body -> raw rule): a write of that
-- body also has to say what the rest of the raw rule says (see lost_fields). Weak: a body lives
-- as long as the model list that holds it.
local read_as = setmetatable({}, { __mode = "k" })

-- The options of a listed rule that the v1 write body has no field for, sorted: writing the rule
-- again would drop them without a word (an iface=net1 rule would come back on every interface).
-- "" and null say nothing; Proxmox's log level "nolog" is what a rule without one does.
local function lost_fields(raw)
  local out = {}
  for k, v in pairs(raw) do
    if not READ_ONLY[k] and not IN_BODY[k] and not rule.absent(v) and v ~= "" and
        not (k == "log" and v == "nolog") then
      out[#out + 1] = k
    end
  end
  table.sort(out)
  return out
end

-- The write body that says what a listed rule says: Proxmox lists "" fields as absent, and
-- whether the rule is enabled goes as the documented 0|1, however it was listed ("0", false,
-- enabled = false), so that a rule written again is never switched on or off by the write. Only
-- rules that decoded come here, so C.enabled knows.
local function body_of(raw)
  local b = {}
  for _, f in ipairs(WRITE_FIELDS) do
    if not rule.absent(raw[f]) then b[f] = raw[f] end
  end
  b.dport, b.comment = b.dport or "", b.comment or ""
  b.enable = C.enabled(raw) and 1 or 0
  read_as[b] = raw
  return b
end

-- The v1 body for a canonical rule: encode, plus the fields encode leaves out because Proxmox
-- does without them but the v1 docs list as required (dport "" for icmp and every-protocol rules).
local function write_body(r)
  local b = C.encode(r)
  b.dport = b.dport or ""
  return b
end

-- Why the v1 API cannot take `body` as it is (nil when it can), and what the user can do about
-- it. Bodies sgrun builds always pass; a listed rule sgrun copies while it inserts (see w.insert)
-- may not: Proxmox's panel writes rules with no protocol or one outside the v1 enum, with no
-- source (any address) and with a destination, and the v1 body is seven required fields, proto
-- (icmp|tcp|udp) and source among them, and no destination. Refused here, such a rule fails the
-- apply before its first request instead of half-way through it.
local function unwritable(body)
  -- Proxmox takes a rule without a protocol (every protocol) or with any /etc/protocols name or
  -- number, and lists it so; the v1 body's proto is required and one of icmp, tcp, udp
  local proto = body.proto
  if rule.absent(proto) or proto == "" then
    return "it has no protocol (it matches every protocol), and the v1 body needs one of icmp, tcp, udp",
      "give that rule a protocol (tcp, udp or icmp)"
  end
  if not C.capabilities.protocols[proto] then
    return string.format("its protocol %q is not one the v1 body takes (icmp, tcp, udp)", tostring(proto)),
      "make it a tcp, udp or icmp rule"
  end
  if rule.absent(body.source) then
    return "it has no source address (any address)",
      "give that rule a source address (one rule for 0.0.0.0/0 and one for ::/0 mean any)"
  end
  if not rule.absent(body.dest) then
    return "it has a destination address, which the v1 body lacks", "remove that rule's destination"
  end
  local raw = read_as[body]
  if raw then
    local lost = lost_fields(raw)
    if #lost > 0 then
      local given, effect = {}, {}
      for i, f in ipairs(lost) do
        local value = tostring(raw[f])
        given[i] = f .. "=" .. value
        effect[i] = string.format(DROPPED[f] or ("the rule would lose " .. f .. " %s"), value)
      end
      return string.format("it carries %s, which the v1 body has no field for: written back " ..
          "without it, %s", table.concat(given, ", "), table.concat(effect, "; ")),
        "remove " .. table.concat(lost, ", ") .. " from that rule if it may do without (or make " ..
        "the whole change there)"
    end
  end
end

local function describe(body)
  local proto = body.proto
  if rule.absent(proto) or proto == "" then proto = "any protocol" end
  return string.format("%s %s%s from %s", tostring(body.action), tostring(proto),
    (rule.absent(body.dport) or body.dport == "") and "" or (" port " .. tostring(body.dport)),
    rule.absent(body.source) and "any address" or tostring(body.source))
end

-- A listed rule without a `comment` field says nothing of its comment: HostUp's documented list
-- item has no `comment` (Proxmox's has one), and a comment does not change what a rule lets in.
-- Enabled or not is compared by what it says (1, "1", true, enabled = true), and a value that
-- says neither matches nothing.
local function same_rule(a, b)
  for _, f in ipairs(WRITE_FIELDS) do
    local x, y = a[f], b[f]
    if f == "comment" and (x == nil or y == nil) then x, y = "", "" end
    if f == "enable" then
      x, y = C.enabled(a), C.enabled(b)
      if x == nil then return false end
    end
    if rule.absent(x) then x = "" end
    if rule.absent(y) then y = "" end
    if type(x) == "number" or type(y) == "number" then
      if tonumber(x) ~= tonumber(y) then return false end
    elseif x ~= y then
      return false
    end
  end
  return true
end

-- nil when the listed rules match `want` (raw rules or bodies) one for one, else the position
-- of the first difference.
local function first_difference(listed, want)
  for i = 1, math.max(#listed, #want) do
    if not (listed[i] and want[i] and same_rule(listed[i], want[i])) then return i - 1 end
  end
end

local function bad_listing(vmid, what)
  return errors.new({ provider = "hostup", op = "list_firewall_rules", code = "bad_response",
    message = string.format("vm %d: the rule listing %s; sgrun does not take that for an empty " ..
      "firewall (a snapshot of it would hold no rule, and restoring or applying it would delete " ..
      "every rule). Try again; if it persists, check that SGRUN_HOSTUP_URL (or base_url) points " ..
      "at HostUp's API", vmid, what) })
end

-- The VM's rules, in position order. Only a `data` list is a listing: null, an object or no
-- `data` at all says nothing about the rules (the same guard as common.listed_rules, which has
-- no second read to fall back on here: this listing is the VM's only one).
---@async
local function list_rules(conn, vmid)
  local resp = conn:list_firewall_rules(vmid)
  local raws = type(resp) == "table" and resp.data
  if not json.is_array(raws) then
    local what = raws == nil and "has no 'data'" or raws == json.null and "has 'data': null"
      or "has a 'data' that is not a list (" .. (type(raws) == "table" and "an object" or type(raws)) .. ")"
    error(bad_listing(vmid, what), 0)
  end
  for i, raw in ipairs(raws) do
    if type(raw) ~= "table" or json.is_array(raw) then
      error(bad_listing(vmid, string.format("holds something that is not a rule object at index %d", i - 1)), 0)
    end
  end
  -- the list is in position order; sort anyway when every rule says its position
  local positioned = true
  for _, raw in ipairs(raws) do positioned = positioned and type(raw.pos) == "number" end
  if positioned then table.sort(raws, function(a, b) return a.pos < b.pos end) end
  return raws
end

local function vm_group(vmid, raws)
  local rules, source = {}, {}
  for i, raw in ipairs(raws) do
    local ok, list = pcall(C.decode, raw)
    if not ok then
      error(string.format("hostup vm %d, rule at pos %s (%s): %s", vmid, tostring(raw.pos or i - 1),
        describe(raw), tostring(list)), 0)
    end
    for _, c in ipairs(list) do
      rules[#rules + 1] = c
      source[c] = raw
    end
  end
  return common.remember("hostup", { id = vmid, name = "vm " .. vmid, rules = rules,
    raw = { vmid = vmid, rules = raws }, raw_rules = raws, source = source, ref = { vm = vmid } })
end

---HostUp firewalls belong to VMs and the binding lists no VMs: always raises.
---@param _conn sg.Connection
function M.list_groups(_conn)
  error("hostup: firewalls cannot be listed: each belongs to one VM; name it as {vm = N} " ..
    "(e.g. sg.snapshot(conn, {vm = 10000}))", 2)
end

---A VM's firewall: {vm = N} or N.
---@async
---@param conn sg.Connection
---@param ref {vm: integer}|integer
---@return sg.Group|nil group
---@return string? why there is none
function M.get_group(conn, ref)
  local vmid = vmid_of(ref)
  local ok, raws = pcall(list_rules, conn, vmid)
  if ok then return vm_group(vmid, raws) end
  if errors.is(raws) and raws.status == 404 then
    return nil, string.format("HostUp has no VM %d (or this API key cannot see it)", vmid)
  end
  error(raws, 0)
end

---A HostUp firewall exists with its VM: always raises.
---@param _conn sg.Connection
---@param name string
function M.create_group(_conn, name)
  error(string.format("hostup: cannot create a group %q: a HostUp firewall exists with its VM and " ..
    "cannot be created alone; reference the VM's firewall as {vm = N}", tostring(name)), 2)
end

-- The raw rules that say exactly `parts` (canonical rules that all came from one raw rule):
-- one per network, and networks of one family with the same ports share a rule, as in the
-- original ("80,443" from "10.0.0.0/8,192.168.1.0/24"). Proxmox refuses mixed families.
local function bodies_for(parts)
  local by_net, nets = {}, {}
  for _, c in ipairs(parts) do
    local b = write_body(c)
    local e = by_net[c.cidr]
    if not e then
      e = { body = b, ports = {} }
      by_net[c.cidr] = e
      nets[#nets + 1] = c.cidr
    end
    if b.dport ~= "" then e.ports[#e.ports + 1] = b.dport end
  end
  local groups, order = {}, {}
  for _, net in ipairs(nets) do
    local e = by_net[net]
    local dport = table.concat(e.ports, ",")
    local key = (net:find(":", 1, true) and "6 " or "4 ") .. dport
    local g = groups[key]
    if not g then
      g = { body = e.body, dport = dport, nets = {} }
      groups[key] = g
      order[#order + 1] = key
    end
    g.nets[#g.nets + 1] = net
  end
  local out = {}
  for i, key in ipairs(order) do
    local g = groups[key]
    local b = {}
    for k, v in pairs(g.body) do b[k] = v end
    b.dport = g.dport
    b[b.type == "out" and "dest" or "source"] = table.concat(g.nets, ",")
    out[i] = b
  end
  return out
end

local function changed_error(op, vmid, pos, what)
  return errors.new({ provider = "hostup", op = op, code = "changed", retryable = true,
    message = string.format("vm %d: %s (first difference at pos %d); rules are addressed by " ..
      "position, so sgrun does not write into a list it has not read: read the group again and " ..
      "plan again", vmid, what, pos) })
end

local RECONCILE_ATTEMPTS = 5

-- How many rules a VM's firewall may hold [INFERRED]. HostUp reports the limit per VPS, but only
-- through its v2 API (GET /api/v2/vps/{id}/firewall, limits.maxRules: 100 in the example,
-- "read it per VPS"), addressed by a public vps_... id that the numeric vmid of a {vm = N}
-- reference does not lead to (reference 3.3: the mapping is unknown; v2 VPS objects carry no
-- vmid), and the v1 listing sgrun reads says nothing about it. So sgrun takes the documented
-- value, here and only here; a VM that already holds more has a higher limit sgrun cannot read,
-- and is not checked (see check_limit). sim/sgsim/hostup.lua enforces the same number.
local VM_RULE_LIMIT = 100

-- Refuses, before the first request, a change that would take the VM past its rule limit at any
-- moment: the server would refuse the add that crosses it, after the writes before it landed.
-- The peak is the rehearsal's: every add (copies, restored rules, the parts a narrowed rule
-- keeps) goes before the deletes. The writes are not reordered to keep under the limit instead:
-- deleting first would let traffic in (a DROP gone before its replacement lands) or cut traffic
-- that stays allowed (an ACCEPT gone before the narrower one that replaces it lands), and sgrun
-- adds before it removes. Splitting the change is the user's call, so the message says how.
local function check_limit(vmid, now, peak, final)
  if now > VM_RULE_LIMIT or peak <= VM_RULE_LIMIT then return end
  local message
  if final > VM_RULE_LIMIT then
    message = string.format("vm %d: this change leaves the VM with %d rules, and HostUp allows %d " ..
      "per VPS. Nothing was sent. Ask for fewer rules (\"80,443\"-style port lists and address lists " ..
      "of one family share a rule), then run again", vmid, final, VM_RULE_LIMIT)
  else
    message = string.format("vm %d: this change would hold %d rules at its peak: the %d there now " ..
      "plus %d added before the %d deletes (sgrun adds before it removes, so that nothing is let " ..
      "in or cut off in between), and HostUp allows %d per VPS. Nothing was sent. Make room first: " ..
      "apply the same desired rules without the new ones (that only removes), or remove %d rule(s) " ..
      "in HostUp's panel; then run again", vmid, peak, now, peak - now, peak - final, VM_RULE_LIMIT,
      peak - VM_RULE_LIMIT)
  end
  error(errors.new({ provider = "hostup", op = "apply", code = "rule_limit", retryable = false,
    message = message }), 0)
end

-- The writer: every request, mirrored in the model `list` (bodies, position = index - 1).
-- Positional writes cannot be re-sent blindly (a repeated delete would remove the next rule), so
-- when one fails in a way that may or may not have reached the VM, the list is read back: equal
-- to the model after the write means it landed, equal to the model before means it did not and
-- it is sent again (a few times, backing off), anything else is a concurrent change and raises.
-- A rehearsal writer (conn nil) sends nothing: it only changes the model and raises on the first
-- body the v1 API cannot take, so that apply finds it before its first request.
-- `done` (sg.GroupChanges.done): the writes that change canonical rules carry a tally of them
-- ({added = n} or {removed = n}), counted into `done` once that write has landed, so that a
-- failure part-way reports what the VM's firewall already says.
local function writer(conn, vmid, list, done)
  local w = {}
  local peak = #list

  local function count(tally)
    if not (conn and done and tally) then return end
    done.added = done.added + (tally.added or 0)
    done.removed = done.removed + (tally.removed or 0)
  end

  ---@async
  local function write(op, send, mutate, body)
    if not conn then
      local why, fix
      if body then why, fix = unwritable(body) end
      if why then
        local raw = read_as[body]
        local at = raw and math.type(raw.pos) == "integer" and string.format(" (pos %d as read)", raw.pos) or ""
        error(errors.new({ provider = "hostup", op = "apply", code = "unwritable", retryable = false,
          message = string.format("vm %d: this change has to write the rule %s%s again (HostUp adds " ..
            "rules only at the top, so the rules above a new one are written again one place down, " ..
            "a narrowed rule is rewritten in place, and a restored rule is written as it was read), " ..
            "and HostUp's v1 API cannot write it as it is: %s. Nothing was sent. In HostUp's panel, " ..
            "%s, or move that rule to the bottom of the list; then run again", vmid, describe(body),
            at, why, fix) }), 0)
      end
      mutate()
      peak = math.max(peak, #list)
      return
    end
    local before = table.move(list, 1, #list, 1, {})
    mutate()
    local pause = 0.2
    for attempt = 1, RECONCILE_ATTEMPTS do
      local ok, err = pcall(send)
      if ok then return end
      local unsure = errors.is(err) and (err.maybe_applied or err.retryable)
      if not unsure or attempt == RECONCILE_ATTEMPTS then error(err, 0) end
      local now = list_rules(conn, vmid)
      if not first_difference(now, list) then return end
      local pos = first_difference(now, before)
      if pos then
        error(changed_error(op, vmid, pos, "the firewall changed while sgrun was writing it"), 0)
      end
      task.sleep(pause)
      pause = pause * 2
    end
  end

  ---@async
  function w.add(body, tally)
    write("add_firewall_rule",
      ---@async
      function() conn:add_firewall_rule(vmid, body) end,
      function() table.insert(list, 1, body) end, body)
    count(tally)
  end

  ---@async
  function w.put(pos, body, tally)
    write("update_firewall_rule",
      ---@async
      function() conn:update_firewall_rule(vmid, pos, body) end,
      function() list[pos + 1] = body end, body)
    count(tally)
  end

  ---@async
  function w.delete(pos, tally)
    write("delete_firewall_rule",
      ---@async
      function() conn:delete_firewall_rule(vmid, pos) end,
      function() table.remove(list, pos + 1) end)
    count(tally)
  end

  -- Proxmox inserts at the top only. To put a rule at position k > 0 without a moment in which
  -- the list means anything else: add a copy of the top rule (it lands at 0), move rules
  -- 1..k-1 up one by one with PUTs (each overwrites the copy the previous step left), and PUT
  -- the new rule over the last copy, at k. Before that last PUT the list is always the old one
  -- with one rule repeated next to itself, which passes and blocks the same traffic, so only
  -- that PUT counts the tally. Cost: 1 POST + k PUTs.
  ---@async
  function w.insert(k, body, tally)
    if k == 0 then return w.add(body, tally) end
    w.add(list[1])
    for pos = 1, k - 1 do w.put(pos, list[pos + 2]) end
    w.put(k, body, tally)
  end

  ---The most rules the list held at once so far.
  ---@return integer
  function w.peak() return peak end

  function w.pos_of(body)
    for i, b in ipairs(list) do
      if b == body then return i - 1 end
    end
    error("hostup apply: lost track of a rule in the model list (a bug in sgrun)", 0)
  end

  return w
end


-- What a rule says, as one string: rules read at different times are matched by it.
local function content_key(body)
  local out = {}
  for i, f in ipairs(WRITE_FIELDS) do out[i] = tostring(body[f] or "") end
  return table.concat(out, "\0")
end

-- Rules of an earlier read (`order`, every raw rule of it in list order) go back where they
-- stood: below the last rule that preceded it then and is in the list now (matched by what it
-- says; the top when none is), and never below the first one that followed it. That is the
-- highest such place, since an insert at position k costs 1 + k writes. Placed from the last one
-- up, so that each finds the ones that followed it already back. `bodies`: raw rule of that
-- read -> the body to write; `tallies`: body -> what it adds (see writer).
---@async
local function put_back(w, list, order, bodies, tallies)
  if not order or not next(bodies) then return end
  local present = {}
  for _, b in ipairs(list) do present[content_key(b)] = present[content_key(b)] or b end
  local function now(raw) return present[content_key(body_of(raw))] end
  local placed = {}
  for i = #order, 1, -1 do
    local body = bodies[order[i]]
    if body then
      local at = 0
      for j = i - 1, 1, -1 do
        local before = not bodies[order[j]] and now(order[j])
        if before then
          at = w.pos_of(before) + 1
          break
        end
      end
      for j = i + 1, #order do
        local follower = placed[order[j]] or now(order[j])
        if follower then
          at = math.min(at, w.pos_of(follower))
          break
        end
      end
      w.insert(at, body, tallies[body])
      placed[order[i]] = body
    end
  end
end

-- The one raw rule that holds exactly `kept` (and nothing else, and nothing being removed), or
-- nil: a rule narrowed since it was read, which can take back its own form with one PUT.
local function narrowed(group, kept, removed)
  local raw = group.source[kept[1]]
  if not raw or removed[raw] then return nil end
  local mine = {}
  for _, r in ipairs(kept) do
    if group.source[r] ~= raw then return nil end
    mine[r] = true
  end
  for _, c in ipairs(group.rules) do
    if group.source[c] == raw and not mine[c] then return nil end
  end
  return raw
end

-- Every write of a change, in order, through writer `w` over the model `list` (`entry`: raw
-- rule of the group -> its body in `list`). `removed`: raw rule -> the canonical rules it loses.
---@async
local function write_changes(w, list, entry, group, changes, removed)
  -- adds: denials at the top, accepts below the last denial (see M.apply); rules read
  -- from this VM before go back as the rule they were read from ("80,443" stays one rule, an
  -- address stays without "/32"), in the order they were read
  local denials, accepts, restored, in_place = {}, {}, {}, {}
  -- body -> the canonical rules its write adds (see writer)
  local gains = {}
  local function queue(b)
    local part = DENY[b.action] and denials or accepts
    part[#part + 1] = b
  end
  local widen = {}
  for _, e in ipairs(changes.raw or {}) do
    local keep = e.keep or {}
    local into = #keep > 0 and narrowed(group, keep, removed)
    local b = (into or #keep == 0) and body_of(e.raw)
    if into then
      widen[#widen + 1] = { raw = into, body = b }
    elseif b then
      if changes.raw_order then in_place[e.raw] = b else queue(b) end
    end
    if b then
      gains[b] = { added = #e.rules }
      for _, r in ipairs(e.rules) do restored[r] = true end
    end
  end
  local fresh = {}
  for _, r in ipairs(changes.add or {}) do
    if not restored[r] then fresh[#fresh + 1] = r end
  end
  for _, r in ipairs(C.order(fresh)) do
    local b = write_body(r)
    gains[b] = { added = 1 }
    queue(b)
  end
  -- a rule narrowed since it was read gets back the parts it lost: rewritten in place as read,
  -- first, so that rules put back next to it recognise it
  for _, x in ipairs(widen) do
    w.put(w.pos_of(entry[x.raw]), x.body, gains[x.body])
    entry[x.raw] = x.body
  end
  put_back(w, list, changes.raw_order, in_place, gains)
  for i = #denials, 1, -1 do w.add(denials[i], gains[denials[i]]) end
  local below = 0
  for i, b in ipairs(list) do
    if DENY[b.action] then below = i end
  end
  for i = #accepts, 1, -1 do w.insert(below, accepts[i], gains[accepts[i]]) end

  -- partial removes: the parts that stay are written first (inserted right below the rule),
  -- then the rule is narrowed in place; whole removes are collected for the deletes
  local doomed = {}
  for _, raw in ipairs(group.raw_rules) do
    local gone = removed[raw]
    if gone then
      local keep, lost = {}, 0
      for _, c in ipairs(group.rules) do
        if group.source[c] == raw then
          if gone[c] then lost = lost + 1 else keep[#keep + 1] = c end
        end
      end
      if #keep == 0 then
        doomed[#doomed + 1] = { body = entry[raw], tally = { removed = lost } }
      else
        local bodies = bodies_for(keep)
        -- they rewrite that rule: what it says beyond the v1 body must not go quietly
        for _, b in ipairs(bodies) do read_as[b] = raw end
        for i = #bodies, 2, -1 do w.insert(w.pos_of(entry[raw]) + 1, bodies[i]) end
        w.put(w.pos_of(entry[raw]), bodies[1], { removed = lost })
      end
    end
  end
  -- deletes from the highest position down: a delete moves only the rules below it
  for _, d in ipairs(doomed) do d.pos = w.pos_of(d.body) end
  table.sort(doomed, function(a, b) return a.pos > b.pos end)
  for _, d in ipairs(doomed) do w.delete(d.pos, d.tally) end
end

---Applies adds, then removes, by position. Raises the provider's error object on failure.
---
---Order: every drop/reject rule ends above every accept rule, which is what codec `order()`
---puts first and what first-match evaluation needs. New denials are added at position 0
---(above everything), new accepts are inserted just below the last denial in the list, each
---group in `order()` sequence; rules that stay keep their positions (reordering rules of one
---kind would cost a PUT per rule and changes nothing that passes or is blocked), and a rule
---narrowed by a partial remove keeps its position and action. A restore is the exception:
---rules read from this VM before (changes.raw, with changes.raw_order) go back where they stood
---in that read, so an accept that stood above a drop lets its traffic in again.
---@async
---@param conn sg.Connection
---@param group sg.Group from get_group
---@param changes {add: sg.Rule[]?, remove: sg.Rule[]?, desired: sg.Rule[]?, raw: sg.RawAdd[]?}
---@return {added: integer, removed: integer}
function M.apply(conn, group, changes)
  local adds, removes = changes.add or {}, changes.remove or {}
  local vmid = vmid_of(group.ref)
  -- which raw rules lose which parts
  local removed = {}
  for _, r in ipairs(removes) do
    local raw = group.source[r]
    if not raw then
      error("hostup apply: a rule to remove (" .. rule.tostring(r) .. ") is not one of group.rules", 2)
    end
    removed[raw] = removed[raw] or {}
    removed[raw][r] = true
  end
  if #adds == 0 and #removes == 0 then return { added = 0, removed = 0 } end

  local raws = group.raw_rules
  local pos = first_difference(list_rules(conn, vmid), raws)
  if pos then
    error(changed_error("apply", vmid, pos, "the firewall changed since the group was read"), 0)
  end
  -- rehearsed on a copy of the model first: a rule the v1 API cannot take, or more rules than the
  -- VM may hold, fails the apply before its first request instead of in the middle of it
  local function model()
    local list, entry = {}, {}
    for i, raw in ipairs(raws) do
      list[i] = body_of(raw)
      entry[raw] = list[i]
    end
    return list, entry
  end
  local rehearsal, rehearsal_entry = model()
  local rehearsed = writer(nil, vmid, rehearsal)
  write_changes(rehearsed, rehearsal, rehearsal_entry, group, changes, removed)
  check_limit(vmid, #raws, rehearsed.peak(), #rehearsal)
  local list, entry = model()
  write_changes(writer(conn, vmid, list, changes.done), list, entry, group, changes, removed)

  pos = first_difference(list_rules(conn, vmid), list)
  if pos then
    error(changed_error("apply", vmid, pos, "after writing, the rule list is not what sgrun wrote " ..
      "(a concurrent change, or a lost response)"), 0)
  end
  return { added = #adds, removed = #removes }
end

return M
