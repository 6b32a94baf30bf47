//! Tool approvals as clients see them, and a decision's outcome.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An approval as clients see it (API, events, webhooks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApprovalView {
    pub id: String,
    /// The session's name.
    pub session_id: String,
    /// The job whose turn asks, if a job's.
    pub job_id: Option<String>,
    pub tool: String,
    /// The tool's input, as the agent wants to call it.
    #[schema(value_type = Object)]
    pub input: Value,
    /// Permission rules the CLI suggests for `remember`.
    #[schema(value_type = Vec<Object>)]
    pub suggestions: Value,
    /// `pending`, `allowed`, `denied`, `expired` or `cancelled`.
    pub status: String,
    /// What was answered to the CLI, once decided.
    #[schema(value_type = Option<Object>)]
    pub decision: Option<Value>,
    pub created_at: String,
    /// Denied automatically after this (`APPROVAL_TIMEOUT_SECS`).
    pub expires_at: String,
    /// Where to `POST` the decision.
    pub url: String,
}

/// A decision as the CLI received it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Resolved {
    pub id: String,
    /// `allowed` or `denied`.
    pub status: &'static str,
    /// What the CLI was answered (`behavior`, and `updatedInput` or `message`).
    #[schema(value_type = Object)]
    pub decision: Value,
}
