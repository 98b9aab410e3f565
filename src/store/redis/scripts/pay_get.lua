-- ARGV: prefix, 'id' and a payment id, or 'key', a payer and a key.
-- ok: the payment or absent.
local id = ARGV[3]
if ARGV[2] == 'key' then
  id = redis.call('HGET', k_pay_keys(ARGV[3]), ARGV[4])
  if not id then
    return ok(nil)
  end
end
return ok(payment(id))
