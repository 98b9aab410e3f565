-- ARGV: prefix, conversation id. ok: the conversation or absent.
return ok(conversation(ARGV[2]))
