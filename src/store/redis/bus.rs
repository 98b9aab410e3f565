//! The cluster channel: one Redis pub/sub channel (`<prefix>events`) that
//! every node subscribes to. Redis delivers a channel's messages to each
//! subscriber in the order it executed the publishing commands, so every
//! node sees message events of a conversation in seq order (the append
//! script publishes them).
//!
//! Pub/sub keeps nothing for a subscriber that is away: after a reconnect
//! the subscriber reports `Reconnected`, and consumers catch up from the
//! store (history streams) to close the gap.

use std::time::Duration;

use futures_util::StreamExt;

use super::events::ClusterEvent;
use super::{from_redis, RedisStore};
use crate::domain::TraceContext;
use crate::store::StoreError;
use crate::store::StoreResult;

/// What the subscription reports.
#[derive(Debug)]
pub enum BusSignal {
    Event(ClusterEvent),
    /// Subscribed again after the connection was lost: events published
    /// meanwhile were missed.
    Reconnected,
    /// The subscription is down (Redis unreachable); retrying.
    Down(String),
}

/// How often an idle subscription proves it is alive.
const PING_EVERY: Duration = Duration::from_secs(2);

impl RedisStore {
    fn channel(&self) -> String {
        self.key("events")
    }

    /// Publishes one event to every node (message events are published by
    /// the append script instead, atomically with the append).
    pub async fn publish(&self, event: &ClusterEvent) -> StoreResult<()> {
        let channel = self.channel();
        let payload = event.to_json();
        self.run(TraceContext::new(event.trace), |mut conn| async move {
            redis::cmd("PUBLISH")
                .arg(channel)
                .arg(payload)
                .query_async::<i64>(&mut conn)
                .await
                .map(|_| ())
                .map_err(from_redis)
        })
        .await
    }

    /// The subscription to the cluster channel, as a future that runs until
    /// it is dropped (the caller spawns it where `sink` may run: actor
    /// addresses want an actix arbiter). It reconnects with backoff (capped
    /// at 2 s) whenever the connection is lost. `sink` runs for each signal
    /// and must not block: it hands events to mailboxes.
    pub fn subscribe(
        &self,
        sink: impl Fn(BusSignal) + 'static,
    ) -> impl std::future::Future<Output = ()> + 'static {
        let client = self.inner.client.clone();
        let channel = self.channel();
        let timeout = self.inner.options.timeout;
        async move {
            let mut subscriptions = 0u64;
            let mut backoff = Duration::from_millis(50);
            loop {
                let before = subscriptions;
                let why = match listen(&client, &channel, timeout, &sink, &mut subscriptions).await
                {
                    Ok(()) => "the subscription ended".to_string(),
                    Err(e) => e.to_string(),
                };
                if subscriptions > before {
                    // It worked for a while: start over with a short wait.
                    backoff = Duration::from_millis(50);
                }
                sink(BusSignal::Down(why));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// One subscription: connect, subscribe, forward until the connection fails.
async fn listen(
    client: &redis::Client,
    channel: &str,
    timeout: Duration,
    sink: &impl Fn(BusSignal),
    subscriptions: &mut u64,
) -> StoreResult<()> {
    let pubsub = tokio::time::timeout(timeout, client.get_async_pubsub())
        .await
        .map_err(|_| StoreError::unavailable("redis pub/sub connect timed out"))?
        .map_err(from_redis)?;
    let (mut sink_half, mut stream) = pubsub.split();
    tokio::time::timeout(timeout, sink_half.subscribe(channel))
        .await
        .map_err(|_| StoreError::unavailable("redis SUBSCRIBE timed out"))?
        .map_err(from_redis)?;
    if *subscriptions > 0 {
        sink(BusSignal::Reconnected);
    }
    *subscriptions += 1;
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else { return Ok(()) };
                let payload: String = match msg.get_payload() {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(error = %e, "unreadable payload on the cluster channel");
                        continue;
                    }
                };
                match ClusterEvent::from_json(&payload) {
                    Ok(event) => sink(BusSignal::Event(event)),
                    Err(e) => tracing::warn!(error = %e, "skipping a cluster event"),
                }
            }
            _ = ping.tick() => {
                // A silently dead connection (no FIN) shows up here.
                match tokio::time::timeout(timeout, sink_half.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(from_redis(e)),
                    Err(_) => return Err(StoreError::unavailable("redis pub/sub ping timed out")),
                }
            }
        }
    }
}
