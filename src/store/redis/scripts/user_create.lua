-- ARGV: prefix, username, password hash, balance, created ms.
local name = ARGV[2]
if user_exists(name) then
  return fail('conflict', 'username ' .. name .. ' is taken')
end
redis.call('HSET', k_user(name), 'pw', ARGV[3], 'balance', ARGV[4], 'created', ARGV[5])
return ok(true)
