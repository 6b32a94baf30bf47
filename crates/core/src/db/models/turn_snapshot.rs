//! Where each turn of a session ended, for a fork at that turn: the last
//! conversation entry of the turn and whether its workspace was
//! snapshotted. Only stores and loads; the session actor writes a row per
//! turn, the forks service reads it.

use diesel::prelude::*;

use crate::db::schema::turn_snapshots;
use crate::db::{DbConnection, DbResult};

/// What became of a turn's workspace snapshot.
pub mod state {
    /// In the snapshot store.
    pub const STORED: &str = "stored";
    /// Over `SNAPSHOT_MAX_MB` or `SNAPSHOT_MAX_FILES`: not taken.
    pub const OVER_LIMIT: &str = "over_limit";
    /// Reading the workspace or writing the store failed.
    pub const FAILED: &str = "failed";
    /// Taken, then dropped: older than the `SNAPSHOT_KEEP_TURNS` last turns.
    pub const EXPIRED: &str = "expired";
    /// Snapshots are off (`SNAPSHOT_KEEP_TURNS=0`).
    pub const OFF: &str = "off";
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = turn_snapshots)]
pub struct TurnSnapshot {
    pub session_id: String,
    pub turn: i64,
    /// The conversation the turn belongs to.
    pub cli_session_id: String,
    /// The transcript entry the turn ended with (its last assistant
    /// message); `None` when the CLI answered nothing.
    pub entry_uuid: Option<String>,
    /// One of [`state`].
    pub snapshot: String,
    /// Why there is no snapshot, when there is none.
    pub reason: Option<String>,
    pub files: i64,
    pub bytes: i64,
    pub created_at: chrono::NaiveDateTime,
}

/// Stores the row of a turn (a turn number written twice keeps the first).
pub fn insert(conn: &mut DbConnection, row: &TurnSnapshot) -> DbResult<()> {
    let insert = diesel::insert_into(turn_snapshots::table)
        .values(row)
        .on_conflict_do_nothing();
    // ON CONFLICT is outside the subset `MultiConnection` offers.
    match conn {
        DbConnection::Postgres(c) => insert.execute(c)?,
        DbConnection::Sqlite(c) => insert.execute(c)?,
    };
    Ok(())
}

/// The row of turn `turn` of the session.
pub fn find(
    conn: &mut DbConnection,
    session_id: &str,
    turn: i64,
) -> DbResult<Option<TurnSnapshot>> {
    Ok(turn_snapshots::table
        .find((session_id, turn))
        .select(TurnSnapshot::as_select())
        .first(conn)
        .optional()?)
}

/// Marks the stored snapshots of turns before `keep_from` expired; returns
/// their turn numbers (their files may go).
pub fn expire_before(
    conn: &mut DbConnection,
    session_id: &str,
    keep_from: i64,
) -> DbResult<Vec<i64>> {
    crate::db::write_transaction(conn, |conn| {
        let old = turn_snapshots::table
            .filter(turn_snapshots::session_id.eq(session_id))
            .filter(turn_snapshots::turn.lt(keep_from))
            .filter(turn_snapshots::snapshot.eq(state::STORED));
        let turns: Vec<i64> = old.select(turn_snapshots::turn).load(conn)?;
        diesel::update(old)
            .set(turn_snapshots::snapshot.eq(state::EXPIRED))
            .execute(conn)?;
        Ok(turns)
    })
}
