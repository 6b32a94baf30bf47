//! Chat documents: the answer of a sync chat that waits on an approval.

use serde::Serialize;
use utoipa::ToSchema;

/// The answer of a chat that waits on a tool approval for longer than
/// `APPROVAL_HOLD_SECS`: the turn goes on; decide the approval, then follow
/// the session's events.
#[derive(Debug, Serialize, ToSchema)]
pub struct WaitingForApproval {
    /// `waiting_for_approval`.
    status: &'static str,
    approval_id: String,
    approval_url: String,
    events_url: String,
}

impl WaitingForApproval {
    pub fn new(session: &str, approval_id: String) -> WaitingForApproval {
        WaitingForApproval {
            status: "waiting_for_approval",
            approval_url: format!("/api/v1/sessions/{session}/approvals/{approval_id}"),
            events_url: format!("/api/v1/sessions/{session}/events"),
            approval_id,
        }
    }
}
