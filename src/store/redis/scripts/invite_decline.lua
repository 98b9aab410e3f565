-- ARGV: prefix, conversation id, invitee. ok: whether there was one.
return ok(drop_invitation(ARGV[3], ARGV[2]) == 1)
