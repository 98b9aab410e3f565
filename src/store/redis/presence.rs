//! Presence across nodes. Each node records which of its users are
//! connected (`presence:<user>` hash: node -> 1, and `nodeusers:<node>`
//! set) and refreshes a heartbeat (`nodes` hash: node -> ms). A user is
//! online while any live node has them; the scripts publish `presence`
//! events on the first and last transition, atomically with the change, so
//! two nodes can never both announce (or both miss) a transition. A node
//! whose heartbeat is older than the TTL is dead: whichever node notices
//! first clears its entries and announces the users that went offline.
//!
//! When a user goes offline the same scripts record the time in
//! `lastseen` (a sorted set: user -> ms), so every node can say "last seen"
//! about anyone. It keeps the `LAST_SEEN_CAPACITY` most recent users: when
//! full, the longest-gone are dropped and are then just "offline".

use std::sync::LazyLock;

use redis::Script;

use super::{from_redis, RedisStore};
use crate::domain::{TraceId, Username};
use crate::store::StoreError;
use crate::store::StoreResult;

/// How many users' last-seen times Redis keeps (see the module doc).
pub const LAST_SEEN_CAPACITY: usize = 100_000;

/// A user's presence as the cluster knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Online,
    /// Offline; when their last session closed (ms), if still remembered.
    Offline(Option<i64>),
}

/// Shared Lua prelude: the clock (Redis's own, one for every node), liveness
/// and dropping a node. ARGV[1] = this node, ARGV[2] = ttl ms, ARGV[3] =
/// key prefix, ARGV[4] = trace id; KEYS[1] = nodes hash, KEYS[2] = channel.
const PRELUDE: &str = r#"
local node, ttl, prefix, trace = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local nodes, channel = KEYS[1], KEYS[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function live(n)
  if n == node then return true end
  local ts = redis.call('HGET', nodes, n)
  return ts ~= false and now - tonumber(ts) <= ttl
end
local function online(user)
  for _, n in ipairs(redis.call('HKEYS', prefix .. 'presence:' .. user)) do
    if live(n) then return true end
  end
  return false
end
local lastseen = prefix .. 'lastseen'
local function announce(user, status)
  local at = nil
  if not status then
    at = now
    redis.call('ZADD', lastseen, now, user)
    redis.call('ZREMRANGEBYRANK', lastseen, 0, -(LAST_SEEN_CAPACITY + 1))
  end
  redis.call('PUBLISH', channel, cjson.encode({t = 'presence', node = node, trace = trace, user = user, online = status, at = at}))
end
local function drop(n)
  local users = redis.call('SMEMBERS', prefix .. 'nodeusers:' .. n)
  for _, user in ipairs(users) do
    redis.call('HDEL', prefix .. 'presence:' .. user, n)
    if not online(user) then announce(user, false) end
  end
  redis.call('DEL', prefix .. 'nodeusers:' .. n)
  redis.call('HDEL', nodes, n)
  return #users
end
"#;

const UP: &str = r#"
local user = ARGV[5]
local was = online(user)
redis.call('HSET', prefix .. 'presence:' .. user, node, '1')
redis.call('SADD', prefix .. 'nodeusers:' .. node, user)
redis.call('HSET', nodes, node, now)
if not was then announce(user, true) return 1 end
return 0
"#;

const DOWN: &str = r#"
local user = ARGV[5]
redis.call('HDEL', prefix .. 'presence:' .. user, node)
redis.call('SREM', prefix .. 'nodeusers:' .. node, user)
if not online(user) then announce(user, false) return 1 end
return 0
"#;

/// For each of ARGV[5..]: 'on', or the last-seen ms, or '' (not known).
const STATUSES: &str = r#"
local out = {}
for i = 5, #ARGV do
  if online(ARGV[i]) then
    out[#out + 1] = 'on'
  else
    out[#out + 1] = redis.call('ZSCORE', lastseen, ARGV[i]) or ''
  end
end
return out
"#;

/// Refreshes this node's heartbeat and clears every dead node; says
/// whether this node was still listed (another node may have taken it for
/// dead after a long stall, clearing its users).
const HEARTBEAT: &str = r#"
local listed = redis.call('HEXISTS', nodes, node)
redis.call('HSET', nodes, node, now)
local dropped = 0
local all = redis.call('HGETALL', nodes)
for i = 1, #all, 2 do
  local n, ts = all[i], tonumber(all[i + 1])
  if n ~= node and now - ts > ttl then
    drop(n)
    dropped = dropped + 1
  end
end
return {dropped, listed}
"#;

/// Makes this node's presence entries exactly ARGV[5..] (its connected
/// users), announcing whoever goes online or offline by it: the repair
/// after Redis or the channel was lost (changes may have failed meanwhile,
/// or Redis may have restarted without them).
const REPLACE: &str = r#"
local key = prefix .. 'nodeusers:' .. node
local want = {}
for i = 5, #ARGV do want[ARGV[i]] = true end
for _, user in ipairs(redis.call('SMEMBERS', key)) do
  if not want[user] then
    redis.call('HDEL', prefix .. 'presence:' .. user, node)
    redis.call('SREM', key, user)
    if not online(user) then announce(user, false) end
  end
end
redis.call('HSET', nodes, node, now)
for i = 5, #ARGV do
  local user = ARGV[i]
  local present = redis.call('HEXISTS', prefix .. 'presence:' .. user, node) == 1
  local was = present or online(user)
  redis.call('HSET', prefix .. 'presence:' .. user, node, '1')
  redis.call('SADD', key, user)
  if not was then announce(user, true) end
end
return 0
"#;

/// Clears this node's own entries (start-up after a crash, clean shutdown).
const LEAVE: &str = r#"
return drop(node)
"#;

#[derive(Clone, Copy)]
enum Op {
    Up = 0,
    Down,
    Heartbeat,
    Leave,
    Replace,
    Statuses,
}

/// Each script with the prelude, hashed once (EVALSHA, loaded on first use).
fn script(op: Op) -> &'static Script {
    static SCRIPTS: LazyLock<[Script; 6]> = LazyLock::new(|| {
        let prelude = PRELUDE.replace("LAST_SEEN_CAPACITY", &LAST_SEEN_CAPACITY.to_string());
        [UP, DOWN, HEARTBEAT, LEAVE, REPLACE, STATUSES]
            .map(|b| Script::new(&format!("{prelude}{b}")))
    });
    &SCRIPTS[op as usize]
}

impl RedisStore {
    async fn presence_script<T: redis::FromRedisValue + Send + 'static>(
        &self,
        op: Op,
        trace: TraceId,
        extra: Vec<String>,
    ) -> StoreResult<T> {
        let keys = [self.key("nodes"), self.key("events")];
        let args = [
            self.node().to_string(),
            self.inner.options.node_ttl.as_millis().to_string(),
            self.inner.options.prefix.clone(),
            trace.to_string(),
        ];
        self.run(
            crate::domain::TraceContext::new(trace),
            move |mut conn| async move {
                let mut call = script(op).prepare_invoke();
                call.key(&keys[..]).arg(&args[..]).arg(extra);
                call.invoke_async::<T>(&mut conn).await.map_err(from_redis)
            },
        )
        .await
    }

    /// This node has its user's first session: true when the user was
    /// offline in the whole cluster (everyone was told).
    pub async fn presence_up(&self, user: &Username, trace: TraceId) -> StoreResult<bool> {
        let n: i64 = self
            .presence_script(Op::Up, trace, vec![user.to_string()])
            .await?;
        Ok(n == 1)
    }

    /// This node's last session of `user` closed: true when that was the
    /// user's last session in the cluster (everyone was told).
    pub async fn presence_down(&self, user: &Username, trace: TraceId) -> StoreResult<bool> {
        let n: i64 = self
            .presence_script(Op::Down, trace, vec![user.to_string()])
            .await?;
        Ok(n == 1)
    }

    /// The presence of each of `users`, in the same order.
    pub async fn statuses(&self, users: &[Username]) -> StoreResult<Vec<Status>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let raw: Vec<String> = self
            .presence_script(
                Op::Statuses,
                TraceId::random(),
                users.iter().map(|u| u.to_string()).collect(),
            )
            .await?;
        if raw.len() != users.len() {
            return Err(StoreError::backend(format!(
                "presence of {} users answered with {}",
                users.len(),
                raw.len()
            )));
        }
        raw.iter()
            .map(|r| match r.as_str() {
                "on" => Ok(Status::Online),
                // Offline and never seen.
                "" => Ok(Status::Offline(None)),
                // A score Redis wrote from a whole number of ms; anything
                // else is a corrupt value, said so rather than hidden.
                ms => ms
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|f| Status::Offline(Some(f as i64)))
                    .ok_or_else(|| {
                        StoreError::backend(format!("last-seen score {ms:?} is not a time"))
                    }),
            })
            .collect()
    }

    /// Proves this node alive and clears dead nodes; returns how many were
    /// cleared, and whether this node was still listed before this beat.
    pub async fn heartbeat(&self) -> StoreResult<(u64, bool)> {
        let (dropped, listed): (u64, i64) = self
            .presence_script(Op::Heartbeat, TraceId::random(), Vec::new())
            .await?;
        Ok((dropped, listed == 1))
    }

    /// Sets this node's presence entries to exactly `users` (see `REPLACE`).
    pub async fn replace_presence(&self, users: &[Username], trace: TraceId) -> StoreResult<()> {
        let _: i64 = self
            .presence_script(
                Op::Replace,
                trace,
                users.iter().map(|u| u.to_string()).collect(),
            )
            .await?;
        Ok(())
    }

    /// Clears this node's presence entries; returns how many users it had.
    pub async fn leave_cluster(&self) -> StoreResult<u64> {
        self.presence_script(Op::Leave, TraceId::random(), Vec::new())
            .await
    }
}
