-- ARGV: prefix, payment id, step, '1' when a reason follows else '0',
-- reason, now ms. The step, its money and the log move together.
local id, to, now = ARGV[2], ARGV[3], ARGV[6]
local p = payment(id)
if not p then
  return fail('not_found', 'no such payment')
end
-- Repeating the current step (a resumed saga) moves nothing twice.
if p.step == to then
  return ok(p)
end
local allowed = {
  ['reserved>charging'] = true, ['reserved>refunding'] = true,
  ['charging>refunding'] = true, ['charging>credited'] = true,
  ['reserved>released'] = true, ['charging>released'] = true,
  ['refunding>released'] = true, ['credited>done'] = true,
}
if not allowed[p.step .. '>' .. to] then
  return fail('conflict', 'payment ' .. id .. ' cannot go from ' .. p.step .. ' to ' .. to)
end
-- credited pays the payee; released returns the payer's held funds.
if to == 'credited' and not add_balance(p.payee, p.amount) then
  return fail('funds', 'insufficient funds')
end
if to == 'released' and not add_balance(p.payer, p.amount) then
  return fail('funds', 'insufficient funds')
end
local status = 'pending'
if to == 'done' then status = 'completed' elseif to == 'released' then status = 'failed' end
local fields = {'step', to, 'status', status, 'updated', now}
if ARGV[4] == '1' then
  fields[#fields + 1] = 'reason'
  fields[#fields + 1] = ARGV[5]
end
redis.call('HSET', k_pay(id), unpack(fields))
if status ~= p.status then
  redis.call('ZREM', k_pay_index(p.status), id)
  redis.call('ZADD', k_pay_index(status), 0, id)
end
redis.call('HSETNX', k_pay_steps(id), to, now)
return ok(payment(id))
