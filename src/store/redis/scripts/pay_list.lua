-- ARGV: prefix, index ('all' or a status), limit (> 0). Newest first:
-- descending id, as SQLite's ORDER BY id DESC.
local out = {}
local ids = redis.call('ZRANGE', k_pay_index(ARGV[2]), '+', '-', 'BYLEX', 'REV', 'LIMIT', 0, ARGV[3])
for _, id in ipairs(ids) do
  local p = payment(id)
  if p then
    out[#out + 1] = p
  end
end
return ok(out)
