-- ARGV: prefix, conversation id, username, seq. The marker only moves forward.
local members = k_members(ARGV[2])
local current = redis.call('HGET', members, ARGV[3])
if not current then
  return fail('not_member', 'not a member of this conversation')
end
if greater(ARGV[4], current) then
  redis.call('HSET', members, ARGV[3], ARGV[4])
end
return ok(true)
