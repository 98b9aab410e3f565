-- ARGV: prefix, username. ok: how many conversations they started or accepted.
return ok(redis.call('ZCARD', k_user_own(ARGV[2])))
