-- ARGV: prefix, new id, name, created ms, the quota's user ('' for none) and
-- max, the member count n, the n members (in the caller's order, so NotFound
-- names the first missing one, as SQLite does), then optionally the inviter,
-- the max pending, the invitation ms, and the invitees.
local id, name, now = ARGV[2], ARGV[3], ARGV[4]
local quota_user, quota_max = ARGV[5], ARGV[6]
local n = tonumber(ARGV[7])
local first = 8
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
local members, err = existing(first, first + n - 1)
if not members then
  return err
end
local inviter, max, at = ARGV[first + n], tonumber(ARGV[first + n + 1]), ARGV[first + n + 2]
local invitees, err2 = existing(first + n + 3, #ARGV)
if not invitees then
  return err2
end
local full = quota_full(quota_user, quota_max)
if full then
  return full
end
if not create_conversation(id, 'group', name, now, members) then
  return fail('backend', 'conversation id ' .. id .. ' is taken')
end
if quota_user ~= '' then
  redis.call('ZADD', k_user_own(quota_user), now, id)
end
for _, user in ipairs(invitees) do
  if redis.call('HEXISTS', k_members(id), user) == 0 then
    add_invitation(user, id, inviter, at, max)
  end
end
return ok(conversation(id))
