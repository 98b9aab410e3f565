-- ARGV: prefix, conversation id, invitee. ok: the invitation or absent.
return ok(invitation(ARGV[3], ARGV[2]))
