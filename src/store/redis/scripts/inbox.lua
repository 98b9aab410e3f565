-- ARGV: prefix, username, limit, before (ms, '' for none), before id ('' for
-- none). ok: {items = [{conv, read, reads, updated}], more} newest activity
-- first, by (updated, id) descending, as SQLite orders them: the page after
-- the cursor, at most `limit`. Every conversation of the user is looked at
-- (one HMGET each) to order them; only the page's are read in full.
local name, limit = ARGV[2], tonumber(ARGV[3])
local before, tie = tonumber(ARGV[4]), ARGV[5]
local rows = {}
for _, id in ipairs(redis.call('ZRANGE', k_user_convs(name), 0, -1)) do
  local at = tonumber(updated_at(id))
  if not before or at < before or (at == before and tie ~= '' and id < tie) then
    rows[#rows + 1] = {id = id, at = at}
  end
end
table.sort(rows, function(a, b)
  if a.at ~= b.at then return a.at > b.at end
  return a.id > b.id
end)
local out = {}
for i = 1, math.min(limit, #rows) do
  local id = rows[i].id
  local c = conversation(id)
  local read = redis.call('HGET', k_members(id), name)
  if c and read then
    out[#out + 1] = {conv = c, read = read, reads = redis.call('HGETALL', k_members(id)),
                     updated = string.format('%d', rows[i].at)}
  end
end
return ok({items = out, more = #rows > limit})
