//! Saga leases: in a cluster, one node at a time runs a payment's saga.
//! The node that runs it holds `saga:<paymentId>` (its name, with a TTL) and
//! renews it; a node resuming unfinished sagas takes only those whose lease
//! is free, which is how a dead node's sagas move to a live one. The steps
//! themselves stay safe to repeat, so a lease lost mid-step (Redis down for
//! longer than the TTL) costs a repeated step, never a second charge.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::{from_redis, RedisStore};
use crate::domain::{PaymentId, TraceContext};
use crate::store::StoreResult;

/// Takes the lease when it is free or already ours (renewing it).
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"#,
    )
});

/// Gives the lease up, if it is ours.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#,
    )
});

impl RedisStore {
    /// True when this node now holds the saga lease of `id` for `ttl`.
    pub async fn claim_saga(&self, id: PaymentId, ttl: Duration) -> StoreResult<bool> {
        let key = self.key(format!("saga:{id}"));
        let node = self.node().to_string();
        let ttl_ms = ttl.as_millis().max(1) as u64;
        self.run(TraceContext::random(), move |mut conn| async move {
            CLAIM
                .key(key)
                .arg(node)
                .arg(ttl_ms)
                .invoke_async::<i64>(&mut conn)
                .await
                .map(|n| n == 1)
                .map_err(from_redis)
        })
        .await
    }

    /// Frees the lease of a finished saga.
    pub async fn release_saga(&self, id: PaymentId) -> StoreResult<()> {
        let key = self.key(format!("saga:{id}"));
        let node = self.node().to_string();
        self.run(TraceContext::random(), move |mut conn| async move {
            RELEASE
                .key(key)
                .arg(node)
                .invoke_async::<i64>(&mut conn)
                .await
                .map(|_| ())
                .map_err(from_redis)
        })
        .await
    }
}
