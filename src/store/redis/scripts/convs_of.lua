-- ARGV: prefix, username. ok: [{conv, read, reads, updated}] by (created, id);
-- reads: every member's marker, flat (member, seq, member, seq, ...).
local name = ARGV[2]
local out = {}
for _, id in ipairs(redis.call('ZRANGE', k_user_convs(name), 0, -1)) do
  local c = conversation(id)
  local read = redis.call('HGET', k_members(id), name)
  if c and read then
    out[#out + 1] = {conv = c, read = read, reads = redis.call('HGETALL', k_members(id)),
                     updated = updated_at(id)}
  end
end
return ok(out)
