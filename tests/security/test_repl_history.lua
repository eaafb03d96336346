-- Issue 12 item 8: the REPL's history file keeps no line that carries a credential, in any
-- quoting; ordinary lines are kept.
local t = require "testlib"
local repl = require "sg.repl"

local secret_lines = {
  [[c = sg.connect("hostup", {api_key = "4242abcd"})]],
  [[h = {["X-API-Key"] = "4242abcd"}]],
  [[h = {['x-api-key']='4242abcd'}]],
  [[h["X-Api-Key"] = k]],
  [[h = {Authorization = "Bearer 4242abcd"}]],
  [[sg.http.request{url = u, headers = {authorization = 'Basic dXNlcjpwYXNz'}}]],
  [[x = "Authorization: Bearer 4242abcd"]],
  [[e = sg.connect("exoscale", {key = "EXO123", secret = "s3cr3t"})]],
  [[e = sg.connect("exoscale", {["key"]="EXO123"})]],
  [[g = sg.connect("genesis", {token = [==[4242abcd]==]})]],
  [[t.access_token = "abc"]],
  [[p = {password = "hunter2"}]],
  [[h = {["X-Auth-Token"] = "abc"}]],
  [[cred = {credentials = "abc"}]],
  [[os.setenv = nil; GCORE_API_KEY = "x"]],
}
local ordinary = {
  [[c = sg.connect("hostup")]],
  [[for k, v in pairs(t) do print(k, v) end]],
  [[print(sg.json.encode(c:list_firewall_rules(10000)))]],
  [[keys = {}]],
  [[monkey = 1]],
}

t.test("lines with credentials are not remembered", function()
  for _, line in ipairs(secret_lines) do t.eq(repl.should_remember(line), false, line) end
end)

t.test("ordinary lines are", function()
  for _, line in ipairs(ordinary) do t.eq(repl.should_remember(line), true, line) end
end)

t.test("a multi-line chunk is judged whole: a name and its value on different lines", function()
  t.eq(repl.should_remember('c = sg.connect("hostup", { api_key =\n"hostup-demo-key-0123" })'), false)
  t.eq(repl.should_remember('c = {api_key\n= "s3cr3t"}'), false)
  t.eq(repl.should_remember('h = {["X-API-Key"]\n  = k}'), false)
  t.eq(repl.should_remember("function double(x)\n  return x * 2\nend"), true)
end)

t.run()
