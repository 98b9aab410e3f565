-- ARGV: prefix, conversation id, username, the member_left cluster event
-- (published with the change: no node delivers a later message to the leaver).
local id, name = ARGV[2], ARGV[3]
local c, err = group(id, 'a direct conversation cannot be left')
if not c then
  return err
end
if redis.call('HDEL', k_members(id), name) == 0 then
  return fail('not_member', 'not a member of this conversation')
end
redis.call('ZREM', k_user_convs(name), id)
redis.call('ZREM', k_user_own(name), id)
redis.call('PUBLISH', K_EVENTS, ARGV[4])
return ok(conversation(id))
