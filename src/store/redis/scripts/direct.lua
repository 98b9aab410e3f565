-- ARGV: prefix, lo, hi (sorted usernames), id if new, created ms, the
-- quota's user (the one starting it: lo or hi; '' for none) and max.
-- One script: two nodes asking for the same pair get the same conversation.
local lo, hi, id = ARGV[2], ARGV[3], ARGV[4]
local pair = k_direct(lo, hi)
local existing = redis.call('GET', pair)
if existing then
  local c = conversation(existing)
  if not c then
    return fail('backend', 'direct conversation ' .. existing .. ' vanished')
  end
  return ok(c)
end
for _, name in ipairs({lo, hi}) do
  if not user_exists(name) then
    return fail('not_found', 'no user named ' .. name)
  end
end
local full = quota_full(ARGV[6], ARGV[7])
if full then
  return full
end
if not create_conversation(id, 'direct', lo .. ',' .. hi, ARGV[5], {lo, hi}) then
  return fail('backend', 'conversation id ' .. id .. ' is taken')
end
if ARGV[6] ~= '' then
  redis.call('ZADD', k_user_own(ARGV[6]), ARGV[5], id)
end
redis.call('SET', pair, id)
return ok(conversation(id))
