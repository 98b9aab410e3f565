-- ARGV: prefix, inviter, candidates... ok: those candidates who share with
-- the inviter a conversation they started or accepted themselves (their
-- `own` set against the inviter's conversations; ZSCORE per id, so any
-- Redis version serves).
local inviter, out = ARGV[2], {}
for i = 3, #ARGV do
  local name = ARGV[i]
  for _, id in ipairs(redis.call('ZRANGE', k_user_own(name), 0, -1)) do
    if redis.call('ZSCORE', k_user_convs(inviter), id) then
      out[#out + 1] = name
      break
    end
  end
end
return ok(out)
