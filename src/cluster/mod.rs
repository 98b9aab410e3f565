//! This node's part in a cluster (storage.backend = "redis"): it listens on
//! the cluster channel and hands each event to the actor it concerns,
//! refreshes the node's heartbeat (which also clears dead nodes' presence),
//! watches Redis's health (the `redis_down` series and its alert), and
//! resumes sagas whose node died. Each of the three is a supervised actor
//! (`task.rs`): a panic restarts it, and the restarted subscription or
//! heartbeat makes every conversation catch up on what it may have missed.
//!
//! Message events go to the conversation actor even when they come from
//! this node: in a cluster, delivery always follows the channel, which is in
//! seq order across every node's commits. Other events from this node were
//! handled where they happened and are skipped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::actors::conversation::ConvRequest;
use crate::actors::directory::{Reassert, RemoteIntroduce, RemotePresence};
use crate::actors::Deps;
use crate::domain::TraceContext;
use crate::store::redis::{BusSignal, EventKind, RedisStore};
use crate::supervision::policy::{Intensity, RestartType, Strategy};
use crate::supervision::{ChildSpec, Envelope, SupervisorPolicy};

mod handle;
mod task;

pub use handle::ClusterHandle;

use task::{ClusterTask, Job};

/// How often the heartbeat runs (and Redis's health is sampled).
const HEARTBEAT: Duration = Duration::from_secs(1);

/// The running link: its three tasks are children of the `cluster`
/// supervisor; `stop` ends them and takes this node out of presence.
pub struct ClusterLink {
    redis: RedisStore,
    stopping: tokio::sync::watch::Sender<bool>,
}

/// Restarts of the cluster tasks allowed before their supervisor gives up
/// and escalates to the root: a task that keeps failing (Redis answering
/// garbage, a bug) restarts with backoff rather than taking the node down
/// at the root's first few failures.
const INTENSITY: Intensity = Intensity {
    max_restarts: 20,
    window: Duration::from_secs(10),
};

/// Starts the subscription, the heartbeat and the saga sweep, each as a
/// supervised actor under a `cluster` supervisor of the root, on the actix
/// system's arbiter (they start actors and send to mailboxes).
pub fn start(deps: &Deps, redis: RedisStore) -> ClusterLink {
    let (stopping, stop) = tokio::sync::watch::channel(false);
    let policy = SupervisorPolicy {
        strategy: Strategy::OneForOne,
        intensity: INTENSITY,
        ..deps.settings.supervision.root
    };
    let supervisor = deps.root.supervisor("cluster", policy, false);
    for job in [Job::Subscription, Job::Heartbeat, Job::Sweep] {
        supervisor.spawn(
            ChildSpec::new(job.name(), "cluster", RestartType::Permanent, 4),
            ClusterTask::new(job, deps.clone(), redis.clone(), stop.clone()),
            None,
        );
    }
    ClusterLink { redis, stopping }
}

/// The subscription: each signal of the cluster channel to the actor it
/// concerns, until the link stops.
pub(super) async fn subscription(deps: Deps, redis: RedisStore) {
    let node = redis.node().to_string();
    let down = AtomicBool::new(false);
    let faults = deps.faults.clone();
    redis
        .subscribe(move |signal| {
            task::fault(&faults, Job::Subscription);
            route(&deps, &node, &down, signal)
        })
        .await
}

/// Every second: lagging conversations retried, this node's heartbeat (which
/// clears dead nodes), Redis's health in the `redis_down` series.
pub(super) async fn heartbeat(deps: Deps, redis: RedisStore) {
    let mut healthy = true;
    let mut first = true;
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tick.tick().await;
        task::fault(&deps.faults, Job::Heartbeat);
        deps.conversations.retry_lagging(TraceContext::random());
        match redis.heartbeat().await {
            Ok((dead, listed)) => {
                if !listed && healthy && !first {
                    // Taken for dead (a stall longer than the TTL):
                    // its users were announced offline; repair.
                    tracing::warn!("this node was taken for dead; recording its users again");
                    deps.directory
                        .do_send(Envelope::new(TraceContext::random(), Reassert));
                }
                crate::series::record("redis_down", 0.0);
                if dead > 0 {
                    tracing::warn!(dead, "cleared the presence of dead nodes");
                }
                if !healthy {
                    tracing::info!("redis answers again");
                    deps.directory
                        .do_send(Envelope::new(TraceContext::random(), Reassert));
                }
                healthy = true;
                first = false;
            }
            Err(e) => {
                crate::series::record("redis_down", 1.0);
                if healthy {
                    tracing::error!(error = %e, "redis does not answer");
                }
                healthy = false;
            }
        }
        metrics::gauge!("parley_redis_up").set(if healthy { 1.0 } else { 0.0 });
    }
}

/// Unfinished sagas without a live owner, looked for three times per lease.
pub(super) async fn sweep(deps: Deps) {
    let every = (deps.settings.payments.saga_lease / 3).max(Duration::from_secs(1));
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        task::fault(&deps.faults, Job::Sweep);
        if let Err(e) = deps.payments.sweep().await {
            tracing::debug!(error = %e, "saga sweep skipped");
        }
    }
}

fn route(deps: &Deps, node: &str, down: &AtomicBool, signal: BusSignal) {
    match signal {
        BusSignal::Event(event) => {
            let trace = TraceContext::new(event.trace);
            let own = event.node == node;
            if event.recorded && !own {
                // The origin records this trace: keep this node's part too.
                crate::traces::keep(event.trace, crate::traces::Keep::Cluster);
            }
            match event.what {
                EventKind::Presence {
                    username,
                    online,
                    last_seen,
                } => {
                    let told = deps.directory.try_send(Envelope::new(
                        trace,
                        RemotePresence {
                            user: username,
                            online,
                            last_seen,
                        },
                    ));
                    if told.is_err() {
                        // The directory is behind: this notice is dropped
                        // (contacts see the next one), never queued without bound.
                        metrics::counter!("parley_mailbox_rejections_total", "queue" => "directory")
                            .increment(1);
                    }
                }
                EventKind::Added {
                    conversation_id,
                    users,
                    session,
                } => {
                    // This node told its own sessions when it happened.
                    if own {
                        return;
                    }
                    let told = deps.directory.try_send(Envelope::new(
                        trace,
                        RemoteIntroduce {
                            conversation_id,
                            added: users,
                            except: session,
                        },
                    ));
                    if told.is_err() {
                        // As for presence: dropped, never queued without bound;
                        // these users learn at their next reconnect.
                        metrics::counter!("parley_mailbox_rejections_total", "queue" => "directory")
                            .increment(1);
                    }
                }
                EventKind::Payment { payment_id } => {
                    if own {
                        return;
                    }
                    let (store, registry) = (deps.store.clone(), deps.registry.clone());
                    tokio::spawn(async move {
                        match store.payment(payment_id).await {
                            Ok(Some(p)) => crate::payments::saga::notify(&registry, &p, None),
                            Ok(None) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, payment = %payment_id, "payment status not relayed")
                            }
                        }
                    });
                }
                what => {
                    let Some(id) = what.conversation() else {
                        return;
                    };
                    if own && !matches!(what, EventKind::Message(_)) {
                        return;
                    }
                    metrics::counter!("parley_cluster_events_total", "own" => if own { "yes" } else { "no" })
                        .increment(1);
                    deps.conversations.route(
                        id,
                        Envelope::new(
                            trace,
                            ConvRequest::Remote {
                                event: what,
                                origin: event.node,
                            },
                        ),
                    );
                }
            }
        }
        BusSignal::Reconnected => {
            down.store(false, Ordering::Relaxed);
            tracing::info!("cluster channel back: catching up");
            let trace = TraceContext::random();
            deps.conversations.catch_up_all(trace);
            deps.directory.do_send(Envelope::new(trace, Reassert));
        }
        BusSignal::Down(why) => {
            if !down.swap(true, Ordering::Relaxed) {
                tracing::error!(reason = %why, "cluster channel lost; reconnecting");
            }
        }
    }
}

impl ClusterLink {
    /// Stops listening and clears this node's presence (its sessions are
    /// closed by then). The tasks' actors stay in the tree, idle, until the
    /// tree shuts down.
    pub async fn stop(self) {
        let _ = self.stopping.send(true);
        if let Err(e) = self.redis.leave_cluster().await {
            tracing::warn!(error = %e, "cannot clear this node's presence on the way out");
        }
    }
}
