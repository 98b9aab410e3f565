-- ARGV: prefix, conversation id, username, max members, the member_joined
-- cluster event (published with the change, so every node applies it in
-- order with the messages around it), the quota's user ('' for none: the
-- membership is not the user's own) and max.
local id, name = ARGV[2], ARGV[3]
local c, err = group(id, 'members of a direct conversation cannot change')
if not c then
  return err
end
if redis.call('HEXISTS', k_members(id), name) == 1 then
  return fail('conflict', name .. ' is already a member')
end
if redis.call('HLEN', k_members(id)) >= tonumber(ARGV[4]) then
  return fail('bad_request', 'a group has at most ' .. ARGV[4] .. ' members')
end
if not user_exists(name) then
  return fail('not_found', 'no user named ' .. name)
end
-- Joining of one's own accord is accepting: it needs the invitation.
if ARGV[6] == name and not redis.call('HGET', k_inviters(name), id) then
  return fail('not_found', 'no invitation to this conversation')
end
local full = quota_full(ARGV[6], ARGV[7])
if full then
  return full
end
redis.call('HSET', k_members(id), name, '0')
redis.call('ZADD', k_user_convs(name), c.created, id)
-- Accepting an invitation is joining: it is used up with the join.
drop_invitation(name, id)
if ARGV[6] == name then
  redis.call('ZADD', k_user_own(name), c.created, id)
end
redis.call('PUBLISH', K_EVENTS, ARGV[5])
return ok(conversation(id))
