-- ARGV: prefix, invitee. ok: their invitations, newest first.
local user, out = ARGV[2], {}
for _, id in ipairs(redis.call('ZREVRANGE', k_invites(user), 0, -1)) do
  local inv = invitation(user, id)
  if inv then
    out[#out + 1] = inv
  end
end
return ok(out)
