//! The repository a session was made from, its branch and its base.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::TenantId;
use crate::db::schema::session_repos;
use crate::db::{DbConnection, DbResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = session_repos)]
pub struct SessionRepo {
    pub session_id: String,
    pub tenant_id: String,
    pub repo_id: String,
    pub branch: String,
    /// What the client asked to start from (a branch, tag or commit).
    pub base_ref: String,
    /// The commit it resolved to: diffs and `ahead` count from here.
    pub base_commit: String,
    /// The last commit the server pushed of this branch.
    pub pushed_commit: Option<String>,
    pub created_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, row: &SessionRepo) -> DbResult<()> {
    diesel::insert_into(session_repos::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn find(
    conn: &mut DbConnection,
    tenant: &TenantId,
    session_id: &str,
) -> DbResult<Option<SessionRepo>> {
    Ok(session_repos::table
        .filter(session_repos::tenant_id.eq(tenant.as_str()))
        .filter(session_repos::session_id.eq(session_id))
        .select(SessionRepo::as_select())
        .first(conn)
        .optional()?)
}

pub fn set_pushed(conn: &mut DbConnection, session_id: &str, commit: &str) -> DbResult<()> {
    diesel::update(session_repos::table.find(session_id))
        .set(session_repos::pushed_commit.eq(commit))
        .execute(conn)?;
    Ok(())
}

/// How many sessions use repository `repo_id` (shown on the repository).
pub fn count_for_repo(conn: &mut DbConnection, repo_id: &str) -> DbResult<i64> {
    Ok(session_repos::table
        .filter(session_repos::repo_id.eq(repo_id))
        .count()
        .get_result(conn)?)
}
