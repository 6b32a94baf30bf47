//! A page of the tenant's sessions, each with its fork link, in one
//! statement that the prepared-statement cache keeps (no SQL literal, no
//! `IN` list): the list is read on every dashboard poll.

use diesel::dsl::count_star;
use diesel::prelude::*;

use super::session::{visible_to, Session, Sight};
use super::session_fork::SessionFork;
use super::TenantId;
use crate::db::schema::{session_forks, sessions};
use crate::db::{DbConnection, DbResult};

/// A listed session and, for a fork, where it comes from.
pub type Listed = (Session, Option<SessionFork>);

/// One page of the tenant's sessions that `sight` sees, oldest first, and
/// their total count.
pub fn list(
    conn: &mut DbConnection,
    tenant: &TenantId,
    sight: &Sight,
    offset: i64,
    limit: i64,
) -> DbResult<(Vec<Listed>, i64)> {
    // Each row carries the total (a window over the whole filtered set,
    // taken before the page is cut).
    let rows: Vec<(Session, Option<SessionFork>, i64)> = sessions::table
        .left_join(session_forks::table)
        .filter(sessions::tenant_id.eq(tenant.as_str()))
        .filter(visible_to(sight))
        .order((sessions::created_at.asc(), sessions::id.asc()))
        .offset(offset)
        .limit(limit)
        .select((
            Session::as_select(),
            Option::<SessionFork>::as_select(),
            count_star().over(),
        ))
        .load(conn)?;
    let total = match rows.first() {
        Some((_, _, total)) => *total,
        // An empty page says nothing of the total unless it is the first.
        None if offset > 0 => sessions::table
            .filter(sessions::tenant_id.eq(tenant.as_str()))
            .filter(visible_to(sight))
            .count()
            .get_result(conn)?,
        None => 0,
    };
    let page = rows
        .into_iter()
        .map(|(session, link, _)| (session, link))
        .collect();
    Ok((page, total))
}

/// The tenant's session `name` with its fork link, in one statement.
pub fn find(conn: &mut DbConnection, tenant: &TenantId, name: &str) -> DbResult<Option<Listed>> {
    Ok(sessions::table
        .left_join(session_forks::table)
        .filter(sessions::tenant_id.eq(tenant.as_str()))
        .filter(sessions::name.eq(name))
        .select((Session::as_select(), Option::<SessionFork>::as_select()))
        .first(conn)
        .optional()?)
}
