//! Tool approvals: a `can_use_tool` request of a session's CLI waiting for a
//! client's decision, and what was decided.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::Value;

use crate::domain::approval::ApprovalView;

use super::TenantId;
use crate::db::schema::{approvals, sessions};
use crate::db::{DbConnection, DbResult};

pub const PENDING: &str = "pending";
pub const ALLOWED: &str = "allowed";
pub const DENIED: &str = "denied";
/// Not answered within `APPROVAL_TIMEOUT_SECONDS`: the CLI was told no.
pub const EXPIRED: &str = "expired";
/// The CLI withdrew the request (the turn was interrupted or ended).
pub const CANCELLED: &str = "cancelled";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = approvals)]
pub struct Approval {
    pub id: String,
    pub session_id: String,
    pub tenant_id: String,
    pub job_id: Option<String>,
    pub tool: String,
    /// JSON: the tool's input as the CLI will run it.
    pub input: String,
    /// JSON array: the CLI's permission suggestions.
    pub suggestions: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub status: String,
    /// JSON: the decision sent to the CLI.
    pub decision: Option<String>,
    pub decided_at: Option<NaiveDateTime>,
}

impl Approval {
    /// The approval as clients see it (API, events, webhooks).
    pub fn view(&self, session_name: &str) -> ApprovalView {
        let row = self;
        let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
        ApprovalView {
            id: row.id.clone(),
            session_id: session_name.to_owned(),
            job_id: row.job_id.clone(),
            tool: row.tool.clone(),
            input: parse(&row.input),
            suggestions: parse(&row.suggestions),
            status: row.status.clone(),
            decision: row.decision.as_deref().map(parse),
            created_at: crate::domain::timestamp(&row.created_at),
            expires_at: crate::domain::timestamp(&row.expires_at),
            url: format!("/api/v1/sessions/{session_name}/approvals/{}", row.id),
        }
    }
}

pub fn insert(conn: &mut DbConnection, row: &Approval) -> DbResult<()> {
    diesel::insert_into(approvals::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// One approval of the caller's session.
pub fn find(
    conn: &mut DbConnection,
    tenant: &TenantId,
    session_id: &str,
    id: &str,
) -> DbResult<Option<Approval>> {
    Ok(approvals::table
        .filter(approvals::id.eq(id))
        .filter(approvals::session_id.eq(session_id))
        .filter(approvals::tenant_id.eq(tenant.as_str()))
        .select(Approval::as_select())
        .first(conn)
        .optional()?)
}

/// The session's pending approvals, oldest first.
pub fn list_pending(
    conn: &mut DbConnection,
    tenant: &TenantId,
    session_id: &str,
) -> DbResult<Vec<Approval>> {
    let owned = sessions::table
        .filter(sessions::id.eq(session_id))
        .filter(sessions::tenant_id.eq(tenant.as_str()))
        .select(sessions::id);
    Ok(approvals::table
        .filter(approvals::session_id.eq_any(owned))
        .filter(approvals::status.eq(PENDING))
        .order((approvals::created_at.asc(), approvals::id.asc()))
        .select(Approval::as_select())
        .load(conn)?)
}

/// The ids of the tenant's sessions that have an approval pending.
pub fn sessions_waiting(
    conn: &mut DbConnection,
    tenant: &TenantId,
) -> DbResult<std::collections::HashSet<String>> {
    let owned = sessions::table
        .filter(sessions::tenant_id.eq(tenant.as_str()))
        .select(sessions::id);
    let ids: Vec<String> = approvals::table
        .filter(approvals::session_id.eq_any(owned))
        .filter(approvals::status.eq(PENDING))
        .select(approvals::session_id)
        .distinct()
        .load(conn)?;
    Ok(ids.into_iter().collect())
}

/// Moves a pending approval to its final `status`; `false` when it was no
/// longer pending.
pub fn settle(
    conn: &mut DbConnection,
    id: &str,
    status: &str,
    decision: Option<&str>,
) -> DbResult<bool> {
    let n = diesel::update(
        approvals::table
            .filter(approvals::id.eq(id))
            .filter(approvals::status.eq(PENDING)),
    )
    .set((
        approvals::status.eq(status),
        approvals::decision.eq(decision),
        approvals::decided_at.eq(Some(crate::db::now())),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Approvals left pending by a process that is gone (restart, crash): the
/// CLI that asked can no longer be answered.
pub fn cancel_stale(conn: &mut DbConnection, session_id: &str) -> DbResult<usize> {
    Ok(diesel::update(
        approvals::table
            .filter(approvals::session_id.eq(session_id))
            .filter(approvals::status.eq(PENDING)),
    )
    .set((
        approvals::status.eq(CANCELLED),
        approvals::decided_at.eq(Some(crate::db::now())),
    ))
    .execute(conn)?)
}
