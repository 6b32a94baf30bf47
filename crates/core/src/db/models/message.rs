//! History: one row per user prompt and per assistant answer.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::TenantId;
use crate::db::schema::{messages, sessions};
use crate::db::{DbConnection, DbResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = messages)]
pub struct Message {
    pub id: String,
    pub session_id: String,
    pub role: String,
    pub content: String,
    /// JSON array of `{name, input}`.
    pub tools_used: String,
    pub cost_micros: i64,
    pub duration_ms: i64,
    /// JSON usage object of the turn, for assistant rows.
    pub usage: Option<String>,
    pub is_error: bool,
    pub created_at: NaiveDateTime,
    /// An answer cut short by an interrupt: the partial text.
    pub interrupted: bool,
}

/// One page of a session's history, oldest first, and the total count.
pub fn list(
    conn: &mut DbConnection,
    tenant: &TenantId,
    session_id: &str,
    offset: i64,
    limit: i64,
) -> DbResult<(Vec<Message>, i64)> {
    let owned = sessions::table
        .filter(sessions::id.eq(session_id))
        .filter(sessions::tenant_id.eq(tenant.as_str()))
        .select(sessions::id);
    let total = messages::table
        .filter(messages::session_id.eq_any(owned))
        .count()
        .get_result(conn)?;
    let rows = messages::table
        .filter(messages::session_id.eq_any(owned))
        .order((messages::created_at.asc(), messages::id.asc()))
        .offset(offset)
        .limit(limit)
        .select(Message::as_select())
        .load(conn)?;
    Ok((rows, total))
}
