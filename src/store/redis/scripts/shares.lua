-- ARGV: prefix, a, b. ok: whether they share a conversation.
local n = redis.call('ZINTERCARD', 2, k_user_convs(ARGV[2]), k_user_convs(ARGV[3]), 'LIMIT', 1)
return ok(n > 0)
