-- ARGV: prefix, new id, name, created ms, the member count n, the n members
-- (in the caller's order, so NotFound names the first missing one, as SQLite
-- does), then optionally the inviter, the max pending, the invitation ms,
-- and the invitees.
local id, name, now = ARGV[2], ARGV[3], ARGV[4]
local n = tonumber(ARGV[5])
local function existing(from, to)
  local list = {}
  for i = from, to do
    if not user_exists(ARGV[i]) then
      return nil, fail('not_found', 'no user named ' .. ARGV[i])
    end
    list[#list + 1] = ARGV[i]
  end
  return list
end
local members, err = existing(6, 5 + n)
if not members then
  return err
end
local inviter, max, at = ARGV[6 + n], tonumber(ARGV[7 + n]), ARGV[8 + n]
local invitees, err2 = existing(9 + n, #ARGV)
if not invitees then
  return err2
end
if not create_conversation(id, 'group', name, now, members) then
  return fail('backend', 'conversation id ' .. id .. ' is taken')
end
for _, user in ipairs(invitees) do
  if redis.call('HEXISTS', k_members(id), user) == 0 then
    add_invitation(user, id, inviter, at, max)
  end
end
return ok(conversation(id))
