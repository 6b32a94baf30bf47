//! Budget checks before a turn starts: the session's own limit, then the
//! tenant's, whose share is reserved until the turn is settled.

use diesel::prelude::*;

use super::instance::Held;
use super::tenant;
use crate::db::schema::sessions;
use crate::db::{DbConnection, DbResult};

/// A budget that would be passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exceeded {
    pub scope: &'static str,
    pub spent_micros: i64,
    pub limit_micros: i64,
}

/// Checks the session budget and reserves `amount` of the tenant's; the
/// amount actually held (0 for a tenant without a limit).
pub fn reserve_for_turn(
    conn: &mut DbConnection,
    tenant_id: &str,
    session_id: &str,
    amount: i64,
    owner: &str,
) -> DbResult<Result<Held, Exceeded>> {
    let session: Option<(Option<i64>, i64)> = sessions::table
        .find(session_id)
        .select((sessions::budget_micros, sessions::total_cost_micros))
        .first(conn)
        .optional()?;
    if let Some((Some(limit), spent)) = session {
        // One turn at a time per session: it can go at most one turn past.
        if spent >= limit {
            return Ok(Err(Exceeded {
                scope: "session",
                spent_micros: spent,
                limit_micros: limit,
            }));
        }
    }
    Ok(
        tenant::reserve(conn, tenant_id, amount, session_id, owner)?.map_err(|over| Exceeded {
            scope: "tenant",
            spent_micros: over.spent_micros,
            limit_micros: over.limit_micros,
        }),
    )
}

/// Whether the tenant's own budget is used up (a quick refusal before
/// work is even queued; the turn reserves its share when it starts).
pub fn tenant_over(t: &tenant::Tenant) -> Option<Exceeded> {
    t.budget_micros
        .filter(|limit| t.spent_micros >= *limit)
        .map(|limit| Exceeded {
            scope: "tenant",
            spent_micros: t.spent_micros,
            limit_micros: limit,
        })
}
