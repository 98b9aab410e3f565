-- ARGV: prefix, username. ok: {pw, balance, created} or absent.
return ok(hash(k_user(ARGV[2])))
