-- ARGV: prefix, new id, name, created ms, members... (in the caller's order,
-- so NotFound names the first missing one, as SQLite does).
local id, name, now = ARGV[2], ARGV[3], ARGV[4]
local members = {}
for i = 5, #ARGV do
  if not user_exists(ARGV[i]) then
    return fail('not_found', 'no user named ' .. ARGV[i])
  end
  members[#members + 1] = ARGV[i]
end
if not create_conversation(id, 'group', name, now, members) then
  return fail('backend', 'conversation id ' .. id .. ' is taken')
end
return ok(conversation(id))
