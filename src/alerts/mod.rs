//! Alarms: rules over the per-second series, evaluated every second by the
//! alerts actor, notified to the log, `GET /admin/alerts` and a webhook.

pub mod rules;

pub use rules::{Alert, AlertState, Change, Rule};
