-- ARGV: prefix, username. ok: everyone sharing a conversation, once each.
local me = ARGV[2]
local seen, out = {}, {}
for _, id in ipairs(redis.call('ZRANGE', k_user_convs(me), 0, -1)) do
  for _, m in ipairs(redis.call('HKEYS', k_members(id))) do
    if m ~= me and not seen[m] then
      seen[m] = true
      out[#out + 1] = m
    end
  end
end
return ok(out)
