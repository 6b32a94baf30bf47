//! Async jobs as clients and webhook receivers see them: states, the
//! `JobData` document, and the webhook event a finished job produces.

use serde::Serialize;
use serde_json::{json, Value};

pub const QUEUED: &str = "queued";
pub const RUNNING: &str = "running";
pub const DONE: &str = "done";
pub const FAILED: &str = "failed";
pub const CANCELLED: &str = "cancelled";
pub const INTERRUPTED: &str = "interrupted";

/// States a job never leaves.
pub const FINAL: [&str; 4] = [DONE, FAILED, CANCELLED, INTERRUPTED];

pub fn is_final(status: &str) -> bool {
    FINAL.contains(&status)
}

/// A job as the API and webhooks show it. `result` and `tools_used` are JSON
/// values (never strings holding JSON).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobData {
    pub id: String,
    /// The session's name.
    pub session: String,
    /// `queued`, `running`, then `done`, `failed`, `cancelled` or `interrupted`.
    pub status: String,
    pub message: String,
    pub webhook_url: Option<String>,
    /// The answer (as `/chat` gives it) once the job is `done`.
    #[schema(value_type = Option<crate::domain::turn::ChatResponse>)]
    pub result: Value,
    pub error: Option<String>,
    pub cost: f64,
    pub cost_micros: i64,
    pub duration_ms: Option<i64>,
    #[schema(value_type = Vec<crate::domain::turn::ToolUse>)]
    pub tools_used: Value,
    /// Runs started; more than 1 after a restart resumed it.
    pub attempts: i64,
    pub created_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    /// What the job's git step did, when it asked for one (`git` of the
    /// request): `{branch, commit, changed, diff_stat, pushed,
    /// pull_request: {number, url}}`, and `error` when a step failed.
    #[schema(value_type = Option<Object>)]
    pub git: Value,
    /// Who queued it (absent for jobs queued before this was recorded).
    pub created_by: Option<super::creator::Creator>,
}

/// The webhook body for a job that reached a final state: compatible with
/// receivers of the Python original (`event: job.completed`) and typed per
/// Standard Webhooks (`type: job.<status>`).
pub fn completion_event(data: &JobData) -> (String, Value) {
    let event_type = format!("job.{}", data.status);
    let body = json!({
        "event": "job.completed",
        "type": event_type,
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "job": data,
    });
    (event_type, body)
}
