//! Which session a session was forked from, and at which turn. Only stores
//! and loads; `services::forks` decides.

use diesel::prelude::*;

use crate::db::models::session::Session;
use crate::db::models::TenantId;
use crate::db::schema::{session_forks, sessions};
use crate::db::{DbConnection, DbResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = session_forks)]
pub struct SessionFork {
    /// The fork.
    pub session_id: String,
    pub tenant_id: String,
    pub parent_session_id: String,
    /// The parent's name when the fork was made (it may be gone since).
    pub parent_name: String,
    pub at_turn: i64,
    pub created_at: chrono::NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, row: &SessionFork) -> DbResult<()> {
    diesel::insert_into(session_forks::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// The fork link of the tenant's session `id`, if it is a fork.
pub fn of_session(
    conn: &mut DbConnection,
    tenant: &TenantId,
    id: &str,
) -> DbResult<Option<SessionFork>> {
    Ok(session_forks::table
        .filter(session_forks::tenant_id.eq(tenant.as_str()))
        .filter(session_forks::session_id.eq(id))
        .select(SessionFork::as_select())
        .first(conn)
        .optional()?)
}

/// A page of the tenant's sessions forked from `parent_id` that `sight`
/// sees, oldest first, each with its link, and their total.
pub fn children(
    conn: &mut DbConnection,
    tenant: &TenantId,
    sight: &crate::db::models::session::Sight,
    parent_id: &str,
    offset: i64,
    limit: i64,
) -> DbResult<(Vec<(Session, SessionFork)>, i64)> {
    let of_parent = || {
        session_forks::table
            .inner_join(sessions::table)
            .filter(session_forks::tenant_id.eq(tenant.as_str()))
            .filter(sessions::tenant_id.eq(tenant.as_str()))
            .filter(session_forks::parent_session_id.eq(parent_id))
            .filter(crate::db::models::session::visible_to(sight))
    };
    let total: i64 = of_parent().count().get_result(conn)?;
    let rows = of_parent()
        .order((session_forks::created_at.asc(), sessions::name.asc()))
        .offset(offset)
        .limit(limit)
        .select((Session::as_select(), SessionFork::as_select()))
        .load(conn)?;
    Ok((rows, total))
}
