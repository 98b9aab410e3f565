//! `idle`: N sessions, each a member of a conversation of M members,
//! connected and doing nothing but answer the server's pings. Reports the
//! server's resident memory per session (from its `/metrics`, before and
//! after connecting) and its CPU while the sessions idle.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use super::recorder::{end_progress, Recorder};
use super::report::Report;
use super::setup;
use super::target::{Target, Ws};
use super::{secs, stopped_before, IdleArgs, LoadError};

pub async fn run(
    target: &Target,
    a: &IdleArgs,
    mut stop: watch::Receiver<bool>,
) -> Result<Report, LoadError> {
    let params = json!({"sessions": a.sessions, "members": a.members, "sessionsPerUser": a.sessions_per_user,
        "duration": a.duration, "settle": a.settle});
    let mut report = Report::new("idle", &target.base, params);
    let users = a.sessions.div_ceil(a.sessions_per_user);
    let conversations = users.div_ceil(a.members);
    let prefix = setup::prefix(&a.common);
    let rooms = setup::rooms(target, &a.common, &prefix, conversations, a.members).await?;
    let tokens: Vec<&str> = rooms
        .iter()
        .flat_map(|r| r.members.iter().map(|(_, t)| t.as_str()))
        .take(users)
        .flat_map(|t| std::iter::repeat_n(t, a.sessions_per_user))
        .take(a.sessions)
        .collect();
    let (rss_before, _) = target.server_stats().await?;
    let client_before = parley_procstat::read().unwrap_or_default();
    let began = Instant::now();
    let sockets = setup::connect_all(target, &a.common, &tokens).await?;
    let connect_secs = began.elapsed().as_secs_f64();
    let rec = Recorder::new();
    rec.counters
        .connected
        .store(sockets.len() as u64, Ordering::Relaxed);
    let ticker = rec.ticker("idle".into(), secs(a.settle + a.duration), a.common.quiet);
    let (finish_tx, finish_rx) = watch::channel(false);
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|ws| tokio::spawn(hold(ws, rec.clone(), finish_rx.clone())))
        .collect();
    let settled = stopped_before(&mut stop, (Instant::now() + secs(a.settle)).into()).await;
    let (rss_connected, cpu_start) = target.server_stats().await?;
    let idle_from = Instant::now();
    let interrupted =
        settled || stopped_before(&mut stop, (idle_from + secs(a.duration)).into()).await;
    let (rss_end, cpu_end) = target.server_stats().await?;
    let idle_secs = idle_from.elapsed().as_secs_f64();
    let client_after = parley_procstat::read().unwrap_or_default();
    let still_open = rec.counters.connected.load(Ordering::Relaxed);
    let _ = finish_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    ticker.abort();
    end_progress(a.common.quiet);

    let n = a.sessions as f64;
    let kb = |b: f64| b / 1024.0;
    report.interrupted = interrupted;
    report.figure("sessions", n, "");
    report.figure("accounts", users as f64, "");
    report.figure("connect rate", n / connect_secs.max(0.001), "sessions/s");
    report.figure("server RSS before", kb(rss_before) / 1024.0, "MiB");
    report.figure("server RSS connected", kb(rss_connected) / 1024.0, "MiB");
    report.figure("server RSS after idling", kb(rss_end) / 1024.0, "MiB");
    report.figure(
        "server memory per session",
        kb(rss_connected - rss_before) / n,
        "KiB",
    );
    report.figure(
        "server idle CPU",
        (cpu_end - cpu_start) / idle_secs.max(0.001) * 100.0,
        "% of one core",
    );
    report.figure("idle window", idle_secs, "s");
    report.figure(
        "load tool memory per session",
        kb((client_after.resident_bytes as f64) - (client_before.resident_bytes as f64)) / n,
        "KiB",
    );
    report.timeline = rec.timeline();
    report.check(
        "every session stayed open",
        still_open == a.sessions as u64,
        format!("{still_open} of {} open at the end", a.sessions),
    );
    Ok(report)
}

/// Keeps one session open, reading (so pings are answered) until told to finish.
async fn hold(ws: Ws, rec: Arc<Recorder>, mut finish: watch::Receiver<bool>) {
    let (_tx, mut rx) = ws.split();
    loop {
        tokio::select! {
            _ = finish.wait_for(|f| *f) => break,
            frame = rx.next() => match frame {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    rec.counters.connected.fetch_sub(1, Ordering::Relaxed);
                    return;
                }
                Some(Ok(_)) => {}
            }
        }
    }
    // Closing 20,000 sockets at once is work the report does not need.
    tokio::time::sleep(Duration::ZERO).await;
}
