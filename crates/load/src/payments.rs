//! `payments`: N payers paying each other at a fixed total rate over their
//! WebSocket sessions. Counts outcomes, measures the time from a payment's
//! scheduled start to its final status, and checks that the payers' money
//! adds up to the same total afterwards.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use super::recorder::{end_progress, Batch, Recorder};
use super::report::Report;
use super::setup;
use super::target::{Target, Ws};
use super::{join_within, scan, secs, stopped_before, LoadError, PaymentArgs};

/// Payments one payer keeps unfinished at most; beyond, due ones wait.
const MAX_PENDING: usize = 1000;

#[derive(Default)]
struct PayerResult {
    outcomes: BTreeMap<String, u64>,
    pending: u64,
    disconnected: bool,
}

pub async fn run(
    target: &Target,
    a: &PaymentArgs,
    mut stop: watch::Receiver<bool>,
) -> Result<Report, LoadError> {
    let params = json!({"payers": a.payers, "rate": a.rate, "duration": a.duration, "amount": a.amount, "drain": a.drain});
    let mut report = Report::new("payments", &target.base, params);
    let prefix = setup::prefix(&a.common);
    let names: Vec<String> = (0..a.payers).map(|i| format!("{prefix}_p{i}")).collect();
    let tokens = setup::accounts(target, &a.common, &names).await?;
    let before = total_balance(target, &tokens).await?;
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let sockets = setup::connect_all(target, &a.common, &refs).await?;
    let rec = Recorder::new();
    rec.counters
        .connected
        .store(sockets.len() as u64, Ordering::Relaxed);
    let start = Instant::now() + Duration::from_secs(1);
    let end = start + secs(a.duration);
    let per_payer = f64::from(a.rate) / a.payers as f64;
    let nonce: u32 = rand::random();
    let (phase_tx, phase_rx) = watch::channel(0u8);
    let names = Arc::new(names);
    let tasks: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, ws)| {
            // Payer i starts i/rate in, so payments are evenly spaced.
            let start = start + Duration::from_secs_f64(i as f64 / f64::from(a.rate));
            let plan = Plan {
                nonce,
                me: i,
                per_sec: per_payer,
                start,
                end,
                amount: a.amount,
                prefix: prefix.clone(),
            };
            tokio::spawn(payer(
                ws,
                plan,
                names.clone(),
                rec.clone(),
                phase_rx.clone(),
            ))
        })
        .collect();
    let ticker = rec.ticker("payments".into(), secs(a.duration + 1), a.common.quiet);
    let interrupted = stopped_before(&mut stop, end.into()).await;
    let paying_secs = start
        .elapsed()
        .as_secs_f64()
        .clamp(0.001, a.duration as f64);
    let _ = phase_tx.send(1);
    // Drain: until every payment has a final status, or the drain time is up.
    let drain_end = Instant::now() + secs(if interrupted { a.drain.min(3) } else { a.drain });
    while Instant::now() < drain_end {
        let c = &rec.counters;
        if c.delivered.load(Ordering::Relaxed) + c.errors.load(Ordering::Relaxed)
            >= c.sent.load(Ordering::Relaxed)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = phase_tx.send(2);
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let (mut pending, mut disconnected) = (0, 0);
    let stuck = || PayerResult {
        disconnected: true,
        ..PayerResult::default()
    };
    for r in join_within(tasks, stuck).await {
        for (k, n) in r.outcomes {
            *outcomes.entry(k).or_default() += n;
        }
        pending += r.pending;
        disconnected += u64::from(r.disconnected);
    }
    ticker.abort();
    end_progress(a.common.quiet);
    let after = total_balance(target, &tokens).await?;

    report.interrupted = interrupted;
    let sent = rec.counters.sent.load(Ordering::Relaxed);
    report.figure("payers", a.payers as f64, "");
    report.figure("payments requested", sent as f64, "");
    report.figure("requested/s", sent as f64 / paying_secs, "/s");
    for (k, n) in &outcomes {
        report.figure(k, *n as f64, "");
    }
    report.figure("still pending after the drain", pending as f64, "");
    report.figure("sessions closed by the server", disconnected as f64, "");
    report.figure("payers' total balance before", before as f64, "minor units");
    report.figure("payers' total balance after", after as f64, "minor units");
    report.latency = Some(rec.latency().summary());
    report.ack_latency = Some(rec.ack_latency().summary());
    report.timeline = rec.timeline();
    report.check(
        "money conserved among the payers",
        before == after,
        format!("{before} before, {after} after"),
    );
    report.check(
        "every payment finished",
        pending == 0,
        format!("{pending} pending"),
    );
    Ok(report)
}

async fn total_balance(target: &Target, tokens: &[String]) -> Result<i64, LoadError> {
    let mut total = 0;
    for t in tokens {
        let me = target.get("/api/me", t).await?;
        total += me["balance"]
            .as_i64()
            .ok_or_else(|| LoadError::Setup(format!("no balance in {me}")))?;
    }
    Ok(total)
}

struct Plan {
    /// Random per run: a reused --prefix must not replay an earlier run's payments.
    nonce: u32,
    me: usize,
    per_sec: f64,
    start: Instant,
    end: Instant,
    amount: i64,
    prefix: String,
}

/// One payer: pays a random other payer on its schedule, follows its
/// payments to their final status.
async fn payer(
    ws: Ws,
    p: Plan,
    names: Arc<Vec<String>>,
    rec: Arc<Recorder>,
    mut phase: watch::Receiver<u8>,
) -> PayerResult {
    let (mut tx, mut rx) = ws.split();
    let mut out = PayerResult::default();
    let mut batch = Batch::default();
    // paymentId (or `ref` until the id is known) -> scheduled start (µs).
    let mut open: HashMap<String, u64> = HashMap::new();
    let mut next = 0u64;
    let mut sending = true;
    loop {
        let due = p.start + Duration::from_secs_f64(next as f64 / p.per_sec);
        if due >= p.end {
            sending = false;
        }
        let may_send = sending && open.len() < MAX_PENDING;
        tokio::select! {
            biased;
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow() == 2 { break; }
                sending = false;
            }
            frame = rx.next() => match frame {
                Some(Ok(Message::Text(t))) => on_frame(&t, &mut open, &mut out, &rec, &mut batch),
                Some(Ok(_)) => {}
                _ => { out.disconnected = true; break; }
            },
            _ = tokio::time::sleep_until(due.into()), if may_send => {
                let mut to = rand::random::<usize>() % (names.len() - 1);
                if to >= p.me { to += 1; }
                let frame = json!({"type": "pay", "to": names[to], "amount": p.amount,
                    "idempotencyKey": format!("{}-{:08x}-{}-{next}", p.prefix, p.nonce, p.me), "ref": next.to_string()});
                if tx.send(Message::text(frame.to_string())).await.is_err() {
                    out.disconnected = true;
                    break;
                }
                open.insert(format!("ref:{next}"), rec.micros(due));
                rec.counters.sent.fetch_add(1, Ordering::Relaxed);
                next += 1;
            }
        }
    }
    batch.finish(&rec);
    if out.disconnected {
        rec.counters.connected.fetch_sub(1, Ordering::Relaxed);
    }
    out.pending = open.len() as u64;
    let _ = tx.close().await;
    out
}

fn on_frame(
    t: &str,
    open: &mut HashMap<String, u64>,
    out: &mut PayerResult,
    rec: &Recorder,
    batch: &mut Batch,
) {
    match scan::kind(t) {
        Some("payment") => {
            let Some(id) = scan::string(t, "paymentId") else {
                return;
            };
            // The first answer to our `pay` carries its ref: from then on
            // the payment is followed by id.
            if let Some(r) = scan::string(t, "ref") {
                if let Some(at) = open.remove(&format!("ref:{r}")) {
                    rec.counters.acked.fetch_add(1, Ordering::Relaxed);
                    batch.ack(rec, rec.now_micros().saturating_sub(at));
                    open.insert(id.to_string(), at);
                }
            }
            let status = scan::string(t, "status").unwrap_or("");
            if status == "pending" {
                return;
            }
            // Payments to us, or already settled, are not ours to count.
            let Some(at) = open.remove(id) else { return };
            rec.counters.delivered.fetch_add(1, Ordering::Relaxed);
            batch.delivery(rec, rec.now_micros().saturating_sub(at));
            let key = match scan::string(t, "reason") {
                Some(reason) if status != "completed" => format!("{status}: {reason}"),
                _ => status.to_string(),
            };
            *out.outcomes.entry(key).or_default() += 1;
        }
        Some("error") => {
            if let Some(r) = scan::string(t, "ref") {
                if open.remove(&format!("ref:{r}")).is_some() {
                    rec.counters.errors.fetch_add(1, Ordering::Relaxed);
                    let code = scan::string(t, "code").unwrap_or("unknown");
                    *out.outcomes.entry(format!("refused: {code}")).or_default() += 1;
                }
            }
        }
        _ => {}
    }
}
