-- Prepended to every data script (see data/scripts.rs). ARGV[1] is always
-- the key prefix; the layout is documented in data.rs. Keys are built here,
-- not passed in KEYS, because which keys a script touches depends on what
-- it reads (a conversation's members, their indexes): this backend needs
-- one Redis server, not Redis Cluster.
--
-- Replies are one JSON string: {"ok": value} or {"err": code, "msg": text}.
-- Checks come before writes: Redis does not roll a script back when a
-- command in it fails, so a refusal must leave nothing behind.
local P = ARGV[1]

local function k_user(name) return P .. 'user:' .. name end
local function k_user_convs(name) return P .. 'user:' .. name .. ':convs' end
local function k_conv(id) return P .. 'conv:' .. id end
local function k_members(id) return P .. 'conv:' .. id .. ':members' end
local function k_log(id) return P .. 'conv:' .. id .. ':log' end
local function k_dedup(id) return P .. 'conv:' .. id .. ':dedup' end
-- The conversations a user started or accepted (the quota counts these).
local function k_user_own(name) return P .. 'user:' .. name .. ':own' end
local function k_invites(name) return P .. 'user:' .. name .. ':invites' end
local function k_inviters(name) return P .. 'user:' .. name .. ':inviters' end
local function k_direct(lo, hi) return P .. 'direct:' .. lo .. '|' .. hi end
local function k_pay(id) return P .. 'pay:' .. id end
local function k_pay_steps(id) return P .. 'pay:' .. id .. ':steps' end
local function k_pay_keys(payer) return P .. 'paykeys:' .. payer end
-- 'all', or a status: 'pending' (= saga unfinished), 'completed', 'failed'.
local function k_pay_index(which) return P .. 'payments:' .. which end
local K_EVENTS = P .. 'events'

local function ok(v) return cjson.encode({ok = v}) end
local function fail(code, msg) return cjson.encode({err = code, msg = msg}) end

-- A hash as a table of strings, or nil when the key does not exist.
local function hash(key)
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then return nil end
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

local function user_exists(name)
  return redis.call('EXISTS', k_user(name)) == 1
end

-- Members come unsorted: Rust sorts them (Lua compares with the locale).
local function conversation(id)
  local c = hash(k_conv(id))
  if not c then return nil end
  return {id = id, kind = c.kind, name = c.name, seq = c.seq,
          members = redis.call('HKEYS', k_members(id))}
end

-- A conversation's last activity in ms, as a string: its newest message's
-- time, else when it was made. `updated` is kept by append.lua; a
-- conversation last written before it was reads its newest log entry.
local function updated_at(id)
  local t = redis.call('HMGET', k_conv(id), 'updated', 'created', 'seq')
  if t[1] then return t[1] end
  if t[3] and t[3] ~= '0' then
    local last = redis.call('XREVRANGE', k_log(id), '+', '-', 'COUNT', 1)[1]
    if last then
      local f = last[2]
      for i = 1, #f, 2 do
        if f[i] == 'at' then return f[i + 1] end
      end
    end
  end
  return t[2] or '0'
end

-- Whether string `a` sorts before `b` byte by byte, as SQLite compares TEXT
-- (Lua's `<` on strings follows the locale).
local function bytes_before(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

local function create_conversation(id, kind, name, now, members)
  if redis.call('EXISTS', k_conv(id)) == 1 then
    return false
  end
  redis.call('HSET', k_conv(id), 'kind', kind, 'name', name, 'created', now, 'seq', '0')
  for _, m in ipairs(members) do
    redis.call('HSET', k_members(id), m, '0')
    -- Scored by creation time: ZRANGE lists by (created, id) like SQLite.
    redis.call('ZADD', k_user_convs(m), now, id)
  end
  return true
end

-- A stream entry {id, {field, value, ...}} as a message table; its seq is
-- the first part of the entry id (`<seq>-0`).
local function message(e)
  local m = {seq = string.match(e[1], '^%d+')}
  local f = e[2]
  for i = 1, #f, 2 do m[f[i]] = f[i + 1] end
  return m
end

-- True when the canonical decimal string a is greater than b (exact, where
-- Lua's doubles would not be past 2^53).
local function greater(a, b)
  return #a > #b or (#a == #b and a > b)
end

-- Adds delta (a decimal string) to a wallet unless the balance would go
-- below zero; false for that or a missing user (SQLite's zero-row UPDATE).
-- HINCRBY is exact 64-bit arithmetic; a negative result is undone by
-- restoring the previous value, so no negation is needed here.
local function add_balance(name, delta)
  local key = k_user(name)
  local before = redis.call('HGET', key, 'balance')
  if not before then return false end
  if redis.call('HINCRBY', key, 'balance', delta) < 0 then
    redis.call('HSET', key, 'balance', before)
    return false
  end
  return true
end

local function payment(id)
  local p = hash(k_pay(id))
  if p then p.id = id end
  return p
end

-- The group conversation `id` (its hash), or nil and the failure to return:
-- not found, or a direct conversation (`direct_msg`), whose members are fixed.
local function group(id, direct_msg)
  local c = hash(k_conv(id))
  if not c then
    return nil, fail('not_found', 'no such conversation')
  end
  if c.kind ~= 'group' then
    return nil, fail('bad_request', direct_msg)
  end
  return c
end

-- A pending invitation {conv, from, created}, or nil.
local function invitation(user, id)
  local from = redis.call('HGET', k_inviters(user), id)
  if not from then return nil end
  local c = conversation(id)
  if not c then return nil end
  return {conv = c, from = from, created = redis.call('ZSCORE', k_invites(user), id)}
end

-- Records an invitation (checked by the caller), then keeps the invitee's
-- `max` newest: by (created, id) like SQLite, so both drop the same ones.
local function add_invitation(user, id, from, now, max)
  redis.call('ZADD', k_invites(user), now, id)
  redis.call('HSET', k_inviters(user), id, from)
  local extra = redis.call('ZCARD', k_invites(user)) - max
  if extra > 0 then
    for _, old in ipairs(redis.call('ZRANGE', k_invites(user), 0, extra - 1)) do
      redis.call('HDEL', k_inviters(user), old)
    end
    redis.call('ZREMRANGEBYRANK', k_invites(user), 0, extra - 1)
  end
end

-- Drops an invitation; 1 if there was one.
local function drop_invitation(user, id)
  redis.call('HDEL', k_inviters(user), id)
  return redis.call('ZREM', k_invites(user), id)
end

-- The conversation quota (store::Quota): nil when `user` ('' for none) may
-- start one more, else the failure to return (the words Rust's SQLite
-- backend uses, in quota.rs).
local function quota_full(user, max)
  if user == '' then return nil end
  local n = redis.call('ZCARD', k_user_own(user))
  if n < tonumber(max) then return nil end
  return fail('forbidden', 'you are in ' .. n .. ' conversations you started or joined; a user in '
    .. max .. ' or more may not start another (leave one first)')
end

