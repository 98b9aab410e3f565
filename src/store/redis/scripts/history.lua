-- ARGV: prefix, conversation id, username, first entry id, count.
-- The membership check and the page come from one consistent view.
local id = ARGV[2]
local c = conversation(id)
if not c then
  return fail('not_found', 'no such conversation')
end
if redis.call('HEXISTS', k_members(id), ARGV[3]) == 0 then
  return fail('not_member', 'not a member of this conversation')
end
local msgs = {}
for i, e in ipairs(redis.call('XRANGE', k_log(id), ARGV[4], '+', 'COUNT', ARGV[5])) do
  msgs[i] = message(e)
end
return ok({conv = c, msgs = msgs})
