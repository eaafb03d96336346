-- sg.crypto against the published vectors: RFC 4231 (HMAC-SHA256), RFC 4648 (base64, base16),
-- FIPS 180-2 (SHA-256).
local t = require "testlib"
local crypto = require("sg").crypto

local function hex(s) return crypto.hex_encode(s) end
local function unhex(s) return assert(crypto.hex_decode(s)) end

local rfc4231 = {
  { key = ("\x0b"):rep(20), data = "Hi There",
    mac = "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7" },
  { key = "Jefe", data = "what do ya want for nothing?",
    mac = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" },
  { key = ("\xaa"):rep(20), data = ("\xdd"):rep(50),
    mac = "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe" },
  { key = unhex("0102030405060708090a0b0c0d0e0f10111213141516171819"), data = ("\xcd"):rep(50),
    mac = "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b" },
  { key = ("\x0c"):rep(20), data = "Test With Truncation", truncate = 16,
    mac = "a3b6167473100ee06e0c796c2955552b" },
  { key = ("\xaa"):rep(131), data = "Test Using Larger Than Block-Size Key - Hash Key First",
    mac = "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54" },
  { key = ("\xaa"):rep(131),
    data = "This is a test using a larger than block-size key and a larger than block-size data."
      .. " The key needs to be hashed before being used by the HMAC algorithm.",
    mac = "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2" },
}

for i, v in ipairs(rfc4231) do
  t.test("HMAC-SHA256 RFC 4231 test case " .. i, function()
    local mac = crypto.hmac_sha256(v.key, v.data)
    if v.truncate then mac = mac:sub(1, v.truncate) end
    t.eq(hex(mac), v.mac)
  end)
end

local rfc4648 = { [""] = "", f = "Zg==", fo = "Zm8=", foo = "Zm9v", foob = "Zm9vYg==",
  fooba = "Zm9vYmE=", foobar = "Zm9vYmFy" }

t.test("base64 RFC 4648 section 10 vectors, both ways", function()
  for plain, encoded in pairs(rfc4648) do
    t.eq(crypto.base64_encode(plain), encoded, plain)
    t.eq(crypto.base64_decode(encoded), plain, encoded)
  end
end)

t.test("base16 RFC 4648 vector, both ways, either case", function()
  t.eq(hex("foobar"), "666f6f626172")
  t.eq(crypto.hex_decode("666F6F626172"), "foobar")
end)

t.test("bad base64 and hex are refused with a reason", function()
  local v, err = crypto.base64_decode("Zm9v!")
  t.eq(v, nil)
  t.ok(err:find("multiple of 4"), err)
  v, err = crypto.base64_decode("Zm9*")
  t.eq(v, nil)
  t.ok(err:find("invalid character"), err)
  v, err = crypto.hex_decode("abc")
  t.eq(v, nil)
  t.ok(err:find("odd"), err)
  v, err = crypto.hex_decode("zz")
  t.ok(v == nil and err:find("invalid digit"), err)
end)

t.test("SHA-256 FIPS 180-2 vectors", function()
  t.eq(hex(crypto.sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
  t.eq(hex(crypto.sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
end)

t.test("random bytes have the asked length and differ", function()
  local a, b = crypto.random_bytes(32), crypto.random_bytes(32)
  t.eq(#a, 32)
  t.ok(a ~= b, "two random draws are equal")
  t.raises(function() crypto.random_bytes(-1) end, "expected 0..1048576")
end)

t.run()
