//! The chat-shaped scenarios: `chat` (a fixed total rate), `saturate` (a
//! window of unacknowledged messages per sender) and `chaos` (chat while
//! faults are injected). Every member of every conversation has a session;
//! the first `senders` members of each also send. Each message's text starts
//! with its scheduled send time, so latency is measured from the schedule,
//! not from when a stalled sender got round to it (coordinated omission).
//! Loss and duplication are counted from seq: every seq acked to a sender
//! must reach every member's session exactly once.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use super::recorder::{end_progress, Batch, Recorder};
use super::report::Report;
use super::setup::{self, Room};
use super::target::{close_reason, Target, Ws};
use super::{
    join_within, scan, secs, stopped_before, ChaosArgs, ChatArgs, CommonArgs, LoadError, RoomArgs,
    SaturateArgs,
};

/// A paced sender keeps at most this many messages unacknowledged; beyond
/// it, due messages wait (and their latency grows, as it should).
const PACED_IN_FLIGHT: usize = 1000;
/// Highest seq a session tracks (2 MB of bits per session at most).
const MAX_SEQ: u64 = 1 << 24;

/// How a run ends: sending stops, then every task finishes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Phase {
    Running,
    StopSending,
    Finish,
}

/// How a sender decides when to send.
enum Pace {
    /// Scheduled send times (µs since the recorder's epoch) handed over by
    /// the pacer thread as each falls due.
    Paced(mpsc::Receiver<u64>),
    /// As fast as `window` unacknowledged messages allow, from `start` to `end`.
    Window {
        window: usize,
        start: Instant,
        end: Instant,
    },
}

struct SendPlan {
    pace: Pace,
    size: usize,
}

impl Pace {
    /// The next message's stamp; `None` once a paced schedule is over.
    async fn due(&mut self, rec: &Recorder) -> Option<u64> {
        match self {
            Pace::Paced(rx) => rx.recv().await,
            Pace::Window { start, .. } => {
                tokio::time::sleep_until((*start).into()).await;
                Some(rec.now_micros())
            }
        }
    }

    /// Another stamp ready now, for the same write.
    fn more(&mut self, rec: &Recorder) -> Option<u64> {
        match self {
            Pace::Paced(rx) => rx.try_recv().ok(),
            Pace::Window { end, .. } => (Instant::now() < *end).then(|| rec.now_micros()),
        }
    }
}

/// The schedule of a fixed total rate: message n is due at start + n/rate,
/// handed to sender n mod S. A thread of its own, sleeping with the OS's
/// sub-millisecond precision: tokio's timer wheel ticks in whole
/// milliseconds, which would add up to a millisecond to every latency.
/// Returns how many messages could not be handed over because their sender
/// already had a full queue of due messages (it was that far behind).
fn pacer(
    senders: Vec<mpsc::Sender<u64>>,
    rate: f64,
    start: Instant,
    end: Instant,
    rec: Arc<Recorder>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut skipped = 0;
        for n in 0u64.. {
            let due = start + Duration::from_secs_f64(n as f64 / rate);
            if due >= end {
                break;
            }
            // Sleep in slices, so a stop is noticed within 50 ms.
            loop {
                if stop.load(Ordering::Relaxed) {
                    return skipped;
                }
                let left = due.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                std::thread::sleep(left.min(Duration::from_millis(50)));
            }
            let to = &senders[(n % senders.len() as u64) as usize];
            if let Err(mpsc::error::TrySendError::Full(_)) = to.try_send(rec.micros(due)) {
                skipped += 1;
            }
        }
        skipped
    })
}

/// Seqs one session has seen.
#[derive(Default)]
struct Seen {
    bits: Vec<u64>,
    max: u64,
    duplicates: u64,
    out_of_order: u64,
    beyond: u64,
}

impl Seen {
    fn insert(&mut self, seq: u64) {
        if seq == 0 || seq > MAX_SEQ {
            self.beyond += 1;
            return;
        }
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        if self.bits[word] & (1 << bit) != 0 {
            self.duplicates += 1;
            return;
        }
        self.bits[word] |= 1 << bit;
        if seq < self.max {
            self.out_of_order += 1;
        }
        self.max = self.max.max(seq);
    }

    fn contains(&self, seq: u64) -> bool {
        let word = (seq / 64) as usize;
        self.bits
            .get(word)
            .is_some_and(|w| w & (1 << (seq % 64)) != 0)
    }
}

/// Missed (room, seq) pairs named in the report at most.
const MISSED_LISTED: usize = 20;

/// Acked seqs a session never saw.
fn missing(acked: &[u64], seen: &Seen) -> u64 {
    acked.iter().filter(|s| !seen.contains(**s)).count() as u64
}

#[derive(Default)]
struct MemberResult {
    /// A session that never read: its deliveries are not counted.
    stalled: bool,
    seen: Seen,
    /// Why the session ended before the run did.
    disconnected: Option<String>,
    unacked: u64,
    /// Scheduled messages still queued for this sender when it stopped.
    not_sent: u64,
    rejected: BTreeMap<String, u64>,
}

/// Seqs acked to this room's senders.
#[derive(Default)]
struct Ledger {
    acked: Mutex<Vec<u64>>,
}

pub async fn run_chat(
    target: &Target,
    a: &ChatArgs,
    stop: watch::Receiver<bool>,
) -> Result<Report, LoadError> {
    let params = json!({"conversations": a.rooms.conversations, "members": a.rooms.members, "senders": a.rooms.senders,
        "rate": a.rate, "size": a.rooms.size, "duration": a.rooms.duration, "drain": a.rooms.drain});
    let mut report = Report::new("chat", &target.base, params);
    let outcome = run(
        target,
        &a.common,
        &a.rooms,
        Some(f64::from(a.rate)),
        0,
        0,
        stop,
        None,
    )
    .await?;
    outcome.into_report(&mut report);
    Ok(report)
}

pub async fn run_saturate(
    target: &Target,
    a: &SaturateArgs,
    stop: watch::Receiver<bool>,
) -> Result<Report, LoadError> {
    let params = json!({"conversations": a.rooms.conversations, "members": a.rooms.members, "senders": a.rooms.senders,
        "window": a.window, "stalled": a.stalled, "size": a.rooms.size, "duration": a.rooms.duration, "drain": a.rooms.drain});
    let mut report = Report::new("saturate", &target.base, params);
    let outcome = run(
        target, &a.common, &a.rooms, None, a.window, a.stalled, stop, None,
    )
    .await?;
    let stalled_total = (a.stalled * a.rooms.conversations) as u64;
    let closed_slow = outcome.closed_slow();
    outcome.into_report(&mut report);
    // The rate it sustained: the mean of the full seconds of sending, the
    // first (ramp-up) left out.
    let sending: Vec<f64> = report
        .timeline
        .iter()
        // The ticker starts a second before sending: point t = 2 is the
        // first second of sending (the ramp-up), t = 1 + duration the last.
        .filter(|p| p.t >= 3.0 && p.t <= 1.0 + a.rooms.duration as f64)
        .map(|p| p.delivered_per_sec)
        .collect();
    if !sending.is_empty() {
        let mean = sending.iter().sum::<f64>() / sending.len() as f64;
        report.figure(
            "sustained deliveries/s (ramp-up second excluded)",
            mean,
            "/s",
        );
        report.figure(
            "best second",
            sending.iter().copied().fold(0.0, f64::max),
            "deliveries",
        );
    }
    if stalled_total > 0 {
        // A figure, not a check: a stalled session is closed only once the
        // kernel's socket buffers (several MB each way on loopback) and its
        // outbound queue are full, which a short run may not reach.
        report.figure("stalled sessions", stalled_total as f64, "");
        report.figure("stalled sessions the server closed", closed_slow as f64, "");
    }
    Ok(report)
}

pub async fn run_chaos(
    target: &Target,
    a: &ChaosArgs,
    stop: watch::Receiver<bool>,
) -> Result<Report, LoadError> {
    let c = &a.chat;
    let params = json!({"conversations": c.rooms.conversations, "members": c.rooms.members, "senders": c.rooms.senders,
        "rate": c.rate, "size": c.rooms.size, "duration": c.rooms.duration, "drain": c.rooms.drain,
        "faultEveryMs": a.fault_every_ms, "faultTarget": a.fault_target, "faultKind": a.fault_kind});
    let mut report = Report::new("chaos", &target.base, params);
    let admin = admin_token(target, &a.admin_user, &a.admin_password).await?;
    // Check the server takes faults before spending minutes on set-up.
    probe_faults(target, &admin).await?;
    let restarts = "parley_actor_restarts_total";
    let before = target.metric(&[restarts]).await?[0].unwrap_or(0.0);
    let faults = Faults {
        token: admin,
        every: Duration::from_millis(a.fault_every_ms),
        body: json!({"target": a.fault_target, "kind": a.fault_kind, "count": 1, "delayMs": 200}),
    };
    let outcome = run(
        target,
        &c.common,
        &c.rooms,
        Some(f64::from(c.rate)),
        0,
        0,
        stop,
        Some(faults),
    )
    .await?;
    let after = target.metric(&[restarts]).await?[0].unwrap_or(0.0);
    let (injected, refused) = outcome.faults;
    outcome.into_report(&mut report);
    report.figure("faults injected", injected as f64, "");
    report.figure("fault injections refused", refused as f64, "");
    report.figure("actor restarts on the server", after - before, "");
    report.check(
        "faults were injected",
        injected > 0,
        format!("{injected} injected, {refused} refused"),
    );
    Ok(report)
}

/// Logs in as the admin account. It cannot be registered: the server's
/// operator makes it on the host (SPEC v2 "Admin rights").
async fn admin_token(target: &Target, user: &str, password: &str) -> Result<String, LoadError> {
    target.login(user, password).await.map_err(|e| {
        LoadError::Setup(format!(
            "cannot log in as the admin {user} ({e}): make it on the server's host with \
             `parley admin create-user {user}` (the name in auth.admins) and pass --admin-password"
        ))
    })
}

/// A fault with count 0 changes nothing; its answer says whether faults
/// are enabled and the account is an admin.
async fn probe_faults(target: &Target, token: &str) -> Result<(), LoadError> {
    let (status, body) = target
        .post(
            "/admin/faults",
            token,
            json!({"target": "conversation", "kind": "delay", "count": 0, "delayMs": 1}),
        )
        .await?;
    match status {
        200..=299 | 400 => Ok(()),
        _ => Err(LoadError::Setup(format!(
            "POST /admin/faults answered {status} {body}: the server needs faults.enabled = true and the admin account in auth.admins"
        ))),
    }
}

struct Faults {
    token: String,
    every: Duration,
    body: serde_json::Value,
}

struct Outcome {
    /// The server's (resident bytes, CPU seconds) before, at the end of
    /// sending and after the drain, when its /metrics has them.
    server: [Option<(f64, f64)>; 3],
    /// Paced messages never sent: their sender had ~1,000 due already.
    behind: u64,
    interrupted: bool,
    rec: Arc<Recorder>,
    results: Vec<(usize, MemberResult)>,
    ledgers: Vec<Arc<Ledger>>,
    members_per_room: Vec<usize>,
    /// Each room's conversation id.
    room_ids: Vec<String>,
    /// Deliveries counted between the start and the end of sending.
    delivered_in_window: u64,
    sent: u64,
    window_secs: f64,
    faults: (u64, u64),
}

#[allow(clippy::too_many_arguments)]
async fn run(
    target: &Target,
    common: &CommonArgs,
    shape: &RoomArgs,
    rate: Option<f64>,
    window: usize,
    stalled: usize,
    mut stop: watch::Receiver<bool>,
    faults: Option<Faults>,
) -> Result<Outcome, LoadError> {
    let prefix = setup::prefix(common);
    let rooms: Vec<Room> =
        setup::rooms(target, common, &prefix, shape.conversations, shape.members).await?;
    let tokens: Vec<&str> = rooms
        .iter()
        .flat_map(|r| r.members.iter().map(|(_, t)| t.as_str()))
        .collect();
    let sockets = setup::connect_all(target, common, &tokens).await?;
    let rec = Recorder::new();
    rec.counters
        .connected
        .store(sockets.len() as u64, Ordering::Relaxed);
    let start = Instant::now() + Duration::from_secs(1);
    let end = start + secs(shape.duration);
    let (phase_tx, phase_rx) = watch::channel(Phase::Running);
    let ledgers: Vec<Arc<Ledger>> = rooms.iter().map(|_| Arc::new(Ledger::default())).collect();
    let mut tasks = Vec::with_capacity(sockets.len());
    let mut sockets = sockets.into_iter();
    let mut schedule = Vec::new();
    for (r, room) in rooms.iter().enumerate() {
        for m in 0..room.members.len() {
            let Some(ws) = sockets.next() else { break };
            let plan = (m < shape.senders).then(|| {
                let pace = match rate {
                    Some(_) => {
                        let (tx, rx) = mpsc::channel(PACED_IN_FLIGHT);
                        schedule.push(tx);
                        Pace::Paced(rx)
                    }
                    None => Pace::Window { window, start, end },
                };
                SendPlan {
                    pace,
                    size: shape.size,
                }
            });
            let role = match plan {
                Some(p) => Role::Sender(p),
                None if m < shape.senders + stalled => Role::Stalled,
                None => Role::Reader,
            };
            let task = member(
                ws,
                room.id.clone(),
                role,
                ledgers[r].clone(),
                rec.clone(),
                phase_rx.clone(),
            );
            tasks.push((r, tokio::spawn(task)));
        }
    }
    // Interleave senders of different rooms, so consecutive messages go to
    // different conversations.
    let per_room = shape.senders;
    let mut interleaved = Vec::with_capacity(schedule.len());
    for i in 0..per_room {
        for room in 0..rooms.len() {
            if let Some(tx) = schedule.get(room * per_room + i) {
                interleaved.push(tx.clone());
            }
        }
    }
    drop(schedule);
    let stop_pacer = Arc::new(AtomicBool::new(false));
    let paced = rate.map(|r| pacer(interleaved, r, start, end, rec.clone(), stop_pacer.clone()));
    let label = if rate.is_some() { "chat" } else { "saturate" };
    let ticker = rec.ticker(
        label.to_string(),
        secs(shape.duration) + Duration::from_secs(1),
        common.quiet,
    );
    let injector =
        faults.map(|f| tokio::spawn(inject(target.base.clone(), f, start, phase_rx.clone())));

    let interrupted_early = stopped_before(&mut stop, start.into()).await;
    let at_start = rec.counters.delivered.load(Ordering::Relaxed);
    let server_before = target.server_stats().await.ok();
    let interrupted = interrupted_early || stopped_before(&mut stop, end.into()).await;
    let window_secs = start.elapsed().as_secs_f64().min(shape.duration as f64);
    let delivered_in_window = rec.counters.delivered.load(Ordering::Relaxed) - at_start;
    let server_sending = target.server_stats().await.ok();
    stop_pacer.store(true, Ordering::Relaxed);
    let _ = phase_tx.send(Phase::StopSending);
    let behind = match paced {
        Some(p) => tokio::task::spawn_blocking(move || p.join().unwrap_or(0))
            .await
            .unwrap_or(0),
        None => 0,
    };
    let fault_counts = match injector {
        Some(j) => j.await.unwrap_or((0, 0)),
        None => (0, 0),
    };
    // Drain: wait until every sent message is answered and every acked one
    // delivered to every member, or the drain time is up.
    // Stalled members count nothing, so they are not waited for.
    let members_per_room: Vec<usize> = rooms
        .iter()
        .map(|r| r.members.len().saturating_sub(stalled))
        .collect();
    let drain_end = Instant::now()
        + secs(if interrupted {
            shape.drain.min(3)
        } else {
            shape.drain
        });
    loop {
        let c = &rec.counters;
        let answered = c.acked.load(Ordering::Relaxed) + c.errors.load(Ordering::Relaxed);
        let expected: u64 = ledgers
            .iter()
            .zip(&members_per_room)
            .map(|(l, m)| l.acked.lock().len() as u64 * *m as u64)
            .sum();
        let done = answered >= c.sent.load(Ordering::Relaxed)
            && c.delivered.load(Ordering::Relaxed) >= expected;
        if done || Instant::now() >= drain_end {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = phase_tx.send(Phase::Finish);
    let (rooms_of, handles): (Vec<usize>, Vec<_>) = tasks.into_iter().unzip();
    let stuck = || MemberResult {
        disconnected: Some("stuck writing to the server".into()),
        ..MemberResult::default()
    };
    let results: Vec<(usize, MemberResult)> = rooms_of
        .into_iter()
        .zip(join_within(handles, stuck).await)
        .collect();
    ticker.abort();
    end_progress(common.quiet);
    let server_after = target.server_stats().await.ok();
    Ok(Outcome {
        server: [server_before, server_sending, server_after],
        behind,
        interrupted,
        sent: rec.counters.sent.load(Ordering::Relaxed),
        rec,
        results,
        ledgers,
        members_per_room,
        room_ids: rooms.iter().map(|r| r.id.clone()).collect(),
        delivered_in_window,
        window_secs,
        faults: fault_counts,
    })
}

impl Outcome {
    /// Stalled sessions the server closed: with 1008, or by dropping the
    /// connection when even the close frame found no room in the socket.
    fn closed_slow(&self) -> u64 {
        self.results
            .iter()
            .filter(|(_, m)| m.stalled && m.disconnected.is_some())
            .count() as u64
    }

    fn into_report(self, report: &mut Report) {
        report.interrupted = self.interrupted;
        let mut lost = 0u64;
        let mut lost_disconnected = 0u64;
        let mut not_sent = 0u64;
        let (mut dups, mut out_of_order, mut unacked, mut beyond, mut disconnected) =
            (0, 0, 0, 0, 0u64);
        let mut rejected: BTreeMap<String, u64> = BTreeMap::new();
        let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
        let acked: Vec<Vec<u64>> = self
            .ledgers
            .iter()
            .map(|l| l.acked.lock().clone())
            .collect();
        // Which acked seqs connected sessions missed (a few, for the report:
        // they say where to look in the server's log and traces).
        let mut missed_at: BTreeMap<(usize, u64), u64> = BTreeMap::new();
        for (room, m) in self.results.iter().filter(|(_, m)| !m.stalled) {
            let missing = missing(&acked[*room], &m.seen);
            match &m.disconnected {
                None if missing > 0 => {
                    lost += missing;
                    for &seq in acked[*room].iter().filter(|s| !m.seen.contains(**s)) {
                        if missed_at.len() < MISSED_LISTED || missed_at.contains_key(&(*room, seq))
                        {
                            *missed_at.entry((*room, seq)).or_default() += 1;
                        }
                    }
                }
                None => {}
                Some(why) => {
                    lost_disconnected += missing;
                    disconnected += 1;
                    *reasons.entry(why.clone()).or_default() += 1;
                }
            }
            dups += m.seen.duplicates;
            out_of_order += m.seen.out_of_order;
            beyond += m.seen.beyond;
            unacked += m.unacked;
            not_sent += m.not_sent;
            for (code, n) in &m.rejected {
                *rejected.entry(code.clone()).or_default() += n;
            }
        }
        let acked_total: u64 = acked.iter().map(|a| a.len() as u64).sum();
        let c = &self.rec.counters;
        let w = self.window_secs.max(0.001);
        report.figure("sessions", self.results.len() as f64, "");
        report.figure("messages sent", self.sent as f64, "");
        report.figure("messages acked", acked_total as f64, "");
        report.figure("acked messages/s", acked_total as f64 / w, "/s");
        report.figure("deliveries", c.delivered.load(Ordering::Relaxed) as f64, "");
        report.figure(
            "deliveries/s while sending",
            self.delivered_in_window as f64 / w,
            "/s",
        );
        report.figure(
            "expected deliveries (acked x members)",
            acked
                .iter()
                .zip(&self.members_per_room)
                .map(|(a, m)| (a.len() * m) as f64)
                .sum(),
            "",
        );
        report.figure(
            "lost (acked, not delivered to a connected session)",
            lost as f64,
            "",
        );
        report.figure("duplicated deliveries", dups as f64, "");
        report.figure("out-of-order deliveries", out_of_order as f64, "");
        report.figure("sent, never answered", unacked as f64, "");
        if not_sent > 0 {
            report.figure("due but not sent when sending stopped", not_sent as f64, "");
        }
        if self.behind > 0 {
            report.figure(
                "not sent: the sender was 1,000 messages behind",
                self.behind as f64,
                "",
            );
        }
        for (code, n) in &rejected {
            report.figure(&format!("sends refused: {code}"), *n as f64, "");
        }
        if disconnected > 0 {
            report.figure("sessions closed by the server", disconnected as f64, "");
            report.figure("missing at closed sessions", lost_disconnected as f64, "");
            for (why, n) in &reasons {
                report.figure(&format!("closed: {why}"), *n as f64, "");
            }
        }
        if let [Some((rss0, cpu0)), Some((_, cpu1)), Some((rss2, _))] = self.server {
            let mib = |b: f64| b / (1024.0 * 1024.0);
            report.figure(
                "server CPU while sending",
                (cpu1 - cpu0) / w * 100.0,
                "% of one core",
            );
            report.figure("server RSS before", mib(rss0), "MiB");
            report.figure("server RSS after", mib(rss2), "MiB");
        }
        report.latency = Some(self.rec.latency().summary());
        report.ack_latency = Some(self.rec.ack_latency().summary());
        report.timeline = self.rec.timeline();
        report.check(
            "no acked message lost",
            lost == 0,
            format!(
                "{lost} missing deliveries of {acked_total} acked messages{}",
                missed_at
                    .iter()
                    .map(|((room, seq), n)| {
                        let id = self.room_ids.get(*room).map_or("?", String::as_str);
                        format!("; seq {seq} of {id} missed at {n} sessions")
                    })
                    .collect::<String>()
            ),
        );
        report.check(
            "no duplicate",
            dups == 0,
            format!("{dups} duplicated deliveries"),
        );
        // A session the server closed (a slow consumer: the load generator
        // fell behind) missed the live stream; the run's rates then do not
        // describe delivery to every member.
        if !self.interrupted {
            report.check(
                "every send was answered (ack or error)",
                unacked == 0,
                format!("{unacked} sends without an answer"),
            );
        }
        report.check(
            "every reading session stayed connected",
            disconnected == 0,
            format!("{disconnected} closed by the server"),
        );
        report.check(
            "seq order",
            out_of_order == 0,
            format!("{out_of_order} deliveries below a seq already seen"),
        );
        if beyond > 0 {
            report.check(
                "seqs tracked",
                false,
                format!("{beyond} seqs above {MAX_SEQ} not tracked"),
            );
        }
    }
}

enum Role {
    Sender(SendPlan),
    Reader,
    /// Never reads until the run ends: a client that stopped reading.
    Stalled,
}

/// A session that stopped reading: after the run, whether the server
/// closed it (its close frame is behind whatever the socket still holds).
async fn stalled(ws: Ws, mut phase: watch::Receiver<Phase>) -> MemberResult {
    let _ = phase.wait_for(|p| *p == Phase::Finish).await;
    let (_, mut rx) = ws.split();
    let mut out = MemberResult::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, rx.next()).await {
            Ok(Some(Ok(Message::Close(c)))) => {
                out.disconnected = Some(close_reason(c));
                break;
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => {
                out.disconnected = Some(e.to_string());
                break;
            }
            Ok(None) => {
                out.disconnected = Some("connection closed".into());
                break;
            }
            Err(_) => break,
        }
    }
    out.stalled = true;
    out
}

/// One session: reads every frame (deliveries, acks, errors) and, for a
/// sender, sends on its plan until told to stop.
async fn member(
    ws: Ws,
    conversation: String,
    role: Role,
    ledger: Arc<Ledger>,
    rec: Arc<Recorder>,
    phase: watch::Receiver<Phase>,
) -> MemberResult {
    let plan = match role {
        Role::Stalled => return stalled(ws, phase).await,
        Role::Sender(p) => Some(p),
        Role::Reader => None,
    };
    active(ws, conversation, plan, ledger, rec, phase).await
}

async fn active(
    ws: Ws,
    conversation: String,
    plan: Option<SendPlan>,
    ledger: Arc<Ledger>,
    rec: Arc<Recorder>,
    mut phase: watch::Receiver<Phase>,
) -> MemberResult {
    let (mut tx, mut rx) = ws.split();
    let mut out = MemberResult::default();
    let mut batch = Batch::default();
    let mut next = 0u64;
    let mut flight = Flight::default();
    let mut sending = plan.is_some();
    let plan_is_sender = plan.is_some();
    let (mut pace, size) = match plan {
        Some(p) => (Some(p.pace), p.size),
        None => (None, 0),
    };
    let limit = match &pace {
        Some(Pace::Window { window, .. }) => *window,
        _ => PACED_IN_FLIGHT,
    };
    let padding = "x".repeat(size.saturating_sub(28));
    let tag: u32 = rand::random();
    if plan_is_sender {
        flight.tag = format!("{tag:08x}");
    }
    loop {
        if let Some(Pace::Window { end, .. }) = &pace {
            if Instant::now() >= *end {
                sending = false;
            }
        }
        let may_send = sending && flight.in_flight < limit;
        tokio::select! {
            biased;
            changed = phase.changed() => {
                let p = *phase.borrow();
                if changed.is_err() || p == Phase::Finish {
                    break;
                }
                sending = false;
            }
            frame = rx.next() => match frame {
                Some(Ok(Message::Text(t))) => on_frame(&t, &mut out, &mut flight, &ledger, &rec, &mut batch),
                Some(Ok(Message::Close(c))) => {
                    out.disconnected = Some(close_reason(c));
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => { out.disconnected = Some(e.to_string()); break; }
                None => { out.disconnected = Some("connection closed".into()); break; }
            },
            stamp = async { match pace.as_mut() { Some(p) => p.due(&rec).await, None => None } }, if may_send => {
                let Some(mut stamp) = stamp else {
                    // The schedule is over.
                    sending = false;
                    continue;
                };
                // Everything due by now, as one write.
                loop {
                    let frame = format!(
                        r#"{{"type":"send","conversationId":"{conversation}","text":"{stamp:020}{tag:08x}{padding}","clientMsgId":"{tag:x}-{next}-{stamp}","ref":"{next}"}}"#
                    );
                    if tx.feed(Message::text(frame)).await.is_err() {
                        break;
                    }
                    next += 1;
                    flight.in_flight += 1;
                    flight.sent += 1;
                    rec.counters.sent.fetch_add(1, Ordering::Relaxed);
                    match pace.as_mut().and_then(|p| if flight.in_flight < limit { p.more(&rec) } else { None }) {
                        Some(s) => stamp = s,
                        None => break,
                    }
                }
                if tx.flush().await.is_err() {
                    out.disconnected = Some("write failed".into());
                    break;
                }
            }
        }
    }
    batch.finish(&rec);
    if out.disconnected.is_some() {
        rec.counters.connected.fetch_sub(1, Ordering::Relaxed);
    }
    out.unacked = flight.sent.saturating_sub(flight.answered);
    // Stamps already due but never sent (the run stopped, or the sender
    // was at its window): counted, so they do not vanish from the figures.
    if let Some(Pace::Paced(rx)) = &pace {
        out.not_sent = rx.len() as u64;
    }
    let _ = tx.close().await;
    out
}

/// A sender's count of its messages: sent, answered (ack or error), and in
/// flight (sent, not yet delivered back to its own session or refused).
#[derive(Default)]
struct Flight {
    /// This sender's tag, written after the stamp in its texts.
    tag: String,
    sent: u64,
    answered: u64,
    in_flight: usize,
}

fn on_frame(
    t: &str,
    out: &mut MemberResult,
    flight: &mut Flight,
    ledger: &Ledger,
    rec: &Recorder,
    batch: &mut Batch,
) {
    match scan::kind(t) {
        Some("message") => {
            rec.counters.delivered.fetch_add(1, Ordering::Relaxed);
            if let Some(seq) = scan::number(t, "seq") {
                out.seen.insert(seq);
            }
            let text = scan::string(t, "text").unwrap_or("");
            if let Some(stamp) = text.get(..20).and_then(|s| s.parse::<u64>().ok()) {
                batch.delivery(rec, rec.now_micros().saturating_sub(stamp));
            }
            // One of ours, back at our own session (after its ack): it no
            // longer counts against the window. Counting to delivery, not
            // to the ack, keeps senders from outrunning the readers: acks
            // come at commit, deliveries as fast as sessions are served.
            if !flight.tag.is_empty() && text.get(20..28) == Some(flight.tag.as_str()) {
                flight.in_flight = flight.in_flight.saturating_sub(1);
            }
        }
        Some("ack") => {
            flight.answered += 1;
            rec.counters.acked.fetch_add(1, Ordering::Relaxed);
            if let Some(seq) = scan::number(t, "seq") {
                ledger.acked.lock().push(seq);
            }
            let stamp = scan::string(t, "clientMsgId")
                .and_then(|id| id.rsplit('-').next())
                .and_then(|s| s.parse::<u64>().ok());
            if let Some(stamp) = stamp {
                batch.ack(rec, rec.now_micros().saturating_sub(stamp));
            }
        }
        // Only answers to our sends carry a `ref`.
        Some("error") if scan::string(t, "ref").is_some() => {
            flight.answered += 1;
            flight.in_flight = flight.in_flight.saturating_sub(1);
            rec.counters.errors.fetch_add(1, Ordering::Relaxed);
            let code = scan::string(t, "code").unwrap_or("unknown").to_string();
            *out.rejected.entry(code).or_default() += 1;
        }
        _ => {}
    }
}

/// Injects one fault every `every` while messages are being sent; returns
/// (accepted, refused).
async fn inject(
    base: String,
    f: Faults,
    start: Instant,
    mut phase: watch::Receiver<Phase>,
) -> (u64, u64) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    let (mut ok, mut refused) = (0, 0);
    let mut tick = tokio::time::interval_at(start.into(), f.every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = phase.wait_for(|p| *p != Phase::Running) => return (ok, refused),
        }
        let res = http
            .post(format!("{base}/admin/faults"))
            .bearer_auth(&f.token)
            .json(&f.body)
            .send()
            .await;
        match res {
            Ok(r) if r.status().is_success() => ok += 1,
            _ => refused += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{missing, Seen};

    #[test]
    fn seen_counts_gaps_duplicates_and_disorder() {
        let mut seen = Seen::default();
        for seq in [1, 2, 4, 3, 4, 70, 0] {
            seen.insert(seq);
        }
        assert_eq!(seen.duplicates, 1, "4 twice");
        assert_eq!(seen.out_of_order, 1, "3 after 4");
        assert_eq!(seen.beyond, 1, "seq 0 is not a seq");
        assert!(seen.contains(70) && !seen.contains(5) && !seen.contains(1000));
        assert_eq!(
            missing(&[1, 2, 3, 4, 5, 6, 70], &seen),
            2,
            "5 and 6 never arrived"
        );
        assert_eq!(missing(&[], &seen), 0);
    }
}
