//! What the console's pages read: a tenant's sessions with their state, a
//! session's transcript, its jobs. Every query is scoped to the tenant.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;

use super::approval::{self, Approval};
use super::job::Job;
use super::message::Message;
use super::session::{visible_to, Session, Sight};
use super::TenantId;
use crate::db::schema::{approvals, events, jobs, messages, sessions};
use crate::db::{DbConnection, DbResult};

/// The tenant's sessions, the ids of those whose last answer failed, their
/// pending approvals by session id, and how many sessions there are.
pub type SessionsState = (
    Vec<Session>,
    HashSet<String>,
    HashMap<String, Vec<Approval>>,
    i64,
);

/// The tenant's sessions that `sight` sees (up to `max`), each with whether
/// its last answer failed and its pending approvals.
pub fn sessions_with_state(
    conn: &mut DbConnection,
    tenant: &TenantId,
    sight: &Sight,
    max: i64,
) -> DbResult<SessionsState> {
    let (listed, total) = super::session_page::list(conn, tenant, sight, 0, max)?;
    let rows: Vec<_> = listed.into_iter().map(|(row, _)| row).collect();
    let mut failed = HashSet::new();
    for row in &rows {
        if last_failed(conn, &row.id)? {
            failed.insert(row.id.clone());
        }
    }
    let pending: Vec<Approval> = approvals::table
        .filter(approvals::tenant_id.eq(tenant.as_str()))
        .filter(approvals::status.eq(approval::PENDING))
        .order((approvals::created_at.asc(), approvals::id.asc()))
        .select(Approval::as_select())
        .load(conn)?;
    let mut by_session: HashMap<String, Vec<Approval>> = HashMap::new();
    for a in pending {
        by_session.entry(a.session_id.clone()).or_default().push(a);
    }
    Ok((rows, failed, by_session, total))
}

/// Whether the session's last answer was an error.
pub fn last_failed(conn: &mut DbConnection, session_id: &str) -> DbResult<bool> {
    let last: Option<bool> = messages::table
        .filter(messages::session_id.eq(session_id))
        .filter(messages::role.eq("assistant"))
        .order((messages::created_at.desc(), messages::id.desc()))
        .select(messages::is_error)
        .first(conn)
        .optional()?;
    Ok(last == Some(true))
}

/// The names of the tenant's sessions that `sight` sees (up to `max`),
/// oldest first.
pub fn session_names(
    conn: &mut DbConnection,
    tenant: &TenantId,
    sight: &Sight,
    max: i64,
) -> DbResult<Vec<String>> {
    Ok(sessions::table
        .filter(sessions::tenant_id.eq(tenant.as_str()))
        .filter(visible_to(sight))
        .order((sessions::created_at.asc(), sessions::id.asc()))
        .limit(max)
        .select(sessions::name)
        .load(conn)?)
}

/// A session's transcript as stored, and the event id to follow the live
/// stream from: the last event of the last stored turn. Read in one
/// snapshot, so a turn stored meanwhile is either in the history (and its
/// events are not replayed) or replayed (and not in the history).
pub fn transcript(
    conn: &mut DbConnection,
    tenant: &TenantId,
    session_id: &str,
    max_messages: i64,
) -> DbResult<(Vec<Message>, i64, i64)> {
    let (tenant, session_id) = (tenant.clone(), session_id.to_owned());
    conn.transaction(|c| {
        if let DbConnection::Postgres(_) = c {
            diesel::sql_query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .execute(c)?;
        }
        let total = super::message::list(c, &tenant, &session_id, 0, 0)?.1;
        let skip = (total - max_messages).max(0);
        let (rows, _) = super::message::list(c, &tenant, &session_id, skip, max_messages)?;
        // Turns end with one of these; a running turn's earlier events
        // (flushed ahead of its end) come after it and are replayed.
        let after: Option<i64> = events::table
            .filter(events::session_id.eq(&session_id))
            .filter(events::kind.eq_any(crate::domain::event::TURN_ENDS))
            .select(diesel::dsl::max(events::seq))
            .first(c)?;
        Ok((rows, skip, after.unwrap_or(0)))
    })
}

/// The tenant's newest jobs in sessions `sight` sees (up to `max`), with
/// their sessions' names.
pub fn jobs_with_sessions(
    conn: &mut DbConnection,
    tenant: &TenantId,
    sight: &Sight,
    max: i64,
) -> DbResult<Vec<(Job, String)>> {
    let rows: Vec<(Job, String)> = jobs::table
        .inner_join(sessions::table)
        .filter(jobs::tenant_id.eq(tenant.as_str()))
        .filter(sessions::tenant_id.eq(tenant.as_str()))
        .filter(visible_to(sight))
        .order((jobs::created_at.desc(), jobs::id.desc()))
        .limit(max)
        .select((Job::as_select(), sessions::name))
        .load(conn)?;
    Ok(rows)
}
