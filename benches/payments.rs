//! Payments: completed payments per second against the in-process simulated
//! provider (every one a full saga: hold, charge over HTTP through the
//! breaker, credit, payment message), and the time the breaker actor takes
//! to reject a call while open.
//!
//! `cargo bench --bench payments` (optionally `-- PAYMENTS`).

mod common;

use std::time::{Duration, Instant};

use actix::Actor;
use parley::actors::breaker::{BreakerActor, Call, CallResult, Force};
use parley::domain::TraceContext;
use parley::resilience::{BreakerConfig, BreakerState, WindowKind};
use parley::supervision::faults::Faults;
use parley::supervision::{Envelope, Responder};
use serde_json::{json, Value};

fn main() {
    let total: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2000);
    reject_latency();
    completed_per_second(total);
}

fn reject_latency() {
    actix_rt::System::new().block_on(async {
        let config = BreakerConfig {
            window: WindowKind::Count(100),
            failure_rate_threshold: 50.0,
            slow_call_rate_threshold: 100.0,
            slow_call_duration: Duration::from_secs(5),
            minimum_calls: 10,
            wait_open: Duration::from_secs(60),
            wait_multiplier: 2.0,
            max_wait: Duration::from_secs(60),
            jitter: 0.0,
            half_open_calls: 1,
        };
        let faults = std::sync::Arc::new(Faults::new(false));
        let breaker = BreakerActor::new("bench", config, Duration::from_secs(1), faults).start();
        breaker.do_send(Envelope::new(TraceContext::random(), Force(BreakerState::ForcedOpen)));
        let mut samples = Vec::with_capacity(20_000);
        for _ in 0..20_000 {
            let started = Instant::now();
            let (reply, answer) = Responder::<CallResult<()>>::oneshot();
            let call = Call {
                call: Box::pin(async { Ok(()) }),
                reply,
            };
            breaker.do_send(Envelope::new(TraceContext::random(), call));
            let rejected = answer.await.expect("answer");
            assert!(rejected.is_err());
            samples.push(started.elapsed().as_secs_f64() * 1e6);
        }
        samples.sort_by(f64::total_cmp);
        println!(
            "breaker open, call -> rejection through the actor, 20000 calls: p50 {:.1} us, p99 {:.1} us, max {:.1} us",
            common::percentile(&samples, 50.0),
            common::percentile(&samples, 99.0),
            samples.last().copied().unwrap_or(f64::NAN)
        );
    });
}

fn completed_per_second(total: usize) {
    let server = common::start(|s| {
        s.auth
            .admins
            .insert(parley::domain::Username::parse("root").expect("name"));
    });
    let base = server.base();
    let rt = common::client_runtime();
    rt.block_on(async move {
        let http = reqwest::Client::new();
        let root = common::token(&http, &base, "root").await;
        let payers = 20;
        let mut tokens = Vec::new();
        for i in 0..payers {
            tokens.push(common::token(&http, &base, &format!("payer_{i}")).await);
        }
        common::token(&http, &base, "shop").await;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for (i, token) in tokens.into_iter().enumerate() {
            let (http, base) = (http.clone(), base.clone());
            let per = total / payers;
            tasks.push(tokio::spawn(async move {
                for k in 0..per {
                    let res = http
                        .post(format!("{base}/api/payments"))
                        .bearer_auth(&token)
                        .json(&json!({"to": "shop", "amount": 1, "idempotencyKey": format!("{i}-{k}")}))
                        .send()
                        .await
                        .expect("pay");
                    assert_eq!(res.status().as_u16(), 202);
                }
            }));
        }
        for t in tasks {
            t.await.expect("payer");
        }
        let accepted = started.elapsed();
        loop {
            let pending: Value = http
                .get(format!("{base}/admin/payments?status=pending&limit=1"))
                .bearer_auth(&root)
                .send()
                .await
                .expect("list")
                .json()
                .await
                .expect("json");
            if pending["items"].as_array().is_some_and(|a| a.is_empty()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let all = started.elapsed();
        let done = (total / payers) * payers;
        println!(
            "{done} payments (20 payers, HTTP), all accepted in {:.2} s, all completed in {:.2} s: {:.0} completed payments/s",
            accepted.as_secs_f64(),
            all.as_secs_f64(),
            done as f64 / all.as_secs_f64()
        );
    });
    server.stop();
}
