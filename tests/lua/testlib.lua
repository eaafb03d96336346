-- A small test harness for Lua tests run by sgrun: each file registers cases and calls run(),
-- which prints one line per failure and the closing "N passed, N failed" line.
local M = {}

local cases = {}

---Registers a test case. Cases run in order, each as its own task, so blocking calls work.
---@param name string
---@param fn fun()
function M.test(name, fn)
  cases[#cases + 1] = { name = name, fn = fn }
end

local function show(v)
  if type(v) == "string" then return string.format("%q", v) end
  return tostring(v)
end

local function deep_equal(a, b, seen)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  seen = seen or {}
  if seen[a] == b then return true end
  seen[a] = b
  for k, v in pairs(a) do
    if not deep_equal(v, b[k], seen) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end
M.deep_equal = deep_equal

---Fails unless a and b are equal (tables compared deeply).
function M.eq(actual, expected, what)
  if not deep_equal(actual, expected) then
    local ok, json = pcall(function() return require("cjson").encode end)
    local function fmt(v)
      if type(v) == "table" and ok then
        local good, s = pcall(json, v)
        if good then return s end
      end
      return show(v)
    end
    error(string.format("%sexpected %s, got %s", what and (what .. ": ") or "", fmt(expected),
      fmt(actual)), 2)
  end
end

---Fails unless v is truthy.
function M.ok(v, what)
  if not v then error((what or "expected a true value") .. " (got " .. show(v) .. ")", 2) end
  return v
end

---Fails unless fn raises an error whose text contains the plain string `needle`.
---@return any err the error raised
function M.raises(fn, needle)
  local ok, err = pcall(fn)
  if ok then error("expected an error" .. (needle and (" mentioning " .. show(needle)) or ""), 2) end
  local text = tostring(err)
  if needle and not text:find(needle, 1, true) then
    error("error " .. show(text) .. " does not mention " .. show(needle), 2)
  end
  return err
end

---Runs every registered case and exits 0 only when all passed.
function M.run()
  local passed, failed = 0, 0
  for _, case in ipairs(cases) do
    local ok, err = xpcall(case.fn, debug.traceback)
    if ok then
      passed = passed + 1
    else
      failed = failed + 1
      io.stderr:write("FAIL ", case.name, ": ", tostring(err), "\n")
    end
  end
  print(string.format("%d passed, %d failed", passed, failed))
  os.exit(failed == 0 and 0 or 1)
end

return M
