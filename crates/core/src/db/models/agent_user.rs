//! Which agent user each tenant's agents run as: a slot, offset from
//! `AGENT_UID`/`AGENT_GID`, given once and kept (the same on every node).

use diesel::prelude::*;

use crate::db::schema::agent_users;
use crate::db::{DbConnection, DbResult};

/// The tenant's slot, given now (the lowest never given) when it has none.
/// Two nodes giving slots at once: one insert loses on the unique slot and
/// takes the next.
pub fn slot_for(conn: &mut DbConnection, tenant_id: &str) -> DbResult<i64> {
    for _ in 0..8 {
        let existing: Option<i64> = agent_users::table
            .find(tenant_id)
            .select(agent_users::slot)
            .first(conn)
            .optional()?;
        if let Some(slot) = existing {
            return Ok(slot);
        }
        let last: Option<i64> = agent_users::table
            .select(diesel::dsl::max(agent_users::slot))
            .first(conn)?;
        let insert = diesel::insert_into(agent_users::table)
            .values((
                agent_users::tenant_id.eq(tenant_id),
                agent_users::slot.eq(last.map_or(0, |s| s + 1)),
            ))
            .on_conflict_do_nothing();
        // ON CONFLICT DO NOTHING is outside the subset `MultiConnection`
        // offers, hence the match.
        match conn {
            DbConnection::Postgres(c) => insert.execute(c)?,
            DbConnection::Sqlite(c) => insert.execute(c)?,
        };
    }
    Err(diesel::result::Error::RollbackTransaction.into())
}
