-- ARGV: prefix, username. ok: [{conv, read}] by (created, id).
local name = ARGV[2]
local out = {}
for _, id in ipairs(redis.call('ZRANGE', k_user_convs(name), 0, -1)) do
  local c = conversation(id)
  local read = redis.call('HGET', k_members(id), name)
  if c and read then
    out[#out + 1] = {conv = c, read = read}
  end
end
return ok(out)
