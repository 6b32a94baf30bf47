//! Console sign-ins: a browser's session row, keyed by the hash of its
//! cookie's random id, standing for one API key (or, in `console_people`,
//! one person signed in through the OpenID provider) until it expires; and
//! the sign-ins under way at the provider (`oidc_logins`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::tenant::ApiKey;
use crate::db::schema::{api_keys, console_people, console_sessions, oidc_logins, tenants};
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
        .filter(
            api_keys::expires_at
                .is_null()
                .or(api_keys::expires_at.gt(crate::db::now())),
        )
        .select((
            ConsoleSession::as_select(),
            ApiKey::as_select(),
            tenants::rate_limit_requests,
            tenants::rate_limit_window_seconds,
        ))
        .first(conn)
        .optional()?)
}

/// A person's console sign-in (OpenID Connect): a tenant and role given by
/// the group mapping, and who they are.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = console_people)]
pub struct ConsolePerson {
    pub id_hash: String,
    pub tenant_id: String,
    pub role: String,
    pub subject: String,
    pub email: Option<String>,
    pub id_token: String,
    pub csrf_token: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

/// A live person's session and its tenant's own rate limit.
pub type LivePerson = (ConsolePerson, Option<i64>, Option<i64>);

/// Stores `row`, sweeping people's sessions expired before `now`.
pub fn insert_person_sweeping(
    conn: &mut DbConnection,
    row: &ConsolePerson,
    now: NaiveDateTime,
) -> DbResult<()> {
    diesel::delete(console_people::table.filter(console_people::expires_at.lt(now)))
        .execute(conn)?;
    diesel::insert_into(console_people::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Removes a person's session; the removed row (for the provider's logout).
pub fn delete_person(conn: &mut DbConnection, id_hash: &str) -> DbResult<Option<ConsolePerson>> {
    let row = console_people::table
        .find(id_hash)
        .select(ConsolePerson::as_select())
        .first(conn)
        .optional()?;
    diesel::delete(console_people::table.find(id_hash)).execute(conn)?;
    Ok(row)
}

/// The live person's session the hash names: unexpired, of a tenant that
/// still exists.
pub fn find_live_person(conn: &mut DbConnection, id_hash: &str) -> DbResult<Option<LivePerson>> {
    Ok(console_people::table
        .inner_join(tenants::table)
        .filter(console_people::id_hash.eq(id_hash))
        .filter(console_people::expires_at.gt(crate::db::now()))
        .select((
            ConsolePerson::as_select(),
            tenants::rate_limit_requests,
            tenants::rate_limit_window_seconds,
        ))
        .first(conn)
        .optional()?)
}

/// A sign-in under way at the provider.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oidc_logins)]
pub struct PendingLogin {
    pub id_hash: String,
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    pub expires_at: NaiveDateTime,
}

/// Stores `row`, sweeping sign-ins expired before `now`, unless `max`
/// sign-ins are under way already (then `false`: anyone may start one, so
/// their number is bounded).
pub fn insert_login_sweeping(
    conn: &mut DbConnection,
    row: &PendingLogin,
    now: NaiveDateTime,
    max: i64,
) -> DbResult<bool> {
    diesel::delete(oidc_logins::table.filter(oidc_logins::expires_at.lt(now))).execute(conn)?;
    let pending: i64 = oidc_logins::table.count().get_result(conn)?;
    if pending >= max {
        return Ok(false);
    }
    diesel::insert_into(oidc_logins::table)
        .values(row)
        .execute(conn)?;
    Ok(true)
}

/// Takes (reads and deletes: a callback is answered once) the unexpired
/// sign-in the hash names.
pub fn take_login(conn: &mut DbConnection, id_hash: &str) -> DbResult<Option<PendingLogin>> {
    let row = oidc_logins::table
        .find(id_hash)
        .filter(oidc_logins::expires_at.gt(crate::db::now()))
        .select(PendingLogin::as_select())
        .first(conn)
        .optional()?;
    let deleted = diesel::delete(oidc_logins::table.find(id_hash)).execute(conn)?;
    // Two callbacks racing for one row: only the one that deleted it goes on.
    Ok(row.filter(|_| deleted == 1))
}

/// Whether the tenant exists.
pub fn tenant_exists(conn: &mut DbConnection, tenant_id: &str) -> DbResult<bool> {
    let n: i64 = tenants::table
        .filter(tenants::id.eq(tenant_id))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}
