-- ARGV: prefix, new id, payer, payee, amount, -amount, idempotency key,
-- trace id, now ms. ok: {payment, existed}.
local id, payer, payee, amount = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local key, trace, now = ARGV[7], ARGV[8], ARGV[9]
local existing = redis.call('HGET', k_pay_keys(payer), key)
if existing then
  local p = payment(existing)
  if not p then
    return fail('backend', 'payment ' .. existing .. ' of an idempotency key is missing')
  end
  if p.payee ~= payee or p.amount ~= amount then
    return fail('conflict', 'this idempotencyKey was used for another payment')
  end
  return ok({payment = p, existed = true})
end
if not user_exists(payee) then
  return fail('not_found', 'no user named ' .. payee)
end
if redis.call('EXISTS', k_pay(id)) == 1 then
  return fail('backend', 'payment id ' .. id .. ' is taken')
end
-- The hold: the first write, and nothing else happens when it is refused.
if not add_balance(payer, ARGV[6]) then
  return fail('funds', 'insufficient funds')
end
redis.call('HSET', k_pay(id), 'payer', payer, 'payee', payee, 'amount', amount,
  'key', key, 'status', 'pending', 'step', 'reserved', 'created', now,
  'updated', now, 'trace', trace)
redis.call('HSET', k_pay_keys(payer), key, id)
-- Score 0 everywhere: the indexes sort by id (UUID v7), newest last.
redis.call('ZADD', k_pay_index('all'), 0, id)
redis.call('ZADD', k_pay_index('pending'), 0, id)
redis.call('HSETNX', k_pay_steps(id), 'reserved', now)
return ok({payment = payment(id), existed = false})
