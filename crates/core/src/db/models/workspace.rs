//! Where a session works: the directory it currently works in
//! (`sessions.workspace`) and the one it created, if any
//! (`sessions.created_workspace`), the only one deleting the session removes.

use diesel::prelude::*;

use super::TenantId;
use crate::db::schema::sessions;
use crate::db::{DbConnection, DbResult};

/// Records the workspace the session created (`None`: it created none).
pub fn set_created(conn: &mut DbConnection, id: &str, created: Option<&str>) -> DbResult<()> {
    diesel::update(sessions::table.find(id))
        .set(sessions::created_workspace.eq(created))
        .execute(conn)?;
    Ok(())
}

/// The workspace the tenant's session created, if it created one.
pub fn created(conn: &mut DbConnection, tenant: &TenantId, id: &str) -> DbResult<Option<String>> {
    Ok(sessions::table
        .filter(sessions::id.eq(id))
        .filter(sessions::tenant_id.eq(tenant.as_str()))
        .select(sessions::created_workspace)
        .first::<Option<String>>(conn)
        .optional()?
        .flatten())
}

/// Points the tenant's session at another directory; `false` if absent.
pub fn set_current(
    conn: &mut DbConnection,
    tenant: &TenantId,
    id: &str,
    workspace: &str,
) -> DbResult<bool> {
    let n = diesel::update(
        sessions::table
            .filter(sessions::id.eq(id))
            .filter(sessions::tenant_id.eq(tenant.as_str())),
    )
    .set((
        sessions::workspace.eq(workspace),
        sessions::updated_at.eq(crate::db::now()),
    ))
    .execute(conn)?;
    Ok(n > 0)
}

/// The folders the tenant's other sessions work in or created, with their
/// names and whom each is private to: `(name, folder, private_to)`.
pub fn of_other_sessions(
    conn: &mut DbConnection,
    tenant: &TenantId,
    except_id: &str,
) -> DbResult<Vec<(String, String, Option<String>)>> {
    let rows: Vec<(String, String, Option<String>, Option<String>)> = sessions::table
        .filter(sessions::tenant_id.eq(tenant.as_str()))
        .filter(sessions::id.ne(except_id))
        .select((
            sessions::name,
            sessions::workspace,
            sessions::created_workspace,
            sessions::private_to,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .flat_map(|(name, current, created, private_to)| {
            let created = created.map(|c| (name.clone(), c, private_to.clone()));
            std::iter::once((name, current, private_to)).chain(created)
        })
        .collect())
}
