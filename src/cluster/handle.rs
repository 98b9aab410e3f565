//! What actors ask of the cluster, whatever the deployment: one process (a
//! cluster of one, where every answer is the trivial one) or nodes sharing
//! Redis. Actors hold a [`ClusterHandle`] and call it unconditionally, so
//! "is this a cluster?" is decided here, once, and not in branches through
//! the actors. Only the directory's presence and the link itself
//! (`cluster::start`) need the Redis store, through [`ClusterHandle::redis`]:
//! presence is kept differently on one node (the directory's own tables)
//! and in a cluster (Redis), and each is a whole code path.

use std::time::Duration;

use crate::domain::{PaymentId, TraceId};
use crate::store::redis::{ClusterEvent, EventKind, RedisStore};
use crate::store::{Store, StoreError};

/// Cheap to clone; every clone talks to the same cluster.
#[derive(Clone)]
pub struct ClusterHandle {
    /// `None`: this process is the whole deployment.
    shared: Option<RedisStore>,
}

impl ClusterHandle {
    /// The cluster the store belongs to: a shared Redis store makes this
    /// node one of several, an embedded store a cluster of one.
    pub fn of(store: &Store) -> Self {
        ClusterHandle {
            shared: store.redis().cloned(),
        }
    }

    /// Whether other nodes may exist: delivery then follows the cluster
    /// channel rather than this node's commits.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// The Redis store behind a shared cluster (presence and the link).
    pub fn redis(&self) -> Option<&RedisStore> {
        self.shared.as_ref()
    }

    /// Tells every other node, in the background: nobody waits for it, and a
    /// failure (Redis down) is logged with `what_for`; the receivers repair
    /// what they missed when their channel comes back (catch-up, reassert).
    /// Alone, there is nobody to tell.
    pub fn tell_others(&self, what: EventKind, trace: TraceId, what_for: &'static str) {
        let Some(redis) = self.shared.clone() else {
            return;
        };
        let event = ClusterEvent {
            node: redis.node().to_string(),
            trace,
            recorded: crate::traces::recorded(trace),
            what,
        };
        tokio::spawn(async move {
            if let Err(e) = redis.publish(&event).await {
                tracing::warn!(error = %e, trace_id = %event.trace, "{what_for} not published to the cluster");
            }
        });
    }

    /// True when this node may run the saga of `id` now, for `ttl`, and
    /// renews the lease when it is already this node's. Alone, every saga
    /// is this node's.
    pub async fn claim_saga(&self, id: PaymentId, ttl: Duration) -> Result<bool, StoreError> {
        match &self.shared {
            Some(redis) => redis.claim_saga(id, ttl).await,
            None => Ok(true),
        }
    }

    /// Gives up this node's lease of `id`, in the background (a lease not
    /// released lapses after its TTL).
    pub fn release_saga(&self, id: PaymentId) {
        if let Some(redis) = self.shared.clone() {
            actix_rt::spawn(async move {
                let _ = redis.release_saga(id).await;
            });
        }
    }
}
