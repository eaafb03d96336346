-- Lets blocking sgrun calls work inside the user's own coroutines. A blocked task yields the
-- scheduler's sentinel from deep inside C; when a coroutine that the user resumed yields it, these
-- wrappers pass it outwards (so the task really waits) and, once the scheduler resumes the task,
-- resume the inner coroutine so the blocked call can finish. Installed once by the scheduler.

---@param sentinel lightuserdata the value a blocked task yields
return function(sentinel)
  local create, raw_resume, yield = coroutine.create, coroutine.resume, coroutine.yield
  local status, close = coroutine.status, coroutine.close
  local pack, unpack = table.pack, table.unpack

  local function pass_through(co, results)
    while results[1] and results.n == 2 and results[2] == sentinel and status(co) == "suspended" do
      results = pack(raw_resume(co, yield(sentinel)))
    end
    return results
  end

  -- luacheck: push ignore 122 (replacing the coroutine functions is the point of this module)
  function coroutine.resume(co, ...)
    local results = pass_through(co, pack(raw_resume(co, ...)))
    return unpack(results, 1, results.n)
  end

  function coroutine.wrap(fn)
    local co = create(fn)
    return function(...)
      local results = pass_through(co, pack(raw_resume(co, ...)))
      if results[1] then return unpack(results, 2, results.n) end
      close(co)
      local err = results[2]
      -- like the built-in wrap: string errors get the caller's position
      error(err, type(err) == "string" and 2 or 0)
    end
  end
  -- luacheck: pop
end
