-- Tasks: spawn, wait, all, timeout, cancellation, and blocking calls inside pcall and the user's
-- own coroutines.
local t = require "testlib"
local sg = require "sg"

t.test("spawned tasks run concurrently and return their results", function()
  -- the first task sleeps longer: only if both run at once does the second finish first
  local finished = {}
  local a = sg.spawn(function(x) sg.sleep(0.2) finished[#finished + 1] = "a" return x * 2, "a" end, 21)
  local b = sg.spawn(function() sg.sleep(0.05) finished[#finished + 1] = "b" return "b" end)
  t.eq({ a:wait() }, { true, 42, "a" })
  t.eq({ sg.wait(b) }, { true, "b" })
  t.eq(finished, { "b", "a" })
  t.eq(a:status(), "done")
end)

t.test("sleeps wake in deadline order", function()
  local order = {}
  local tasks = {}
  for _, d in ipairs({ 0.06, 0.02, 0.04 }) do
    tasks[#tasks + 1] = sg.spawn(function() sg.sleep(d) order[#order + 1] = d end)
  end
  for _, task in ipairs(tasks) do task:wait() end
  t.eq(order, { 0.02, 0.04, 0.06 })
end)

t.test("sg.all returns each first result in order", function()
  local a, b, c = sg.all(function() sg.sleep(0.03) return 1 end, function() return 2 end,
    function() sg.sleep(0.01) return 3 end)
  t.eq({ a, b, c }, { 1, 2, 3 })
end)

t.test("sg.all with a list and a limit never exceeds the limit", function()
  local running, peak = 0, 0
  local fns = {}
  for i = 1, 12 do
    fns[i] = function()
      running = running + 1
      peak = math.max(peak, running)
      sg.sleep(0.01)
      running = running - 1
      return i
    end
  end
  local results = sg.all(fns, { limit = 3 })
  t.eq(#results, 12)
  t.eq(results[12], 12)
  t.eq(peak, 3)
end)

t.test("an error in an sg.all child reaches the caller and cancels the others", function()
  local finished = false
  local err = t.raises(function()
    sg.all(function() sg.sleep(0.01) error("child failed") end,
      function() sg.sleep(0.5) finished = true end)
  end, "child failed")
  t.ok(tostring(err):find("stack traceback", 1, true), "the child's traceback is kept")
  sg.sleep(0.6)
  t.eq(finished, false)
end)

t.test("error objects from children keep their identity", function()
  local obj = setmetatable({ code = "x" }, { __tostring = function() return "custom" end })
  local ok, err = pcall(sg.all, function() error(obj) end)
  t.eq(ok, false)
  t.ok(rawequal(err, obj), "the same table is raised")
end)

t.test("wait on a failed task gives false, the error and a traceback", function()
  local task = sg.spawn(function() sg.sleep(0) error("bad thing", 0) end)
  local ok, err, tb = task:wait()
  t.eq(ok, false)
  t.eq(err, "bad thing")
  t.ok(tb:find("stack traceback", 1, true), tb)
end)

t.test("wait with a timeout returns nil, 'timeout' and leaves the task running", function()
  local task = sg.spawn(function() sg.sleep(0.2) return "late" end)
  t.eq({ task:wait(0.01) }, { nil, "timeout" })
  t.eq(task:status(), "waiting")
  t.eq({ task:wait() }, { true, "late" })
end)

t.test("sg.timeout cancels the slow function", function()
  local reached = false
  local v, msg, code = sg.timeout(0.05, function() sg.sleep(0.3) reached = true end)
  t.eq(v, nil)
  t.eq(code, "timeout")
  t.ok(msg:find("timed out"), msg)
  sg.sleep(0.35)
  t.eq(reached, false)
  t.eq({ sg.timeout(1, function(x) return x, 2 end, 1) }, { 1, 2 })
  t.raises(function() sg.timeout(1, function() error("inner") end) end, "inner")
end)

t.test("cancelling a task cancels its children", function()
  local child_done = false
  local parent = sg.spawn(function()
    local child = sg.spawn(function() sg.sleep(0.1) child_done = true end)
    child:wait()
  end)
  sg.sleep(0.01)
  parent:cancel()
  t.eq(parent:status(), "cancelled")
  t.eq({ parent:wait() }, { false, "cancelled" })
  sg.sleep(0.15)
  t.eq(child_done, false)
end)

t.test("a task cannot cancel or wait for itself", function()
  local me
  me = sg.spawn(function()
    t.raises(function() me:cancel() end, "cannot cancel itself")
    t.raises(function() me:wait() end, "cannot wait for itself")
    return "ok"
  end)
  t.eq({ me:wait() }, { true, "ok" })
end)

t.test("blocking calls work inside pcall and coroutine.wrap", function()
  local ok, v = pcall(function() sg.sleep(0.01) return "inside pcall" end)
  t.eq({ ok, v }, { true, "inside pcall" })
  local gen = coroutine.wrap(function()
    for i = 1, 3 do
      sg.sleep(0.005)
      coroutine.yield(i)
    end
  end)
  t.eq({ gen(), gen(), gen() }, { 1, 2, 3 })
  local co = coroutine.create(function(a)
    sg.sleep(0.005)
    local b = coroutine.yield(a + 1)
    sg.sleep(0.005)
    return b * 2
  end)
  t.eq({ coroutine.resume(co, 1) }, { true, 2 })
  t.eq({ coroutine.resume(co, 5) }, { true, 10 })
  t.eq(coroutine.status(co), "dead")
end)

t.test("errors inside wrapped coroutines carry a position", function()
  local f = coroutine.wrap(function() sg.sleep(0) error("inner boom") end)
  t.raises(f, "inner boom")
end)

t.test("waiting where no task can wait explains why", function()
  t.raises(function() table.sort({ 2, 1 }, function(a, b) sg.sleep(0) return a < b end) end,
    "must run inside a task")
end)

t.test("a task's context goes to the tasks it spawns; guarded runs under its guard", function()
  local task = require "sg.task"
  local calls = {}
  local guard = {
    enter = function(kind, what)
      if what == "refused" then error("refused: " .. kind, 0) end
      calls[#calls + 1] = "enter " .. kind
    end,
    leave = function(kind, ok) calls[#calls + 1] = "leave " .. kind .. " " .. tostring(ok) end,
  }
  local outer = sg.spawn(function()
    task.context({ guard = guard })
    local inner = sg.spawn(function()
      local a, b = task.guarded("write", "w", function(x) sg.sleep(0) return x, "b" end, "a")
      t.raises(function() task.guarded("wait", "x", function() error("boom", 0) end) end, "boom")
      t.raises(function() task.guarded("write", "refused", function() calls[#calls + 1] = "ran" end) end,
        "refused: write")
      return a .. b
    end)
    return select(2, inner:wait())
  end)
  t.eq({ outer:wait() }, { true, "ab" })
  t.eq(calls, { "enter write", "leave write true", "enter wait", "leave wait false" })
  t.eq(task.context(), nil, "the main task's context is untouched")
  t.eq(task.guarded("write", "w", function() return 1 end), 1, "no guard: just the call")
end)

t.run()
