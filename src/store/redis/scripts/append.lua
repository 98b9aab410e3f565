-- ARGV: prefix, node, conversation id, message id, sender, clientMsgId,
-- kind, text, sent at ms, trace id, "1" when the node records the trace.
-- Dedup, next seq, stream entry, dedup record, the sender's read marker and
-- the cluster event in one atomic step, so the channel carries messages in
-- seq order.
local node, conv, msg_id, sender, cmid = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local kind, text, at, trace = ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local rec = ARGV[11] == '1' 
local ck = k_conv(conv)
if redis.call('EXISTS', ck) == 0 then
  return fail('not_found', 'no such conversation')
end
-- The sender cannot contain NUL, so the first one splits the pair.
local dedup = sender .. '\0' .. cmid
local seen = redis.call('HGET', k_dedup(conv), dedup)
if seen then
  -- A retry of a stored message: the original, nothing published.
  local found = redis.call('XRANGE', k_log(conv), seen .. '-0', seen .. '-0')
  if #found == 0 then
    return fail('backend', 'message ' .. seen .. ' of a seen clientMsgId is missing')
  end
  return ok({dup = true, msg = message(found[1])})
end
if redis.call('HEXISTS', k_members(conv), sender) == 0 then
  return fail('not_member', 'not a member of this conversation')
end
-- XADD (the command that can fail on a damaged stream) before the counter
-- moves, so a failure leaves no gap. Exact while seq < 2^53.
local seq = string.format('%d', tonumber(redis.call('HGET', ck, 'seq')) + 1)
redis.call('XADD', k_log(conv), seq .. '-0', 'id', msg_id, 'user', sender,
  'cmid', cmid, 'kind', kind, 'text', text, 'at', at, 'trace', trace)
-- `updated`: the last activity the inbox orders by (SQLite reads it off the
-- newest message instead).
redis.call('HSET', ck, 'seq', seq, 'updated', at)
redis.call('HSET', k_dedup(conv), dedup, seq)
-- One's own message is never unread: the sender's marker moves up to it
-- (never down; the HEXISTS above found the field).
if greater(seq, redis.call('HGET', k_members(conv), sender)) then
  redis.call('HSET', k_members(conv), sender, seq)
end
-- cjson escapes the strings; seq and at are spliced in as JSON numbers
-- written exactly (cjson prints numbers with 14 significant digits).
local body = cjson.encode({t = 'message', node = node, trace = trace, rec = rec,
  conv = conv, user = sender, id = msg_id, cmid = cmid, kind = kind, text = text})
redis.call('PUBLISH', K_EVENTS, '{"seq":' .. seq .. ',"at":' .. at .. ',' .. string.sub(body, 2))
return ok({dup = false, seq = seq})
