-- Every provider the build lists (_sg.providers) has every piece the neutral layer needs, and
-- a missing or incomplete piece fails with a message naming the file to write:
--   bindings/NAME.c            the description table the neutral layer reads
--   stdlib/sg/codec/NAME.lua   capability table, decode/encode, round trips of what it claims
--                              to express, and no I/O (loads without the networking library)
--   stdlib/sg/groups/NAME.lua  the adapter's operations, reading the emulator's demo target
--   sim/sgsim/NAME.lua         the emulator module interface (sim/sgsim/init.lua)
--   stdlib/meta/sg_providers.lua  the LuaLS stubs list the provider's class and methods
-- The vendor schemas (tests/schemas/NAME.schema.json) are checked by conformance/schemas.
local t = require "testlib"
local sg = require "sg"
local cli = require "sg.cli"
local codecs = require "sg.codec"
local connect = require "sg.connect"
local groups = require "sg.groups"
local json = require "sg.json"
local rule = require "sg.rule"
local w = require "sim_wire"

local SGRUN = arg[-1]
local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local ROOT = HERE .. "/../.."
local PROVIDERS = require "_sg.providers"

t.ok(#PROVIDERS > 0, "the build lists no provider: a provider is a bindings/NAME.c that calls sg_provider_push")

-- pcall(fn) with the error turned into a message that names the file to write.
local function piece(file, fn, ...)
  local ok, err = pcall(fn, ...)
  if not ok then error(file .. ": " .. tostring(err), 0) end
  return err
end

local function need(cond, file, fmt, ...)
  if not cond then error(string.format("%s: " .. fmt, file, ...), 0) end
end

local function is_fn(v) return type(v) == "function" end

-- The binding: the fields of bindings/provider.h that connect, retry, wait and errors read.
local function check_binding(name)
  local file = "bindings/" .. name .. ".c"
  local def = piece(file, connect.describe, name)
  need(def.name == name, file, "the description's name is %q, not %q", tostring(def.name), name)
  need(type(def.base_url_env) == "string" and def.base_url_env ~= "", file, "base_url_env is missing")
  need(type(def.default_base_url) == "string", file, "default_base_url is missing")
  need(is_fn(def.auth), file, "the auth hook is missing")
  need(type(def.credentials) == "table", file, "the credentials list is missing")
  need(type(def.errors) == "table" and def.errors.code and def.errors.message, file,
    "the errors table needs at least code and message")
  need(type(def.endpoints) == "table" and #def.endpoints > 0, file, "the endpoint table is empty")
  for i, ep in ipairs(def.endpoints) do
    for _, f in ipairs({ "name", "method", "path", "doc" }) do
      need(type(ep[f]) == "string" and ep[f] ~= "", file, "endpoint %d has no %s", i, f)
    end
  end
  return def
end

local CAPABILITY_FIELDS = { provider = "string", protocols = "table", ports = "boolean",
  icmp_type = "boolean", icmp_code = "boolean", cidr = "boolean", remote_group = "boolean",
  ipv6 = "boolean", egress = "boolean", actions = "table", description = "boolean", ordered = "boolean" }

-- Canonical rules covering what the capability table can claim; each codec round-trips those it
-- translates exactly.
local SAMPLES = {
  { direction = "ingress", protocol = "tcp", port = 22, cidr = "10.0.0.0/8", description = "ssh" },
  { direction = "ingress", protocol = "tcp", port_min = 8000, port_max = 8100, cidr = "0.0.0.0/0" },
  { direction = "ingress", protocol = "udp", port = 53, cidr = "2001:db8::/32" },
  { direction = "ingress", protocol = "tcp", cidr = "0.0.0.0/0" },
  { direction = "ingress", protocol = "icmp", icmp_type = 8, icmp_code = 0, cidr = "0.0.0.0/0" },
  { direction = "ingress", protocol = "icmp", cidr = "0.0.0.0/0" },
  { direction = "egress", protocol = "any", cidr = "0.0.0.0/0" },
  { direction = "egress", protocol = "tcp", port = 443, cidr = "::/0" },
  { direction = "ingress", protocol = "tcp", port = 5432, remote_group = "peer" },
  { direction = "ingress", action = "drop", protocol = "tcp", port = 23, cidr = "0.0.0.0/0" },
}

local CTX = { group = { id = "id-self", name = "self" }, group_ids = { peer = "id-peer", self = "id-self" },
  group_names = { ["id-peer"] = "peer", ["id-self"] = "self" } }

local function check_codec(name)
  local file = "stdlib/sg/codec/" .. name .. ".lua"
  local c = piece(file, codecs.get, name)
  need(c.name == name, file, "the codec's name is %q, not %q", tostring(c.name), name)
  need(type(c.capabilities) == "table", file, "the capability table is missing")
  for f, ty in pairs(CAPABILITY_FIELDS) do
    need(type(c.capabilities[f]) == ty, file, "capabilities.%s must be a %s", f, ty)
  end
  for _, f in ipairs({ "decode", "encode", "translate", "check" }) do
    need(is_fn(c[f]), file, "%s is missing (end the file with `return codec.define(M)`)", f)
  end
  local exact = 0
  for i, sample in ipairs(SAMPLES) do
    local r = rule.normalize(sample)
    local tr = c.translate(r)
    if tr.status == "exact" then
      exact = exact + 1
      local body = piece(file, c.encode, tr.rule, CTX)
      local back = piece(file, codecs.decode_all, c, { json.decode(json.encode(body)) }, CTX)
      need(#back == 1 and rule.key(back[1]) == rule.key(tr.rule), file,
        "sample %d (%s) claims to be expressed exactly, but encode then decode gives %s", i,
        rule.tostring(tr.rule), #back == 1 and rule.tostring(back[1]) or (#back .. " rules"))
      need(back[1].description == tr.rule.description, file, "sample %d loses its description", i)
    end
  end
  need(exact > 0, file, "expresses none of the sample rules exactly")
end

-- Loading a codec loads no networking and no connection: it only translates.
local function check_codec_alone(name)
  local code = string.format([[
    require("sg.codec").get(%q)
    for _, m in ipairs({ "_sg.http", "sg.connect", "sg.groups", "sg.task" }) do
      if package.loaded[m] then error("loading the codec loaded " .. m) end
    end]], name)
  local p = assert(io.popen(string.format("'%s' -e '%s' 2>&1", SGRUN, code:gsub("'", "'\\''"))))
  local out = p:read("a")
  local ok = p:close()
  need(ok, "stdlib/sg/codec/" .. name .. ".lua", "a codec translates only (no I/O): %s", out)
end

local function check_adapter(name)
  local file = "stdlib/sg/groups/" .. name .. ".lua"
  local a = piece(file, groups.get, name)
  need(a.name == name, file, "the adapter's name is %q, not %q", tostring(a.name), name)
  for _, op in ipairs(groups.OPERATIONS) do need(is_fn(a[op]), file, "%s is missing", op) end
  need(a.delete_group == nil or is_fn(a.delete_group), file, "delete_group must be a function")
  return a
end

local SIM_FIELDS = { name = "string", prefix = "string", new_state = "function", handle = "function",
  error_body = "function", env = "function", credentials_banner = "string", demo_target = "string" }

local function check_sim(name)
  local file = "sim/sgsim/" .. name .. ".lua"
  local m = piece(file, require, "sgsim." .. name)
  for f, ty in pairs(SIM_FIELDS) do
    need(type(m[f]) == ty, file, "%s must be a %s (see the interface in sim/sgsim/init.lua)", f, ty)
  end
  need(m.name == name, file, "the module's name is %q, not %q", tostring(m.name), name)
  need(m.prefix:sub(1, 1) == "/", file, "prefix must start with /")
  local env = m.env("http://127.0.0.1:1")
  local def = connect.describe(name)
  need(type(env) == "table" and env[def.base_url_env] == "http://127.0.0.1:1" .. m.prefix, file,
    "env(base_url) must set %s to base_url .. prefix", def.base_url_env)
  return m
end

local function check_stubs(name, def)
  local file = "stdlib/meta/sg_providers.lua"
  local f = io.open(ROOT .. "/" .. file, "r")
  need(f, file, "missing")
  local text = f:read("a")
  f:close()
  need(text:find("---@class sg.conn." .. name .. " ", 1, true), file,
    "has no class for %s; regenerate: sgrun -e 'io.write(require(\"sg.connect\").stubs())' > %s", name, file)
  for _, ep in ipairs(def.endpoints) do
    need(text:find(":" .. ep.name .. "(", 1, true), file,
      "has no method %s; regenerate: sgrun -e 'io.write(require(\"sg.connect\").stubs())' > %s", ep.name, file)
  end
end

for _, name in ipairs(PROVIDERS) do
  t.test(name .. ": binding, codec, adapter, emulator module and stubs", function()
    local def = check_binding(name)
    check_codec(name)
    check_codec_alone(name)
    local adapter = check_adapter(name)
    local sim = check_sim(name)
    check_stubs(name, def)
    -- the adapter reads the emulator's demo target: a group, or nil and why
    local conn = w.connect(name)
    local _, ref = cli.parse_target(name .. ":" .. sim.demo_target)
    local g, why = adapter.get_group(conn, ref)
    need(g ~= nil or type(why) == "string", "stdlib/sg/groups/" .. name .. ".lua",
      "get_group must return a group, or nil and a message")
    if g then
      need(type(g.rules) == "table" and g.ref ~= nil, "stdlib/sg/groups/" .. name .. ".lua",
        "get_group's group has no rules list or no ref")
      local snap = sg.snapshot(conn, ref)
      t.eq(#snap.rules, #g.rules, name .. " snapshot of the demo target")
    end
  end)
end

t.run()
