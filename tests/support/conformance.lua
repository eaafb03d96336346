--- The per-provider conformance checks (tests/sim/test_conformance.lua runs them for every entry
-- of _sg.providers; tests/lua/test_sixth_provider.lua for its throw-away provider). Each raises a
-- message that starts with the file to write or fix.
local codecs = require "sg.codec"
local connect = require "sg.connect"
local groups = require "sg.groups"
local json = require "sg.json"
local rule = require "sg.rule"

local M = {}

local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local ROOT = HERE .. "/../.."
local SGRUN = arg and arg[-1]

-- pcall(fn) with the error turned into a message that names the file to write.
local function piece(file, fn, ...)
  local ok, err = pcall(fn, ...)
  if not ok then error(file .. ": " .. tostring(err), 0) end
  return err
end

function M.need(cond, file, fmt, ...)
  if not cond then error(string.format("%s: " .. fmt, file, ...), 0) end
end

local function is_fn(v) return type(v) == "function" end

-- The binding: the fields of bindings/provider.h that connect, retry, wait and errors read.
function M.binding(name)
  local file = "bindings/" .. name .. ".c"
  local def = piece(file, connect.describe, name)
  M.need(def.name == name, file, "the description's name is %q, not %q", tostring(def.name), name)
  M.need(type(def.base_url_env) == "string" and def.base_url_env ~= "", file, "base_url_env is missing")
  M.need(type(def.default_base_url) == "string", file, "default_base_url is missing")
  M.need(is_fn(def.auth), file, "the auth hook is missing")
  M.need(type(def.credentials) == "table", file, "the credentials list is missing")
  M.need(type(def.errors) == "table" and def.errors.code and def.errors.message, file,
    "the errors table needs at least code and message")
  M.need(type(def.endpoints) == "table" and #def.endpoints > 0, file, "the endpoint table is empty")
  for i, ep in ipairs(def.endpoints) do
    for _, f in ipairs({ "name", "method", "path", "doc" }) do
      M.need(type(ep[f]) == "string" and ep[f] ~= "", file, "endpoint %d has no %s", i, f)
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

function M.codec(name)
  local file = "stdlib/sg/codec/" .. name .. ".lua"
  local c = piece(file, codecs.get, name)
  M.need(c.name == name, file, "the codec's name is %q, not %q", tostring(c.name), name)
  M.need(type(c.capabilities) == "table", file, "the capability table is missing")
  for f, ty in pairs(CAPABILITY_FIELDS) do
    M.need(type(c.capabilities[f]) == ty, file, "capabilities.%s must be a %s", f, ty)
  end
  for _, f in ipairs({ "decode", "encode", "translate", "check" }) do
    M.need(is_fn(c[f]), file, "%s is missing (end the file with `return codec.define(M)`)", f)
  end
  local exact = 0
  for i, sample in ipairs(SAMPLES) do
    local r = rule.normalize(sample)
    local tr = c.translate(r)
    if tr.status == "exact" then
      exact = exact + 1
      local body = piece(file, c.encode, tr.rule, CTX)
      local back = piece(file, codecs.decode_all, c, { json.decode(json.encode(body)) }, CTX)
      M.need(#back == 1 and rule.key(back[1]) == rule.key(tr.rule), file,
        "sample %d (%s) claims to be expressed exactly, but encode then decode gives %s", i,
        rule.tostring(tr.rule), #back == 1 and rule.tostring(back[1]) or (#back .. " rules"))
      M.need(back[1].description == tr.rule.description, file, "sample %d loses its description", i)
    end
  end
  M.need(exact > 0, file, "expresses none of the sample rules exactly")
end

-- Loading a codec loads no networking and no connection: it only translates.
function M.codec_alone(name)
  local code = string.format([[
    require("sg.codec").get(%q)
    for _, m in ipairs({ "_sg.http", "sg.connect", "sg.groups", "sg.task" }) do
      if package.loaded[m] then error("loading the codec loaded " .. m) end
    end]], name)
  local p = assert(io.popen(string.format("'%s' -e '%s' 2>&1", SGRUN, code:gsub("'", "'\\''"))))
  local out = p:read("a")
  local ok = p:close()
  M.need(ok, "stdlib/sg/codec/" .. name .. ".lua", "a codec translates only (no I/O): %s", out)
end

function M.adapter(name)
  local file = "stdlib/sg/groups/" .. name .. ".lua"
  local a = piece(file, groups.get, name)
  M.need(a.name == name, file, "the adapter's name is %q, not %q", tostring(a.name), name)
  for _, op in ipairs(groups.OPERATIONS) do M.need(is_fn(a[op]), file, "%s is missing", op) end
  M.need(a.delete_group == nil or is_fn(a.delete_group), file, "delete_group must be a function")
  return a
end

local SIM_FIELDS = { name = "string", prefix = "string", new_state = "function", handle = "function",
  error_body = "function", env = "function", credentials_banner = "string", demo_target = "string" }

function M.sim(name)
  local file = "sim/sgsim/" .. name .. ".lua"
  local m = piece(file, require, "sgsim." .. name)
  for f, ty in pairs(SIM_FIELDS) do
    M.need(type(m[f]) == ty, file, "%s must be a %s (see the interface in sim/sgsim/init.lua)", f, ty)
  end
  M.need(m.name == name, file, "the module's name is %q, not %q", tostring(m.name), name)
  M.need(m.prefix:sub(1, 1) == "/", file, "prefix must start with /")
  local env = m.env("http://127.0.0.1:1")
  local def = connect.describe(name)
  M.need(type(env) == "table" and env[def.base_url_env] == "http://127.0.0.1:1" .. m.prefix, file,
    "env(base_url) must set %s to base_url .. prefix", def.base_url_env)
  return m
end

function M.stubs(name, def)
  local file = "stdlib/meta/sg_providers.lua"
  local f = io.open(ROOT .. "/" .. file, "r")
  M.need(f, file, "missing")
  local text = f:read("a")
  f:close()
  M.need(text:find("---@class sg.conn." .. name .. " ", 1, true), file,
    "has no class for %s; regenerate: sgrun -e 'io.write(require(\"sg.connect\").stubs())' > %s", name, file)
  for _, ep in ipairs(def.endpoints) do
    M.need(text:find(":" .. ep.name .. "(", 1, true), file,
      "has no method %s; regenerate: sgrun -e 'io.write(require(\"sg.connect\").stubs())' > %s", ep.name, file)
  end
end

return M
