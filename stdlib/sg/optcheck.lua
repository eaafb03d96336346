-- sg.optcheck: refuses option names a function does not know. Without it a misspelt option is
-- dropped without a word: {modes = "additive"} would roll out authoritatively and remove rules,
-- {regionid = 99} would connect to the default region.
local M = {}

-- Edit distance (insertions, deletions, substitutions) between two short names.
local function distance(a, b)
  local previous = {}
  for j = 0, #b do previous[j] = j end
  for i = 1, #a do
    local row = { [0] = i }
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      row[j] = math.min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + cost)
    end
    previous = row
  end
  return previous[#b]
end

---The known name a misspelt one most likely meant: a case or underscore slip, or at most two
---edits away (a third of the name, for short ones); nil when none is that close.
---@param name string
---@param known string[]
---@return string?
local function nearest(name, known)
  local folded = name:lower():gsub("[_%-]", "")
  local best, best_d
  for _, k in ipairs(known) do
    local d = k:lower():gsub("[_%-]", "") == folded and 0 or distance(name, k)
    if d <= math.min(2, math.max(1, #k // 3)) and (not best_d or d < best_d) then best, best_d = k, d end
  end
  return best
end

M.nearest = nearest

---The first key of `t` that is not in `known` (nil when there is none), the known name it most
---likely meant (nil when none is close), and the known names sorted.
---@param t table
---@param known string[]
---@return any unknown, string? guess, string[] sorted
function M.first_unknown(t, known)
  local set = {}
  for _, k in ipairs(known) do set[k] = true end
  local sorted = table.move(known, 1, #known, 1, {})
  table.sort(sorted)
  for k in pairs(t) do
    if not set[k] then return k, type(k) == "string" and nearest(k, sorted) or nil, sorted end
  end
  return nil, nil, sorted
end

---Raises, naming `where`, when `opts` has a key that is not in `known`.
---@param where string the function, as the caller knows it ("sg.rollout")
---@param opts table|nil
---@param known string[] every option name the function reads
---@param level integer? the error level, as error() takes it, seen from the caller of check; 0
---for no position (options read from a file)
function M.check(where, opts, known, level)
  if opts == nil then return end
  local k, guess, sorted = M.first_unknown(opts, known)
  if k == nil then return end
  error(string.format("%s: unknown option %s%s (known: %s)", where,
    type(k) == "string" and ("'" .. k .. "'") or tostring(k),
    guess and ("; did you mean '" .. guess .. "'?") or "", table.concat(sorted, ", ")), level == 0 and 0 or (level or 1) + 1)
end

-- A value as a message shows it: strings quoted, others with their type ("the number 0").
local function shown(v)
  if type(v) == "string" then return string.format("the string %q", v) end
  return string.format("the %s %s", type(v), tostring(v))
end

---Raises, naming `where`, when an option of `opts` has a value of the wrong kind: a string "false"
---or a 0 is true in Lua, so {atomic = "false"} would be an atomic roll-out nobody asked for.
---@param where string the function, as the caller knows it ("sg.rollout")
---@param opts table|nil
---@param kinds table<string, "boolean"|"string"|"function"|string[]> per option, its kind, or the
---strings it may be
---@param level integer? the error level, as error() takes it, seen from the caller of check_values
function M.check_values(where, opts, kinds, level)
  if opts == nil then return end
  level = (level or 1) + 1
  for name, kind in pairs(kinds) do
    local v = opts[name]
    if v ~= nil then
      if type(kind) == "table" then
        local ok = false
        for _, allowed in ipairs(kind) do ok = ok or v == allowed end
        if not ok then
          local guess = type(v) == "string" and nearest(v, kind)
          error(string.format("%s: %s must be \"%s\", not %s%s", where, name, table.concat(kind, "\" or \""),
            type(v) == "string" and string.format("%q", v) or shown(v),
            guess and string.format("; did you mean \"%s\"?", guess) or ""), level)
        end
      elseif type(v) ~= kind then
        error(string.format("%s: %s must be %s, not %s", where, name,
          kind == "boolean" and "true or false" or "a " .. kind, shown(v)), level)
      end
    end
  end
end

return M
