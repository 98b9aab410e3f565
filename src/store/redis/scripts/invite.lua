-- ARGV: prefix, conversation id, invitee, inviter, now ms, max pending.
-- ok: {inv, new}: the new invitation, or the pending one (new = false).
local id, user, from = ARGV[2], ARGV[3], ARGV[4]
local _, err = group(id, 'members of a direct conversation cannot change')
if err then
  return err
end
if redis.call('HEXISTS', k_members(id), user) == 1 then
  return fail('conflict', user .. ' is already a member')
end
if not user_exists(user) then
  return fail('not_found', 'no user named ' .. user)
end
local pending = invitation(user, id)
if pending then
  return ok({inv = pending, new = false})
end
add_invitation(user, id, from, ARGV[5], tonumber(ARGV[6]))
return ok({inv = invitation(user, id), new = true})
