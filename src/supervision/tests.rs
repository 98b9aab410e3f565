//! The runtime guarantees of docs/SUPERVISION.md, each tested with real
//! actors under real supervisors.

use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::watch;

use super::policy::{Backoff, Intensity, RestartType, Strategy};
use super::ChildSpec;
use super::{
    install_panic_hook, Envelope, Msg, NodeView, Responder, Supervisor, SupervisorPolicy,
    Unanswered,
};
use crate::domain::TraceContext;

type Log = Arc<Mutex<Vec<String>>>;

struct Probe {
    name: &'static str,
    log: Log,
    incarnation: u32,
    panic_in_stopped: bool,
    /// Panic in the first incarnation's `started`.
    panic_in_started: bool,
}

impl Actor for Probe {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        if self.panic_in_started && self.incarnation == 0 {
            panic!("panic inside started()");
        }
        self.log
            .lock()
            .push(format!("{} started {}", self.name, self.incarnation));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.log.lock().push(format!("{} stopped", self.name));
        if self.panic_in_stopped {
            panic!("panic inside stopped()");
        }
    }
}

impl Supervised for Probe {
    fn restarting(&mut self, _: &mut Self::Context) {
        self.incarnation += 1;
    }
}

enum Cmd {
    Note(u32),
    Crash,
    /// Crashes; resent with the same key it is the same message.
    CrashKeyed(u64),
    Stop,
    Ask(Responder<Answer>),
}

impl Msg for Cmd {
    type Reply = ();
    const NAME: &'static str = "cmd";

    fn fingerprint(&self) -> Option<u64> {
        match self {
            Cmd::CrashKeyed(k) => Some(*k),
            _ => None,
        }
    }
}

#[derive(Debug, PartialEq)]
enum Answer {
    Lost,
}

impl Unanswered for Answer {
    fn unanswered() -> Self {
        Answer::Lost
    }
}

impl Handler<Envelope<Cmd>> for Probe {
    type Result = ();

    fn handle(&mut self, env: Envelope<Cmd>, ctx: &mut Self::Context) {
        let scope = env.enter("probe");
        if scope.poisoned() {
            self.log
                .lock()
                .push(format!("{} refused poison", self.name));
            return;
        }
        match env.msg {
            Cmd::Note(n) => self
                .log
                .lock()
                .push(format!("{} note {n} in {}", self.name, self.incarnation)),
            Cmd::Crash | Cmd::CrashKeyed(_) => panic!("crash requested"),
            Cmd::Stop => ctx.stop(),
            Cmd::Ask(r) => {
                let _held = r;
                panic!("crash while holding a request");
            }
        }
    }
}

fn policy(strategy: Strategy, max_restarts: u32) -> SupervisorPolicy {
    SupervisorPolicy {
        strategy,
        intensity: Intensity {
            max_restarts,
            window: Duration::from_secs(60),
        },
        backoff: Backoff {
            base: Duration::from_millis(1),
            max: Duration::from_millis(10),
            jitter: 0.5,
            reset_after: Duration::from_secs(60),
        },
        poison_tries: 3,
    }
}

/// A one-for-one root allowing `max_restarts`, with the panic hook that
/// turns a panic into a failure, and an empty log for its probes.
fn one_for_one_root(max_restarts: u32) -> (Supervisor, watch::Receiver<Option<String>>, Log) {
    install_panic_hook();
    let (root, failed) = Supervisor::root("root", policy(Strategy::OneForOne, max_restarts));
    (root, failed, Log::default())
}

fn probe(sup: &Supervisor, name: &'static str, log: &Log, restart: RestartType) -> Addr<Probe> {
    probe_panicking(sup, name, log, restart, PanicIn::Nowhere)
}

/// Where a probe panics by itself, besides the crashes it is sent.
#[derive(Clone, Copy, PartialEq)]
enum PanicIn {
    Nowhere,
    /// Its first incarnation's `started`.
    Started,
    Stopped,
}

fn probe_panicking(
    sup: &Supervisor,
    name: &'static str,
    log: &Log,
    restart: RestartType,
    panics: PanicIn,
) -> Addr<Probe> {
    sup.spawn(
        ChildSpec::new(name, "probe", restart, 16),
        Probe {
            name,
            log: log.clone(),
            incarnation: 0,
            panic_in_stopped: panics == PanicIn::Stopped,
            panic_in_started: panics == PanicIn::Started,
        },
        None,
    )
}

fn send(addr: &Addr<Probe>, cmd: Cmd) {
    addr.do_send(Envelope::new(TraceContext::random(), cmd));
}

/// Waits (bounded) until the log holds `line`.
async fn until_logged(log: &Log, line: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !log.lock().iter().any(|l| l == line) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never logged {line:?}: {:?}",
            log.lock()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn lines(log: &Log, prefix: &str) -> Vec<String> {
    log.lock()
        .iter()
        .filter(|l| l.starts_with(prefix))
        .cloned()
        .collect()
}

fn child<'a>(tree: &'a NodeView, name: &str) -> &'a super::ChildView {
    tree.children
        .iter()
        .find(|c| match c {
            super::ChildView::Supervisor(n) => n.name == name,
            super::ChildView::Worker { name: n, .. } => n == name,
        })
        .unwrap_or_else(|| panic!("no child {name}"))
}

#[actix_rt::test]
async fn a_panic_restarts_in_place_and_queued_messages_follow_in_order() {
    let (root, _failed, log) = one_for_one_root(10);
    let a = probe(&root, "a", &log, RestartType::Permanent);
    send(&a, Cmd::Crash);
    for n in 1..=5 {
        send(&a, Cmd::Note(n));
    }
    until_logged(&log, "a note 5 in 1").await;
    assert_eq!(
        lines(&log, "a note"),
        (1..=5)
            .map(|n| format!("a note {n} in 1"))
            .collect::<Vec<_>>(),
        "queued messages are handled by the new incarnation, in order"
    );
    assert_eq!(lines(&log, "a started"), vec!["a started 0", "a started 1"]);
    assert!(a.connected(), "the same address serves on");
    let tree = root.snapshot(10);
    let super::ChildView::Worker {
        restarts,
        last_failure,
        ..
    } = child(&tree, "a")
    else {
        panic!()
    };
    assert_eq!(*restarts, 1);
    let failure = last_failure.as_ref().unwrap();
    assert_eq!(failure.reason, "crash requested");
    assert!(failure
        .location
        .as_deref()
        .unwrap()
        .contains("supervision/tests.rs"));
    assert!(
        failure.trace_id.is_some(),
        "the failure names the trace of the message"
    );
    assert_eq!(root.restart_counts(), vec![("probe", "panic", 1)]);
}

#[actix_rt::test]
async fn the_request_in_flight_gets_an_error_reply() {
    let (root, _failed, log) = one_for_one_root(10);
    let a = probe(&root, "a", &log, RestartType::Permanent);
    let (reply, answer) = Responder::oneshot();
    send(&a, Cmd::Ask(reply));
    assert_eq!(answer.await.unwrap(), Answer::Lost);
    send(&a, Cmd::Note(1));
    until_logged(&log, "a note 1 in 1").await;
}

#[actix_rt::test]
async fn a_panic_inside_stopped_does_not_abort_the_process() {
    let (root, _failed, log) = one_for_one_root(10);
    let a = probe_panicking(&root, "a", &log, RestartType::Permanent, PanicIn::Stopped);
    send(&a, Cmd::Stop);
    // stopped() panicked; the actor is restarted and serves again.
    send(&a, Cmd::Note(1));
    until_logged(&log, "a note 1 in 1").await;
    assert!(lines(&log, "a stopped").len() == 1);
    // Shutting it down (stopped() panics again) is contained too.
    root.shutdown();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while lines(&log, "a stopped").len() < 2 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[actix_rt::test]
async fn restart_types_decide_who_comes_back() {
    let (root, _failed, log) = one_for_one_root(10);
    let permanent = probe(&root, "p", &log, RestartType::Permanent);
    let transient = probe(&root, "t", &log, RestartType::Transient);
    let temporary = probe(&root, "x", &log, RestartType::Temporary);
    // A normal stop: only the permanent child comes back.
    send(&permanent, Cmd::Stop);
    send(&transient, Cmd::Stop);
    until_logged(&log, "p started 1").await;
    until_logged(&log, "t stopped").await;
    // A panic: the transient child comes back, the temporary one does not.
    let t2 = probe(&root, "u", &log, RestartType::Transient);
    send(&t2, Cmd::Crash);
    send(&temporary, Cmd::Crash);
    until_logged(&log, "u started 1").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while temporary.connected() {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(
        lines(&log, "t started").len() == 1,
        "transient: no restart after a normal stop"
    );
    assert!(
        lines(&log, "x started").len() == 1,
        "temporary: never restarted"
    );
}

#[actix_rt::test]
async fn one_for_all_and_rest_for_one_restart_siblings() {
    let (root, _failed, log) = one_for_one_root(10);
    let all = root.supervisor("all", policy(Strategy::OneForAll, 10), false);
    let a = probe(&all, "a", &log, RestartType::Permanent);
    let _b = probe(&all, "b", &log, RestartType::Permanent);
    send(&a, Cmd::Crash);
    until_logged(&log, "a started 1").await;
    until_logged(&log, "b started 1").await;

    let rest = root.supervisor("rest", policy(Strategy::RestForOne, 10), false);
    let _c = probe(&rest, "c", &log, RestartType::Permanent);
    let d = probe(&rest, "d", &log, RestartType::Permanent);
    let _e = probe(&rest, "e", &log, RestartType::Permanent);
    send(&d, Cmd::Crash);
    until_logged(&log, "d started 1").await;
    until_logged(&log, "e started 1").await;
    assert_eq!(
        lines(&log, "c started"),
        vec!["c started 0"],
        "earlier siblings keep running"
    );
}

#[actix_rt::test]
async fn an_intensity_overflow_escalates_and_the_parent_restarts_the_subtree() {
    let (root, failed, log) = one_for_one_root(5);
    let sub = root.supervisor("sub", policy(Strategy::OneForOne, 2), false);
    let a = probe(&sub, "a", &log, RestartType::Permanent);
    let b = probe(&sub, "b", &log, RestartType::Permanent);
    for i in 1..=2 {
        send(&a, Cmd::Crash);
        until_logged(&log, &format!("a started {i}")).await;
    }
    // The third restart within the window is one too many: the subtree is
    // held (children stopped, reverse order) and the root restarts it.
    send(&a, Cmd::Crash);
    until_logged(&log, "b stopped").await;
    until_logged(&log, "b started 1").await;
    until_logged(&log, "a started 3").await;
    send(&a, Cmd::Note(1));
    send(&b, Cmd::Note(2));
    until_logged(&log, "a note 1 in 3").await;
    until_logged(&log, "b note 2 in 1").await;
    let tree = root.snapshot(10);
    assert_eq!(tree.restarts, 1, "the root restarted the subtree once");
    assert!(tree
        .last_failure
        .as_ref()
        .unwrap()
        .reason
        .contains("sub: more than 2 restarts"));
    let super::ChildView::Supervisor(sub_view) = child(&tree, "sub") else {
        panic!()
    };
    assert_eq!(sub_view.status, "running");
    assert!(failed.borrow().is_none(), "the root itself did not fail");
}

#[actix_rt::test]
async fn a_failing_root_reports_its_cause() {
    let (root, mut failed, log) = one_for_one_root(0);
    let a = probe(&root, "a", &log, RestartType::Permanent);
    send(&a, Cmd::Crash);
    let cause = tokio::time::timeout(Duration::from_secs(5), failed.wait_for(Option::is_some))
        .await
        .expect("the root failed")
        .unwrap()
        .clone()
        .unwrap();
    assert!(cause.contains("crash requested"), "{cause}");
}

#[actix_rt::test]
async fn a_poison_message_is_refused_after_the_configured_tries() {
    let (root, _failed, log) = one_for_one_root(100);
    let a = probe(&root, "a", &log, RestartType::Permanent);
    for i in 1..=3 {
        send(&a, Cmd::CrashKeyed(42));
        until_logged(&log, &format!("a started {i}")).await;
    }
    // The fourth delivery of the same message is refused, not handled.
    send(&a, Cmd::CrashKeyed(42));
    until_logged(&log, "a refused poison").await;
    // Other messages (even other crashing ones) are handled as usual.
    send(&a, Cmd::Note(1));
    until_logged(&log, "a note 1 in 3").await;
    send(&a, Cmd::CrashKeyed(7));
    until_logged(&log, "a started 4").await;
}

#[actix_rt::test]
async fn a_panic_inside_started_is_a_failure_and_the_actor_restarts() {
    let (root, _failed, log) = one_for_one_root(10);
    let a = probe_panicking(&root, "a", &log, RestartType::Permanent, PanicIn::Started);
    send(&a, Cmd::Note(1));
    until_logged(&log, "a note 1 in 1").await;
    assert_eq!(lines(&log, "a started"), vec!["a started 1"]);
    let tree = root.snapshot(10);
    let super::ChildView::Worker { last_failure, .. } = child(&tree, "a") else {
        panic!()
    };
    assert_eq!(
        last_failure.as_ref().unwrap().reason,
        "panic inside started()"
    );
}
