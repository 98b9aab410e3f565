//! The supervision tree as operators see it (`GET /admin/supervision`).

use serde::Serialize;

use super::failure::Failure;
use super::policy::{RestartType, Strategy};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    pub name: String,
    pub kind: &'static str,
    pub strategy: Strategy,
    pub status: &'static str,
    pub restarts: u64,
    pub max_restarts: u32,
    pub window_secs: f64,
    pub last_failure: Option<Failure>,
    /// All children, even when a dynamic node lists only some.
    pub child_count: usize,
    pub children: Vec<ChildView>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ChildView {
    Supervisor(NodeView),
    #[serde(rename_all = "camelCase")]
    Worker {
        name: String,
        kind: &'static str,
        /// A session's username; absent for children without one.
        #[serde(skip_serializing_if = "Option::is_none")]
        label: Option<String>,
        restart: RestartType,
        status: &'static str,
        restarts: u64,
        last_failure: Option<Failure>,
        started_at: String,
    },
}
