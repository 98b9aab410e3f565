//! The JSON shape of the admin HTTP answers (SPEC.md "Admin HTTP"). The
//! handlers in `http/admin.rs` gather the figures; these types alone decide
//! the field names, so a renamed field is a change here, not a `json!`
//! literal somewhere.

use serde::Serialize;

use crate::actors::conversation::ConversationStatus;
use crate::domain::{SessionId, TraceId, Username};
use crate::resilience::Snapshot;
use crate::series::Point;
use crate::supervision::NodeView;
use crate::traces::{Hop, Keep};

/// `{"items": [...]}`: a list with nothing beside it.
#[derive(Serialize)]
pub struct Items<T> {
    pub items: Vec<T>,
}

/// `GET /admin/sessions`: `total` on this node, `items` up to the limit.
#[derive(Serialize)]
pub struct SessionList<'a> {
    pub total: usize,
    pub items: Vec<SessionItem<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionItem<'a> {
    pub session_id: SessionId,
    pub username: &'a Username,
    pub node: &'a str,
    /// RFC 3339, milliseconds.
    pub since: String,
    pub queued_frames: usize,
}

/// `POST /admin/sessions/{id}/disconnect`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Closing {
    pub session_id: SessionId,
    pub closing: bool,
}

/// `GET /admin/conversations`: `active` on this node, `items` up to the limit.
#[derive(Serialize)]
pub struct ConversationList<'a> {
    pub node: &'a str,
    pub active: usize,
    pub items: Vec<ConversationStatus>,
}

/// `GET /admin/supervision`.
#[derive(Serialize)]
pub struct SupervisionView<'a> {
    pub node: &'a str,
    pub tree: NodeView,
    pub restarts: Vec<RestartCount>,
}

/// Restarts of one actor kind for one reason since start.
#[derive(Serialize)]
pub struct RestartCount {
    pub kind: &'static str,
    pub reason: &'static str,
    pub count: u64,
}

/// `GET /admin/faults`.
#[derive(Serialize)]
pub struct FaultsEnabled {
    pub enabled: bool,
}

/// `POST /admin/faults`: what was armed.
#[derive(Serialize)]
pub struct FaultArmed {
    pub target: String,
    pub kind: String,
    pub count: u32,
}

/// One breaker in `GET /admin/breakers` (`status` null: its actor is
/// restarting) and the answer of `POST /admin/breakers/{name}`.
#[derive(Serialize)]
pub struct BreakerView<'a> {
    pub name: &'a str,
    pub status: Option<Snapshot>,
}

/// `GET /admin/traces/{traceId}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceView {
    pub trace_id: TraceId,
    pub hops: Vec<Hop>,
    pub hops_not_kept: u64,
    pub kept: Option<Keep>,
}

/// `GET /admin/metrics/series` without a name: the series there are.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeriesList {
    pub series: Vec<SeriesName>,
    pub max_seconds: usize,
}

#[derive(Serialize)]
pub struct SeriesName {
    pub name: &'static str,
    pub description: &'static str,
}

/// `GET /admin/metrics/series?name=&seconds=`.
#[derive(Serialize)]
pub struct SeriesPoints<'a> {
    pub name: &'a str,
    pub seconds: u64,
    pub points: Vec<Point>,
}
