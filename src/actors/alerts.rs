//! The alerts actor: every second it evaluates each rule over the per-second
//! series and, on each change of state, logs it, sets `parley_alerts_firing`
//! and posts it to the webhook (when configured) through the webhook's own
//! circuit breaker, retried a few times.

use std::time::Duration;

use actix::prelude::*;
use serde_json::json;

use crate::actors::breaker::{BreakerActor, Call, CallError};
use crate::alerts::{Alert, AlertState, Change, Rule};
use crate::cause::Cause;
use crate::domain::TraceContext;
use crate::supervision::{Envelope, Msg, Responder};

/// Webhook deliveries tried per change.
const WEBHOOK_TRIES: u32 = 3;

pub struct AlertsStatus;

impl Msg for AlertsStatus {
    type Reply = Vec<serde_json::Value>;
    const NAME: &'static str = "alerts_status";
}

pub struct AlertsActor {
    rules: Vec<Rule>,
    alerts: Vec<Alert>,
    webhook: Option<(String, Addr<BreakerActor>)>,
    http: reqwest::Client,
    node: String,
}

impl AlertsActor {
    pub fn new(
        rules: Vec<Rule>,
        webhook: Option<(String, Addr<BreakerActor>)>,
        node: String,
    ) -> Self {
        AlertsActor {
            alerts: rules.iter().cloned().map(Alert::new).collect(),
            rules,
            webhook,
            http: reqwest::Client::new(),
            node,
        }
    }

    fn tick(&mut self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut changes = Vec::new();
        for alert in &mut self.alerts {
            let rule = &alert.rule;
            let points = crate::series::read(&rule.series, rule.window_secs).unwrap_or_default();
            let den = rule
                .ratio_of
                .as_ref()
                .map(|d| crate::series::read(d, rule.window_secs).unwrap_or_default());
            let value = rule.value(&points, den.as_deref());
            if let Some(change) = alert.evaluate(value, now) {
                changes.push((alert.rule.clone(), change));
            }
        }
        for (rule, change) in changes {
            self.notify(&rule, &change);
        }
    }

    fn notify(&self, rule: &Rule, change: &Change) {
        let firing = change.to == AlertState::Firing;
        metrics::gauge!("parley_alerts_firing", "rule" => rule.name.clone()).set(if firing {
            1.0
        } else {
            0.0
        });
        match change.to {
            AlertState::Firing | AlertState::Resolved => tracing::warn!(
                alert = %rule.name,
                state = ?change.to,
                value = change.value,
                threshold = rule.threshold,
                severity = %rule.severity,
                "alert {}",
                if firing { "firing" } else { "resolved" }
            ),
            _ => {
                tracing::info!(alert = %rule.name, state = ?change.to, value = change.value, "alert state")
            }
        }
        // Only what an operator acts on leaves the process.
        if !matches!(change.to, AlertState::Firing | AlertState::Resolved) {
            return;
        }
        let Some((url, breaker)) = self.webhook.clone() else {
            return;
        };
        let body = json!({
            "alert": rule.name,
            "state": change.to,
            "from": change.from,
            "value": change.value,
            "threshold": rule.threshold,
            "severity": rule.severity,
            "at": crate::domain::rfc3339_ms(change.at as i64 * 1000),
            "node": self.node,
        });
        let http = self.http.clone();
        actix_rt::spawn(async move {
            let trace = TraceContext::random();
            let mut delay = Duration::from_millis(200);
            for attempt in 1..=WEBHOOK_TRIES {
                let req = http
                    .post(&url)
                    .header("traceparent", trace.traceparent())
                    .json(&body);
                let (reply, answer) = Responder::oneshot();
                let call = Call {
                    call: Box::pin(async move {
                        let res = req.send().await.map_err(|e| CallError::Failed {
                            message: format!("webhook unreachable: {e}"),
                            counts: true,
                            cause: Some(Cause::new(e)),
                        })?;
                        let status = res.status().as_u16();
                        if status < 300 {
                            Ok(())
                        } else {
                            Err(CallError::Failed {
                                message: format!("webhook answered {status}"),
                                counts: status >= 500,
                                cause: None,
                            })
                        }
                    }),
                    reply,
                };
                breaker.do_send(Envelope::new(trace, call));
                match answer.await.unwrap_or(Err(CallError::Lost)) {
                    Ok(()) => return,
                    Err(e) => tracing::warn!(attempt, error = %e, "alert webhook not delivered"),
                }
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        });
    }
}

impl Actor for AlertsActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(Duration::from_secs(1), |act, _| act.tick());
    }
}

/// A restart forgets the states (they are re-derived from the series within
/// a window) and keeps the rules.
impl Supervised for AlertsActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        self.alerts = self.rules.iter().cloned().map(Alert::new).collect();
    }
}

impl Handler<Envelope<AlertsStatus>> for AlertsActor {
    type Result = MessageResult<Envelope<AlertsStatus>>;

    fn handle(&mut self, _: Envelope<AlertsStatus>, _: &mut Self::Context) -> Self::Result {
        MessageResult(
            self.alerts
                .iter()
                .map(|a| {
                    json!({
                        "name": a.rule.name,
                        "rule": a.rule,
                        "state": a.state,
                        "value": a.value,
                        "history": a.history,
                    })
                })
                .collect(),
        )
    }
}
