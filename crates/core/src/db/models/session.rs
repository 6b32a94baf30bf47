//! Session rows: identity, workspace, launch spec, CLI session id, totals.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::TenantId;
use crate::db::schema::sessions;
use crate::db::{DbConnection, DbResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct Session {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub workspace: String,
    pub owns_workspace: bool,
    /// The session's launch spec as JSON (`SessionSpec`).
    pub spec: String,
    pub cli_session_id: Option<String>,
    pub total_cost_micros: i64,
    pub turns: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Spend limit of this session (micro-USD), if any.
    pub budget_micros: Option<i64>,
    /// Who made it: a key's id, or `person:<sub>` (none before this was
    /// recorded).
    pub created_by: Option<String>,
    /// The maker's label: a person's email, or a key's label.
    pub created_by_label: Option<String>,
    /// Whom a private session is private to (`Caller::principal`); `None`:
    /// shared with the tenant.
    pub private_to: Option<String>,
}

/// Whose view a session read is for: a private session shows only to the
/// one it is private to, and to its tenant's admins. To anyone else it is
/// missing, like another tenant's.
#[derive(Debug, Clone)]
pub struct Sight {
    /// `Caller::principal` of the reader.
    pub principal: String,
    /// An admin of the tenant (or the owner): sees every session.
    pub sees_all: bool,
}

impl Sight {
    pub fn sees(&self, session: &Session) -> bool {
        self.sees_private_to(session.private_to.as_deref())
    }

    /// Whether it sees a session private to `private_to` (`None`: shared).
    pub fn sees_private_to(&self, private_to: Option<&str>) -> bool {
        self.sees_all || private_to.is_none_or(|to| to == self.principal)
    }
}

/// `Sight::sees` in SQL, one shape for every reader (bound values only), so
/// the statement stays in the prepared-statement cache.
pub type VisibleTo<'a> = diesel::dsl::Or<
    diesel::dsl::Or<
        diesel::dsl::IsNull<sessions::private_to>,
        diesel::dsl::Eq<sessions::private_to, &'a str>,
    >,
    diesel::dsl::AsExprOf<bool, diesel::sql_types::Bool>,
>;

pub fn visible_to(sight: &Sight) -> VisibleTo<'_> {
    use diesel::IntoSql;
    sessions::private_to
        .is_null()
        .or(sessions::private_to.eq(sight.principal.as_str()))
        .or(sight.sees_all.into_sql::<diesel::sql_types::Bool>())
}

pub fn insert(conn: &mut DbConnection, session: &Session) -> DbResult<()> {
    diesel::insert_into(sessions::table)
        .values(session)
        .execute(conn)?;
    Ok(())
}

/// Why `insert_within_cap` stored nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotInserted {
    NameTaken,
    /// The tenant has `count` sessions, its cap.
    AtCap {
        count: i64,
    },
}

/// Inserts the session (and which workspace it created) unless the name is
/// taken or its tenant is at its cap (`max_sessions`, else `default_cap`).
/// The count and the insert are one step: on SQLite the write lock is taken
/// first, on PostgreSQL the tenant's row is locked, so parallel creates of
/// one tenant queue up and the cap holds.
pub fn insert_within_cap(
    conn: &mut DbConnection,
    session: &Session,
    created_workspace: Option<&str>,
    default_cap: i64,
    with_row: impl FnOnce(&mut DbConnection) -> DbResult<()>,
) -> DbResult<Result<(), NotInserted>> {
    use crate::db::schema::tenants;
    crate::db::write_transaction(conn, |conn| {
        let query = tenants::table
            .find(&session.tenant_id)
            .select(tenants::max_sessions);
        let cap: Option<Option<i64>> = match conn {
            DbConnection::Postgres(c) => query.for_update().first(c).optional()?,
            DbConnection::Sqlite(c) => query.first(c).optional()?,
        };
        let cap = cap.flatten().unwrap_or(default_cap);
        let tenant = TenantId(session.tenant_id.clone());
        if find_by_name(conn, &tenant, &session.name)?.is_some() {
            return Ok(Err(NotInserted::NameTaken));
        }
        let count = count(conn, &tenant)?;
        if count >= cap {
            return Ok(Err(NotInserted::AtCap { count }));
        }
        insert(conn, session)?;
        crate::db::models::workspace::set_created(conn, &session.id, created_workspace)?;
        with_row(conn)?;
        Ok(Ok(()))
    })
}

/// How many sessions the tenant has.
pub fn count(conn: &mut DbConnection, tenant: &TenantId) -> DbResult<i64> {
    Ok(sessions::table
        .filter(sessions::tenant_id.eq(tenant.as_str()))
        .count()
        .get_result(conn)?)
}

pub fn find_by_name(
    conn: &mut DbConnection,
    tenant: &TenantId,
    name: &str,
) -> DbResult<Option<Session>> {
    Ok(sessions::table
        .filter(sessions::tenant_id.eq(tenant.as_str()))
        .filter(sessions::name.eq(name))
        .select(Session::as_select())
        .first(conn)
        .optional()?)
}

pub fn find_by_id(conn: &mut DbConnection, id: &str) -> DbResult<Option<Session>> {
    Ok(sessions::table
        .find(id)
        .select(Session::as_select())
        .first(conn)
        .optional()?)
}

/// Deletes the session (history and events go with it); `false` if absent.
pub fn delete(conn: &mut DbConnection, tenant: &TenantId, id: &str) -> DbResult<bool> {
    crate::db::write_transaction(conn, |conn| delete_rows(conn, tenant, id))
}

/// `delete`'s statements, for a caller that holds a write transaction.
pub fn delete_rows(conn: &mut DbConnection, tenant: &TenantId, id: &str) -> DbResult<bool> {
    use crate::db::schema::{events, jobs, messages, session_forks, session_repos, turn_snapshots};
    let owned: i64 = sessions::table
        .filter(sessions::id.eq(id))
        .filter(sessions::tenant_id.eq(tenant.as_str()))
        .count()
        .get_result(conn)?;
    if owned == 0 {
        return Ok(false);
    }
    diesel::delete(events::table.filter(events::session_id.eq(id))).execute(conn)?;
    diesel::delete(messages::table.filter(messages::session_id.eq(id))).execute(conn)?;
    diesel::delete(jobs::table.filter(jobs::session_id.eq(id))).execute(conn)?;
    diesel::delete(session_repos::table.filter(session_repos::session_id.eq(id))).execute(conn)?;
    diesel::delete(turn_snapshots::table.filter(turn_snapshots::session_id.eq(id)))
        .execute(conn)?;
    diesel::delete(session_forks::table.filter(session_forks::session_id.eq(id))).execute(conn)?;
    diesel::delete(sessions::table.filter(sessions::id.eq(id))).execute(conn)?;
    Ok(true)
}

/// Remembers the CLI's own session id, used for `--resume` on respawn.
pub fn set_cli_session_id(conn: &mut DbConnection, id: &str, cli_session_id: &str) -> DbResult<()> {
    diesel::update(sessions::table.find(id))
        .set((
            sessions::cli_session_id.eq(cli_session_id),
            sessions::updated_at.eq(crate::db::now()),
        ))
        .execute(conn)?;
    Ok(())
}
