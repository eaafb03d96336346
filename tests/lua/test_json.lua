local t = require "testlib"
local json = require("sg").json

t.test("null and empty arrays survive encoding", function()
  t.eq(json.encode({ a = json.null }), '{"a":null}')
  t.eq(json.encode(json.array()), "[]")
  local text = json.encode({ rules = json.array() })
  t.eq(text, '{"rules":[]}')
  t.eq(json.encode({ list = { json.array(), 1 } }), '{"list":[[],1]}')
end)

t.test("encoding does not modify the caller's table", function()
  local body = { rules = json.array() }
  json.encode(body)
  t.ok(json.is_array(body.rules))
  t.eq(next(body.rules), nil)
end)

t.test("a string that looks like the marker is left alone", function()
  t.eq(json.encode({ s = "sgrun:empty_array" }), '{"s":"sgrun:empty_array"}')
end)

t.test("decode returns values and says where bad JSON is bad", function()
  t.eq(json.decode('{"a":[1,2,3],"b":null}').a, { 1, 2, 3 })
  t.eq(json.decode('{"b":null}').b, json.null)
  local v, err = json.decode('{"a": [1, 2,}')
  t.eq(v, nil)
  t.ok(err:find("at character 13", 1, true), err)
  t.ok(err:find("near", 1, true), err)
  v, err = json.decode("")
  t.eq(v, nil)
  t.ok(err:find("invalid JSON"), err)
end)

-- a reply naming a field twice has no one meaning: with the last one winning,
-- {"network": "10.0.0.0/8", "network": "0.0.0.0/0"} read as open to the world
t.test("an object with a key twice is refused, not read as its last value", function()
  local v, err = json.decode('{"network": "10.0.0.0/8", "network": "0.0.0.0/0"}')
  t.eq(v, nil)
  t.ok(err:find("invalid JSON: duplicate object key", 1, true), err)
  t.eq(json.decode('{"a": {"k": 1}, "b": {"k": 2}}').b.k, 2, "the same key in two objects is fine")
end)

t.test("values JSON cannot hold raise a clear error", function()
  t.raises(function() json.encode({ f = print }) end, "sg.json.encode")
  local cyclic = {}
  cyclic.self = cyclic
  t.raises(function() json.encode(cyclic) end, "contains itself")
  t.raises(function() json.decode(nil) end, "expected a string")
end)

t.test("decoding keeps [] and {}, null and absent, 8080 and 8080.0 apart", function()
  local v = json.decode('{"rules": [], "tags": {}, "nested": [[], {}], "n": null, "i": 8080, "f": 8080.0}')
  t.ok(json.is_array(v.rules) and not json.is_array(v.tags), "[] is marked, {} is not")
  t.ok(json.is_array(v.nested) and json.is_array(v.nested[1]) and not json.is_array(v.nested[2]))
  t.eq(json.encode({ rules = v.rules }), '{"rules":[]}')
  t.eq(json.encode({ tags = v.tags }), '{"tags":{}}')
  t.ok(v.n == json.null and v.absent == nil)
  t.eq({ math.type(v.i), math.type(v.f) }, { "integer", "float" })
  t.eq(json.decode("null"), json.null)
  local _, err = json.decode('{"a": [1,}')
  t.ok(err:find("invalid JSON", 1, true) and err:find("at character", 1, true), err)
end)

t.run()
