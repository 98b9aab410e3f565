//! The Redis backend: what a cluster of nodes shares. Only this module knows
//! Redis keys. Every command goes through the `redis` circuit breaker (when
//! one is given), so while Redis is down calls fail at once with
//! `StoreError::Unavailable` instead of hanging; the connection manager
//! reconnects by itself.
//!
//! Multi-key changes run as Lua scripts, which Redis executes atomically:
//! an append deduplicates by clientMsgId, takes the next seq, adds the entry
//! to the conversation's stream and publishes it to the cluster channel, all
//! in one step, so publication order is seq order.

mod bus;
mod data;
mod events;
mod leases;
mod presence;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use redis::aio::ConnectionManager;

pub use bus::BusSignal;
pub use events::{ClusterEvent, EventKind};
pub use presence::{Status, LAST_SEEN_CAPACITY};

use super::StoreError;
use crate::actors::breaker::{BreakerActor, Call, CallError};
use crate::config::StorageSettings;
use crate::domain::TraceContext;
use crate::store::StoreResult;
use crate::supervision::{Envelope, Responder};

/// How to reach Redis, and who this node is.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    pub url: String,
    /// Prefix of every key and channel.
    pub prefix: String,
    /// This node's name, carried by every event it publishes.
    pub node: String,
    /// How long one command may take.
    pub timeout: Duration,
    /// Heartbeat age after which a node counts as dead.
    pub node_ttl: Duration,
}

impl RedisOptions {
    pub fn from_settings(settings: &StorageSettings, node: &str) -> Self {
        RedisOptions {
            url: settings.redis_url.clone(),
            prefix: settings.redis_prefix.clone(),
            node: node.to_string(),
            timeout: settings.redis_timeout,
            node_ttl: settings.redis_node_ttl,
        }
    }
}

struct Inner {
    client: redis::Client,
    conn: ConnectionManager,
    options: RedisOptions,
    breaker: Option<Addr<BreakerActor>>,
}

/// Cheap to clone; every clone shares one multiplexed connection.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

/// Connection-level failures make Redis unavailable (and count against the
/// breaker); anything Redis answered with is a backend error.
fn from_redis(e: redis::RedisError) -> StoreError {
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
        StoreError::unavailable("redis is unreachable").caused_by(e)
    } else {
        StoreError::backend("redis").caused_by(e)
    }
}

impl RedisStore {
    /// Connects (failing when Redis does not answer within the timeout).
    pub async fn connect(
        options: RedisOptions,
        breaker: Option<Addr<BreakerActor>>,
    ) -> StoreResult<RedisStore> {
        let client = redis::Client::open(options.url.as_str())
            .map_err(|e| StoreError::BadRequest(format!("storage.redis_url: {e}")))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(options.timeout)
            .set_connection_timeout(options.timeout)
            // Few quick retries: the breaker, not the manager, decides how
            // long to keep trying while Redis is down.
            .set_number_of_retries(2)
            .set_factor(50)
            .set_max_delay(500);
        let conn = tokio::time::timeout(
            options.timeout,
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .map_err(|_| StoreError::unavailable(format!("redis at {} does not answer", options.url)))?
        .map_err(from_redis)?;
        Ok(RedisStore {
            inner: Arc::new(Inner {
                client,
                conn,
                options,
                breaker,
            }),
        })
    }

    /// A key under this deployment's prefix.
    fn key(&self, suffix: impl std::fmt::Display) -> String {
        format!("{}{}", self.inner.options.prefix, suffix)
    }

    pub fn node(&self) -> &str {
        &self.inner.options.node
    }

    /// Runs `op` with a connection, through the breaker when there is one.
    /// Errors Redis itself answered with are returned as they are and do not
    /// count against the breaker; connection failures and timeouts do.
    async fn run<T, F, Fut>(&self, trace: TraceContext, op: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = StoreResult<T>> + Send + 'static,
    {
        let fut = op(self.inner.conn.clone());
        let Some(breaker) = &self.inner.breaker else {
            return match tokio::time::timeout(self.inner.options.timeout, fut).await {
                Ok(r) => r,
                Err(_) => Err(StoreError::unavailable("redis did not answer in time")),
            };
        };
        let call = async move {
            match fut.await {
                Err(StoreError::Unavailable { reason, cause }) => Err(CallError::Failed {
                    message: reason,
                    counts: true,
                    cause,
                }),
                other => Ok(other),
            }
        };
        let (reply, answer) = Responder::oneshot();
        let call = Call {
            call: Box::pin(call),
            reply,
        };
        if breaker.try_send(Envelope::new(trace, call)).is_err() {
            return Err(StoreError::unavailable(
                "redis breaker is overloaded; retry",
            ));
        }
        match answer.await {
            Ok(Ok(result)) => result,
            Ok(Err(CallError::Rejected(r))) => Err(StoreError::unavailable(format!(
                "redis is unavailable (circuit breaker {r})"
            ))),
            Ok(Err(CallError::Failed { message, cause, .. })) => Err(StoreError::Unavailable {
                reason: message,
                cause,
            }),
            Ok(Err(CallError::Timeout(t))) => Err(StoreError::unavailable(format!(
                "redis did not answer within {t:?}"
            ))),
            Ok(Err(CallError::Lost)) | Err(_) => Err(StoreError::unavailable(
                "the redis breaker failed during the call",
            )),
        }
    }

    /// PING through the breaker (`/readyz`).
    pub async fn ping(&self) -> StoreResult<()> {
        self.run(TraceContext::random(), |mut conn| async move {
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map(|_| ())
                .map_err(from_redis)
        })
        .await
    }
}
