//! Folders a session delete could not remove at once, kept until a sweeper
//! removes them (`/health` counts them).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::leftover_folders;
use crate::db::{DbConnection, DbResult};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = leftover_folders)]
pub struct LeftoverFolder {
    pub path: String,
    pub tenant_id: String,
    pub last_error: String,
    pub attempts: i64,
    pub created_at: NaiveDateTime,
    pub last_tried_at: NaiveDateTime,
}

/// Records `path` as left over (or, when it is already, one more failed try).
pub fn record(conn: &mut DbConnection, path: &str, tenant_id: &str, error: &str) -> DbResult<()> {
    let now = crate::db::now();
    let updated = diesel::update(leftover_folders::table.find(path))
        .set((
            leftover_folders::last_error.eq(error),
            leftover_folders::attempts.eq(leftover_folders::attempts + 1),
            leftover_folders::last_tried_at.eq(now),
        ))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(leftover_folders::table)
            .values((
                leftover_folders::path.eq(path),
                leftover_folders::tenant_id.eq(tenant_id),
                leftover_folders::last_error.eq(error),
                leftover_folders::attempts.eq(1i64),
                leftover_folders::created_at.eq(now),
                leftover_folders::last_tried_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// The oldest-tried leftovers first, at most `limit`.
pub fn due(conn: &mut DbConnection, limit: i64) -> DbResult<Vec<LeftoverFolder>> {
    Ok(leftover_folders::table
        .order(leftover_folders::last_tried_at.asc())
        .limit(limit)
        .select(LeftoverFolder::as_select())
        .load(conn)?)
}

/// Gone from disk: forgotten.
pub fn forget(conn: &mut DbConnection, path: &str) -> DbResult<()> {
    diesel::delete(leftover_folders::table.find(path)).execute(conn)?;
    Ok(())
}

pub fn count(conn: &mut DbConnection) -> DbResult<i64> {
    Ok(leftover_folders::table.count().get_result(conn)?)
}
