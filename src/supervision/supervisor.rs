//! Supervisors (Erlang/OTP semantics over restart-in-place runners).
//!
//! A supervisor is a node of the tree: static children started in order, or
//! (dynamic) any number of children from one spec. When a child ends it asks
//! its supervisor what to do ([`Supervisor::child_exited`]): by restart type
//! whether to restart at all; by intensity whether restarting is still
//! allowed (more than `max_restarts` within `window` and the supervisor holds
//! its children, in reverse start order, and fails to its parent); by
//! strategy which siblings restart too; by backoff how long to wait. A parent
//! restarts a failed child supervisor by restarting its whole subtree. The
//! root has no parent: its failure is logged and ends the process non-zero.

use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use actix::prelude::*;
use rand::Rng;
use tokio::sync::{mpsc, watch};

use super::failure::Failure;
use super::policy::{Backoff, BackoffState, Intensity, IntensityTracker, RestartType, Strategy};
use super::runner::{self, Command};
use super::tree::{ChildView, NodeView};
use crate::domain::now_ms;

pub type ChildId = u64;

/// How a child ended.
#[derive(Debug, Clone)]
pub enum Exit {
    /// It stopped by itself.
    Normal,
    /// It panicked.
    Failed(Failure),
    /// A child supervisor exceeded its restart intensity.
    Escalated(Failure),
}

/// What a child's runner does next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    Restart {
        delay: Duration,
    },
    /// Stay stopped until the parent restarts the subtree or shuts it down.
    Hold,
    Stop,
}

/// How a child is named, restarted and how many messages its mailbox holds.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    pub name: String,
    pub kind: &'static str,
    pub restart: RestartType,
    /// Mailbox capacity from the first message on (before `started` runs).
    pub mailbox: usize,
    /// Who the child serves, for people reading the tree (a session's
    /// username): ids alone say nothing to an operator.
    pub label: Option<String>,
}

impl ChildSpec {
    pub fn new(
        name: impl Into<String>,
        kind: &'static str,
        restart: RestartType,
        mailbox: usize,
    ) -> Self {
        ChildSpec {
            name: name.into(),
            kind,
            restart,
            mailbox,
            label: None,
        }
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }
}

/// The limits of one supervisor.
#[derive(Debug, Clone, Copy)]
pub struct SupervisorPolicy {
    pub strategy: Strategy,
    pub intensity: Intensity,
    pub backoff: Backoff,
    /// A message that crashed a child this many times is refused after.
    pub poison_tries: u32,
}

enum Link {
    Actor(mpsc::Sender<Command>),
    Supervisor(Supervisor),
    /// A thread that reports its own failures (the store writer).
    Worker,
}

struct Child {
    /// Per child: one child's crash loop must not slow its siblings' restarts.
    backoff: BackoffState,
    name: String,
    kind: &'static str,
    restart: RestartType,
    link: Link,
    label: Option<String>,
    status: &'static str,
    restarts: u64,
    last_failure: Option<Failure>,
    started_at: i64,
}

struct State {
    intensity: IntensityTracker,
    /// Keyed by id, which grows with start order.
    children: BTreeMap<ChildId, Child>,
    next_id: ChildId,
    status: &'static str,
    restarts: u64,
    last_failure: Option<Failure>,
}

struct Node {
    name: String,
    dynamic: bool,
    policy: SupervisorPolicy,
    /// The parent and this node's id there; none for the root.
    parent: Option<(Weak<Node>, ChildId)>,
    /// Root only: set to the cause when the root itself fails.
    root_failure: Option<watch::Sender<Option<String>>>,
    /// Restarts by child kind and reason, shared by the whole tree.
    counters: Arc<Mutex<HashMap<(&'static str, &'static str), u64>>>,
    state: Mutex<State>,
}

/// A handle to one supervisor of the tree.
#[derive(Clone)]
pub struct Supervisor {
    node: Arc<Node>,
}

/// The tree links a failure's trace: keep it, with the failure as a hop
/// (the reason cut short: a panic message can be any length).
fn keep_failure(trace: crate::domain::TraceId, kind: &'static str, child: &str, reason: &str) {
    use crate::traces::{self, ActorRef, Keep};
    const REASON_CHARS: usize = 200;
    traces::keep(trace, Keep::Restart);
    let reason: String = reason.chars().take(REASON_CHARS).collect();
    traces::hop(
        trace,
        "supervision",
        ActorRef::Named(kind),
        format!("{child} failed: {reason}"),
        Duration::ZERO,
    );
}

impl Supervisor {
    /// The root; `failed` receives the cause if the root itself fails.
    pub fn root(
        name: &str,
        policy: SupervisorPolicy,
    ) -> (Supervisor, watch::Receiver<Option<String>>) {
        let (tx, rx) = watch::channel(None);
        let node = Node {
            name: name.to_string(),
            dynamic: false,
            policy,
            parent: None,
            root_failure: Some(tx),
            counters: Arc::default(),
            state: Mutex::new(State::new(policy)),
        };
        (
            Supervisor {
                node: Arc::new(node),
            },
            rx,
        )
    }

    /// Adds a child supervisor (dynamic: one spec, many children, always
    /// one_for_one, whatever the policy says).
    pub fn supervisor(
        &self,
        name: &str,
        mut policy: SupervisorPolicy,
        dynamic: bool,
    ) -> Supervisor {
        if dynamic {
            policy.strategy = Strategy::OneForOne;
        }
        let mut st = self.node.state.lock();
        let id = st.take_id();
        let child = Supervisor {
            node: Arc::new(Node {
                name: name.to_string(),
                dynamic,
                policy,
                parent: Some((Arc::downgrade(&self.node), id)),
                root_failure: None,
                counters: self.node.counters.clone(),
                state: Mutex::new(State::new(policy)),
            }),
        };
        st.children.insert(
            id,
            Child::new(
                name.to_string(),
                "supervisor",
                RestartType::Permanent,
                Link::Supervisor(child.clone()),
            ),
        );
        child
    }

    /// Starts a supervised actor as a child of this supervisor.
    pub fn spawn<A>(&self, spec: ChildSpec, actor: A, arbiter: Option<&ArbiterHandle>) -> Addr<A>
    where
        A: Actor<Context = Context<A>> + Supervised + Send,
    {
        let (tx, rx) = mpsc::channel(8);
        let id = {
            let mut st = self.node.state.lock();
            let id = st.take_id();
            let mut child = Child::new(spec.name, spec.kind, spec.restart, Link::Actor(tx));
            child.label = spec.label;
            st.children.insert(id, child);
            id
        };
        runner::start(
            actor,
            arbiter,
            self.clone(),
            id,
            rx,
            self.node.policy.poison_tries,
            spec.mailbox,
        )
    }

    /// Registers a thread that reports its own failures through
    /// [`Supervisor::child_exited`] (and obeys only `Restart` delays).
    pub fn worker(&self, name: &str, kind: &'static str) -> ChildId {
        let mut st = self.node.state.lock();
        let id = st.take_id();
        st.children.insert(
            id,
            Child::new(name.to_string(), kind, RestartType::Permanent, Link::Worker),
        );
        id
    }

    fn count(&self, kind: &'static str, reason: &'static str) {
        *self.node.counters.lock().entry((kind, reason)).or_default() += 1;
        crate::series::record("actor_restarts", 1.0);
        metrics::counter!("parley_actor_restarts_total", "kind" => kind, "reason" => reason)
            .increment(1);
    }

    /// A child ended; decides what it does next (see the module doc).
    pub fn child_exited(&self, id: ChildId, exit: Exit) -> Decision {
        let policy = self.node.policy;
        let now = Instant::now();
        let mut st = self.node.state.lock();
        let abnormal = !matches!(exit, Exit::Normal);
        let Some(child) = st.children.get_mut(&id) else {
            return Decision::Stop;
        };
        if let Exit::Failed(f) | Exit::Escalated(f) = &exit {
            if let Some(trace) = f.trace_id {
                keep_failure(trace, child.kind, &child.name, &f.reason);
            }
            child.last_failure = Some(f.clone());
        }
        let (kind, restart_type) = (child.kind, child.restart);
        if !restart_type.restarts(abnormal) {
            child.status = "stopped";
            return Decision::Stop;
        }
        if let Exit::Failed(f) | Exit::Escalated(f) = &exit {
            st.last_failure = Some(f.clone());
        }
        if !st.intensity.allow(now) {
            st.status = "escalated";
            drop(st);
            let cause = match &exit {
                Exit::Failed(f) | Exit::Escalated(f) => f.reason.clone(),
                Exit::Normal => "a permanent child stopped".into(),
            };
            tracing::error!(
                supervisor = %self.node.name,
                max_restarts = policy.intensity.max_restarts,
                window_ms = policy.intensity.window.as_millis() as u64,
                "restart intensity exceeded; stopping children and escalating: {cause}"
            );
            self.hold_children(Some(id));
            self.escalate(format!(
                "{}: more than {} restarts in {:?} (last: {cause})",
                self.node.name, policy.intensity.max_restarts, policy.intensity.window
            ));
            return Decision::Hold;
        }
        st.restarts += 1;
        // one_for_one (every dynamic supervisor) restarts no sibling: no
        // need to list all children (there may be 100,000 conversations).
        let siblings: Vec<ChildId> = if policy.strategy == Strategy::OneForOne {
            Vec::new()
        } else {
            let order: Vec<ChildId> = st.children.keys().copied().collect();
            let failed_at = order.iter().position(|c| *c == id).unwrap_or(0);
            policy
                .strategy
                .affected(failed_at, order.len())
                .into_iter()
                .map(|i| order[i])
                .filter(|c| *c != id)
                .collect()
        };
        let Some(child) = st.children.get_mut(&id) else {
            return Decision::Stop;
        };
        let delay = child
            .backoff
            .next_delay(&policy.backoff, now, rand::thread_rng().gen::<f64>());
        child.restarts += 1;
        child.status = "restarting";
        let mut links = Vec::new();
        for sid in siblings {
            if let Some(s) = st.children.get_mut(&sid) {
                s.restarts += 1;
                s.status = "restarting";
                links.push(s.link.clone_link());
            }
        }
        drop(st);
        let reason = match exit {
            Exit::Normal => "exit",
            Exit::Failed(_) => "panic",
            Exit::Escalated(_) => "escalation",
        };
        self.count(kind, reason);
        for link in links {
            link.restart(delay);
        }
        Decision::Restart { delay }
    }

    pub fn child_restarted(&self, id: ChildId) {
        if let Some(c) = self.node.state.lock().children.get_mut(&id) {
            c.status = "running";
            c.started_at = now_ms();
        }
    }

    /// The child's runner ended for good.
    pub fn child_gone(&self, id: ChildId) {
        let mut st = self.node.state.lock();
        if self.node.dynamic {
            st.children.remove(&id);
        } else if let Some(c) = st.children.get_mut(&id) {
            c.status = "stopped";
        }
    }

    /// Stops every child (reverse start order) but `except`, keeping them
    /// ready for a restart of the subtree.
    fn hold_children(&self, except: Option<ChildId>) {
        let links: Vec<LinkRef> = {
            let mut st = self.node.state.lock();
            st.children
                .iter_mut()
                .rev()
                .filter(|(id, _)| Some(**id) != except)
                .map(|(_, c)| {
                    c.status = "held";
                    c.link.clone_link()
                })
                .collect()
        };
        if let Some(except) = except {
            if let Some(c) = self.node.state.lock().children.get_mut(&except) {
                c.status = "held";
            }
        }
        for link in links {
            link.hold();
        }
    }

    /// This supervisor failed: its parent decides, or the root ends the process.
    fn escalate(&self, cause: String) {
        let failure = Failure {
            reason: cause.clone(),
            location: None,
            trace_id: None,
            at: now_ms(),
            fingerprint: None,
        };
        match &self.node.parent {
            Some((parent, my_id)) => {
                let Some(parent) = parent.upgrade() else {
                    return;
                };
                let parent = Supervisor { node: parent };
                match parent.child_exited(*my_id, Exit::Escalated(failure)) {
                    Decision::Restart { delay } => {
                        let me = self.clone();
                        actix_rt::spawn(async move {
                            tokio::time::sleep(delay).await;
                            me.restart_subtree(Duration::ZERO);
                        });
                    }
                    Decision::Hold => {}
                    Decision::Stop => self.shutdown(),
                }
            }
            None => {
                tracing::error!(supervisor = %self.node.name, "the root supervisor failed: {cause}");
                if let Some(tx) = &self.node.root_failure {
                    let _ = tx.send(Some(cause));
                }
            }
        }
    }

    /// Restarts every child of this subtree in place, with fresh state and a
    /// fresh intensity window.
    pub fn restart_subtree(&self, delay: Duration) {
        let links: Vec<LinkRef> = {
            let mut st = self.node.state.lock();
            st.intensity.reset();
            st.status = "running";
            st.children
                .values_mut()
                .map(|c| {
                    c.restarts += 1;
                    c.status = "restarting";
                    c.link.clone_link()
                })
                .collect()
        };
        for link in links {
            link.restart(delay);
        }
    }

    /// Stops every child for good, in reverse start order.
    pub fn shutdown(&self) {
        let links: Vec<LinkRef> = {
            let mut st = self.node.state.lock();
            st.status = "stopped";
            st.children
                .values()
                .rev()
                .map(|c| c.link.clone_link())
                .collect()
        };
        for link in links {
            link.shutdown();
        }
    }

    /// The live tree below this supervisor; dynamic nodes list at most
    /// `max_children` children (those with the most restarts first).
    pub fn snapshot(&self, max_children: usize) -> NodeView {
        let st = self.node.state.lock();
        let mut children: Vec<(&ChildId, &Child)> = st.children.iter().collect();
        if self.node.dynamic {
            children.sort_by(|a, b| b.1.restarts.cmp(&a.1.restarts).then(a.0.cmp(b.0)));
        }
        let child_count = children.len();
        let children = children
            .into_iter()
            .take(if self.node.dynamic {
                max_children
            } else {
                usize::MAX
            })
            .map(|(_, c)| match &c.link {
                Link::Supervisor(s) => ChildView::Supervisor(s.snapshot(max_children)),
                _ => ChildView::Worker {
                    name: c.name.clone(),
                    kind: c.kind,
                    label: c.label.clone(),
                    restart: c.restart,
                    status: c.status,
                    restarts: c.restarts,
                    last_failure: c.last_failure.clone(),
                    started_at: crate::domain::rfc3339_ms(c.started_at),
                },
            })
            .collect();
        NodeView {
            name: self.node.name.clone(),
            kind: if self.node.dynamic {
                "dynamic_supervisor"
            } else {
                "supervisor"
            },
            strategy: self.node.policy.strategy,
            status: st.status,
            restarts: st.restarts,
            max_restarts: self.node.policy.intensity.max_restarts,
            window_secs: self.node.policy.intensity.window.as_secs_f64(),
            last_failure: st.last_failure.clone(),
            child_count,
            children,
        }
    }

    /// Restarts so far, by child kind and reason (`panic`, `exit`).
    pub fn restart_counts(&self) -> Vec<(&'static str, &'static str, u64)> {
        let mut v: Vec<_> = self
            .node
            .counters
            .lock()
            .iter()
            .map(|((k, r), n)| (*k, *r, *n))
            .collect();
        v.sort();
        v
    }
}

impl State {
    fn new(policy: SupervisorPolicy) -> Self {
        State {
            intensity: IntensityTracker::new(policy.intensity),
            children: BTreeMap::new(),
            next_id: 1,
            status: "running",
            restarts: 0,
            last_failure: None,
        }
    }

    fn take_id(&mut self) -> ChildId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }
}

impl Child {
    fn new(name: String, kind: &'static str, restart: RestartType, link: Link) -> Self {
        Child {
            backoff: BackoffState::default(),
            name,
            kind,
            restart,
            link,
            label: None,
            status: "running",
            restarts: 0,
            last_failure: None,
            started_at: now_ms(),
        }
    }
}

/// A copy of a child's link that can be used without the lock.
enum LinkRef {
    Actor(mpsc::Sender<Command>),
    Supervisor(Supervisor),
    Worker,
}

impl Link {
    fn clone_link(&self) -> LinkRef {
        match self {
            Link::Actor(tx) => LinkRef::Actor(tx.clone()),
            Link::Supervisor(s) => LinkRef::Supervisor(s.clone()),
            Link::Worker => LinkRef::Worker,
        }
    }
}

impl LinkRef {
    // Commands are rare (restarts, holds, shutdowns) and the runner drains
    // them at once; a full command queue already holds an order that
    // supersedes this one, so a failed `try_send` loses nothing that matters.
    fn restart(self, delay: Duration) {
        match self {
            LinkRef::Actor(tx) => {
                let _ = tx.try_send(Command::Restart { delay });
            }
            LinkRef::Supervisor(s) => s.restart_subtree(delay),
            LinkRef::Worker => {}
        }
    }

    fn hold(self) {
        match self {
            LinkRef::Actor(tx) => {
                let _ = tx.try_send(Command::Hold);
            }
            LinkRef::Supervisor(s) => s.hold_children(None),
            LinkRef::Worker => {}
        }
    }

    fn shutdown(self) {
        match self {
            LinkRef::Actor(tx) => {
                let _ = tx.try_send(Command::Shutdown);
            }
            LinkRef::Supervisor(s) => s.shutdown(),
            LinkRef::Worker => {}
        }
    }
}
