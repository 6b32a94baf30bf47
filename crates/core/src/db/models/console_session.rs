//! Console sign-ins: a browser's session row, keyed by the hash of its
//! cookie's random id, standing for one API key until it expires.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::tenant::ApiKey;
use crate::db::schema::{api_keys, console_sessions, tenants};
use crate::db::{DbConnection, DbResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = console_sessions)]
pub struct ConsoleSession {
    pub id_hash: String,
    pub key_id: String,
    pub tenant_id: String,
    pub csrf_token: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

/// A live session row, its key, and its tenant's own rate limit
/// (requests, window seconds).
pub type Live = (ConsoleSession, ApiKey, Option<i64>, Option<i64>);

/// Stores `row`, sweeping sessions expired before `now` on the way.
pub fn insert_sweeping(
    conn: &mut DbConnection,
    row: &ConsoleSession,
    now: NaiveDateTime,
) -> DbResult<()> {
    diesel::delete(console_sessions::table.filter(console_sessions::expires_at.lt(now)))
        .execute(conn)?;
    diesel::insert_into(console_sessions::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn delete(conn: &mut DbConnection, id_hash: &str) -> DbResult<()> {
    diesel::delete(console_sessions::table.find(id_hash)).execute(conn)?;
    Ok(())
}

/// The live session row and its key: unexpired, key not revoked.
pub fn find_live(conn: &mut DbConnection, id_hash: &str) -> DbResult<Option<Live>> {
    Ok(console_sessions::table
        .inner_join(api_keys::table)
        .inner_join(tenants::table.on(tenants::id.eq(api_keys::tenant_id)))
        .filter(console_sessions::id_hash.eq(id_hash))
        .filter(console_sessions::expires_at.gt(crate::db::now()))
        .filter(api_keys::revoked_at.is_null())
        .select((
            ConsoleSession::as_select(),
            ApiKey::as_select(),
            tenants::rate_limit_requests,
            tenants::rate_limit_window_seconds,
        ))
        .first(conn)
        .optional()?)
}
