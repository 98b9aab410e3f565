-- ARGV: prefix, username, '1' to grant admin rights or '0' to revoke them.
local name = ARGV[2]
if not user_exists(name) then
  return fail('not_found', 'no user named ' .. name)
end
if ARGV[3] == '1' then
  redis.call('HSET', k_user(name), 'admin', '1')
else
  redis.call('HDEL', k_user(name), 'admin')
end
return ok(true)
