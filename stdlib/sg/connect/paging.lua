-- sg.connect.paging: a list endpoint called without a page of its own asked for returns every
-- page (the provider's paging style: page numbers or offsets), refusing a server that repeats
-- items or never stops. `p` is a connection's private record (sg.connect).
local json = require "sg.json"
local errors = require "sg.errors"
local request = require "sg.connect.request"

local M = {}

local function has_any(q, a, b)
  return type(q) == "table" and (q[a] ~= nil or (b and q[b] ~= nil))
end

---Whether a call of ep fetches every page: a list endpoint of a provider that pages, called
---without a query that asks for one page itself (its limit, page or offset parameter).
---@param p table
---@param ep table the endpoint called
---@param query table|nil the call's query table
---@return any truthy when it does
function M.automatic(p, ep, query)
  local pg = p.def.paging
  return ep.items and pg.style and not has_any(query, pg.limit, pg.style == "offset" and pg.offset or pg.page)
end

-- A listing longer than this is a server that never stops (or ignores the page parameter and
-- sends page 1 again and again): every listing sgrun makes is of groups or their rules.
local MAX_LISTED = 100000

---Auto-paging: every page of a list, concatenated under the endpoint's items key; the rest of
---the first page's envelope is kept (count / total_count stay what the server said).
---@async
---@param conn sg.Connection
---@param p table
---@param ep table the endpoint called
---@param url_base string its URL, without a query
---@param query table|nil the call's query table
---@param path_args integer how many of args the path took
---@param args table the call's arguments
---@return table
function M.all_pages(conn, p, ep, url_base, query, path_args, args)
  local pg = p.def.paging
  local size = p.page_size or tonumber(pg.size) or 100
  local items, first, n = json.array(), nil, 0
  local page = 1
  local seen = {} -- item ids: a server that repeats a page (or ignores the page asked for) repeats them
  while true do
    local q = {}
    for k, v in pairs(query or {}) do q[k] = v end
    q[pg.limit] = size
    if pg.style == "offset" then q[pg.offset] = n else q[pg.page] = page end
    local resp = request.send(conn, p, ep, url_base .. "?" .. request.encode_query(q), nil, path_args, args)
    first = first or resp
    local got = type(resp) == "table" and resp[ep.items]
    -- an object where the list should be says nothing of the items: not "none"
    if type(got) ~= "table" or not json.is_array(got) then
      error(errors.new({ provider = p.def.name, op = ep.name, code = "bad_response",
        message = "list response has no '" .. ep.items .. "' list" }, p.secrets), 0)
    end
    for _, item in ipairs(got) do
      local id = type(item) == "table" and item.id
      if type(id) == "string" or type(id) == "number" then
        if seen[id] then
          error(errors.new({ provider = p.def.name, op = ep.name, code = "bad_response",
            message = string.format("the listing gave item %s twice (again on page %d): the server " ..
              "repeats pages or ignores the page asked for; check the base URL", tostring(id), page) },
            p.secrets), 0)
        end
        seen[id] = true
      end
      items[#items + 1] = item
    end
    n = n + #got
    local total = tonumber(errors.dig(resp, pg.total))
    if #got == 0 or #got < size or (total and n >= total) then break end
    if n >= MAX_LISTED then
      error(errors.new({ provider = p.def.name, op = ep.name, code = "bad_response",
        message = string.format("the listing went on past %d items (%d pages) without ending: the " ..
          "server keeps sending full pages; check the base URL, or ask for one page with an explicit " ..
          "query", MAX_LISTED, page) }, p.secrets), 0)
    end
    page = page + 1
  end
  first[ep.items] = items
  return first
end

return M
