-- sg.errors.scrub: any run of 8 or more consecutive characters of a secret is redacted wherever it
-- stands in a text (a server echoes a token cut at either end, or a piece of its middle), raw,
-- in another letter case, JSON-escaped or percent-encoded; each such run becomes one [REDACTED].
-- A secret shorter than 8 characters is redacted only whole.
local t = require "testlib"
local errors = require "sg.errors"

local TOKEN = "ZZtopsecretgenesistoken98765"
local scrub = function(text, ...) return errors.scrub(text, { ... }) end

t.test("the whole secret", function()
  t.eq(scrub("bad token " .. TOKEN .. "!", TOKEN), "bad token [REDACTED]!")
end)

t.test("a prefix, a suffix and a piece of the middle", function()
  t.eq(scrub("got ZZtopsecr.", TOKEN), "got [REDACTED].")
  t.eq(scrub("bad token ..." .. TOKEN:sub(2) .. " ...", TOKEN), "bad token ...[REDACTED] ...")
  t.eq(scrub("end: " .. TOKEN:sub(-8), TOKEN), "end: [REDACTED]")
  t.eq(scrub("[secretgenesis]", TOKEN), "[[REDACTED]]")
end)

t.test("fewer than 8 characters of a long secret are left", function()
  t.eq(scrub("topsecr and 98765 and ZZtopse", TOKEN), "topsecr and 98765 and ZZtopse")
end)

t.test("every occurrence, each run once", function()
  t.eq(scrub("a secretge b tokentoken98765 c " .. TOKEN, TOKEN), "a [REDACTED] b token[REDACTED] c [REDACTED]")
end)

t.test("two secrets, and pieces of both next to each other", function()
  local other = "otherKEY-0123456789"
  t.eq(scrub("x " .. TOKEN:sub(3, 12) .. " y " .. other:sub(5) .. " z", TOKEN, other),
    "x [REDACTED] y [REDACTED] z")
  t.eq(scrub("<" .. TOKEN:sub(-9) .. other:sub(1, 9) .. ">", TOKEN, other), "<[REDACTED]>")
end)

t.test("overlapping pieces make one run", function()
  -- the end of one secret is the start of the other: their pieces overlap in the text
  t.eq(scrub("(alphaBRAVOcharlieDELTAecho)", "alphaBRAVOcharlie", "BRAVOcharlieDELTAecho"), "([REDACTED])")
  -- every 8 characters are a piece, the whole is longer than the secret
  local repeating = "abcdefghabcdefgh1"
  t.eq(scrub("=abcdefghabcdefghabcdefgh=", repeating), "=[REDACTED]=")
end)

t.test("other letter cases, JSON escapes and percent-encoding", function()
  t.eq(scrub("bad TOPSECRETGENESIS", TOKEN), "bad [REDACTED]")
  t.eq(scrub("bad zztopSecretGen.", TOKEN), "bad [REDACTED].")
  local odd = "sgr/TOKEN\"x\\+k=9f3b1e"
  t.eq(scrub('{"m":"got OKEN\\"x\\\\+k=9f"}', odd), '{"m":"got [REDACTED]"}')
  t.eq(scrub("a=sgr\\/TOKE&", odd), "a=[REDACTED]&")
  t.eq(scrub("?k=sgr%2FTOKEN%22x&", odd), "?k=[REDACTED]&")
  t.eq(scrub("?k=sgr%2ftoken%22x&", odd), "?k=[REDACTED]&")
end)

t.test("a secret under 8 characters is redacted whole only, as before", function()
  t.eq(scrub("key abc123x and ABC123X", "abc123x"), "key [REDACTED] and [REDACTED]")
  t.eq(scrub("key abc123 and bc123x", "abc123x"), "key abc123 and bc123x")
  t.eq(scrub("a/b!", "a/b!"), "[REDACTED]")
  t.eq(scrub("abc", "abc"), "abc")
end)

t.test("text without a secret, and what is not text, come back as they were", function()
  t.eq(scrub("nothing to see here, not even topsecr", TOKEN), "nothing to see here, not even topsecr")
  t.eq(errors.scrub("x " .. TOKEN, nil), "x " .. TOKEN)
  t.eq(errors.scrub(nil, { TOKEN }), nil)
  t.eq(errors.scrub(42, { TOKEN }), 42)
  t.eq(scrub("", TOKEN), "")
end)

t.test("an error object keeps the provider and operation names, which are sgrun's own", function()
  local secret = "demo-exoscale-secret-0000"
  local e = errors.new({ provider = "exoscale", op = "list_security_groups", code = "exoscale-secret",
    message = "denied: exoscale-secret-0" }, { secret })
  t.eq({ e.provider, e.op, e.code, e.message }, { "exoscale", "list_security_groups", "[REDACTED]", "denied: [REDACTED]" })
end)

t.test("a megabyte of text with echoes scattered in it", function()
  local parts = {}
  for i = 1, 20000 do
    parts[i] = i % 1000 == 0 and ("{\"m\":\"" .. TOKEN:sub(i % 7 + 1, i % 7 + 12) .. "\"}")
        or '{"id":"cb420d5d-efd0-402b-be1c","name":"web token"}'
  end
  local out = scrub(table.concat(parts, ","), TOKEN)
  local _, redacted = out:gsub("%[REDACTED%]", "")
  t.eq(redacted, 20)
  for i = 1, #TOKEN - 7 do t.ok(not out:lower():find(TOKEN:sub(i, i + 7):lower(), 1, true), TOKEN:sub(i, i + 7)) end
end)

t.run()
