-- ARGV: prefix, username, limit, before (ms, '' for none), before id ('' for
-- none). ok: {items = [{conv, read, reads, updated}], more} newest activity
-- first, by (updated, id) descending, as SQLite orders them (ids compared
-- byte by byte): the page after the cursor, at most `limit`. Every
-- conversation of the user is looked at (an HMGET each) to order them; only
-- the page's are read in full.
local name, limit = ARGV[2], tonumber(ARGV[3])
local before, tie = tonumber(ARGV[4]), ARGV[5]
local rows = {}
for _, id in ipairs(redis.call('ZRANGE', k_user_convs(name), 0, -1)) do
  -- A membership list entry without its membership (or conversation) is
  -- not listed, and does not count toward `more`.
  if redis.call('HEXISTS', k_members(id), name) == 1 then
    local at = tonumber(updated_at(id))
    if not before or at < before or (at == before and tie ~= '' and bytes_before(id, tie)) then
      rows[#rows + 1] = {id = id, at = at}
    end
  end
end
table.sort(rows, function(a, b)
  if a.at ~= b.at then return a.at > b.at end
  return bytes_before(b.id, a.id)
end)
local out = {}
for i = 1, math.min(limit, #rows) do
  local id = rows[i].id
  local c = conversation(id)
  if c then
    out[#out + 1] = {conv = c, read = redis.call('HGET', k_members(id), name),
                     reads = redis.call('HGETALL', k_members(id)),
                     updated = string.format('%d', rows[i].at)}
  end
end
return ok({items = out, more = #rows > limit})
