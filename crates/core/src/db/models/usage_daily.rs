//! The `usage_daily` ledger: every stored turn (and every model call made
//! outside a turn) adds to its tenant's day, so deleting a session keeps
//! what it used. The `usage` report reads it.

use diesel::prelude::*;

use crate::db::schema::usage_daily;
use crate::db::{DbConnection, DbResult};

/// One turn's share of its tenant's day.
#[derive(Debug, Clone, Copy)]
pub struct TurnUsage {
    pub turns: i64,
    pub cost_micros: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
}

/// Adds a turn to its tenant's day (UTC), in one atomic upsert: concurrent
/// turns of a tenant never lose each other's counts. The same statement on
/// both backends, run on each one's own connection because the multi-backend
/// connection has no `ON CONFLICT`.
pub fn add(conn: &mut DbConnection, tenant_id: &str, usage: TurnUsage) -> DbResult<()> {
    let day = crate::db::now().date();
    macro_rules! upsert {
        ($conn:expr) => {
            diesel::insert_into(usage_daily::table)
                .values((
                    usage_daily::tenant_id.eq(tenant_id),
                    usage_daily::day.eq(day),
                    usage_daily::turns.eq(usage.turns),
                    usage_daily::cost_micros.eq(usage.cost_micros),
                    usage_daily::input_tokens.eq(usage.input_tokens),
                    usage_daily::output_tokens.eq(usage.output_tokens),
                ))
                .on_conflict((usage_daily::tenant_id, usage_daily::day))
                .do_update()
                .set((
                    usage_daily::turns.eq(usage_daily::turns + usage.turns),
                    usage_daily::cost_micros.eq(usage_daily::cost_micros + usage.cost_micros),
                    usage_daily::input_tokens.eq(usage_daily::input_tokens + usage.input_tokens),
                    usage_daily::output_tokens.eq(usage_daily::output_tokens + usage.output_tokens),
                ))
                .execute($conn)
        };
    }
    match conn {
        DbConnection::Postgres(pg) => upsert!(pg)?,
        DbConnection::Sqlite(lite) => upsert!(lite)?,
    };
    Ok(())
}
