-- ARGV: prefix, username, amount. ok: the new balance (a string: exact).
local name = ARGV[2]
if not user_exists(name) then
  return fail('not_found', 'no user named ' .. name)
end
if not add_balance(name, ARGV[3]) then
  return fail('funds', 'insufficient funds')
end
return ok(redis.call('HGET', k_user(name), 'balance'))
