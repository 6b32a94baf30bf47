//! Stream events: everything a turn emits, numbered per session by `seq`.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::TenantId;
use crate::db::schema::{events, sessions};
use crate::db::{DbConnection, DbResult};
use crate::domain::event::TURN_ENDS;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = events)]
pub struct Event {
    pub session_id: String,
    pub seq: i64,
    pub kind: String,
    /// The event's JSON payload.
    pub payload: String,
    pub created_at: NaiveDateTime,
}

/// The highest `seq` stored for a session (0 when it has none).
pub fn max_seq(conn: &mut DbConnection, session_id: &str) -> DbResult<i64> {
    let max: Option<i64> = events::table
        .filter(events::session_id.eq(session_id))
        .select(diesel::dsl::max(events::seq))
        .first(conn)?;
    Ok(max.unwrap_or(0))
}

/// Inserts events in one statement per backend (multi-row inserts are not in
/// the subset `MultiConnection` offers, hence the match).
pub fn insert_all(conn: &mut DbConnection, rows: &[Event]) -> DbResult<()> {
    // Stay below SQLite's bound-parameter limit.
    for chunk in rows.chunks(500) {
        match conn {
            DbConnection::Sqlite(c) => {
                diesel::insert_into(events::table)
                    .values(chunk)
                    .execute(c)?;
            }
            DbConnection::Postgres(c) => {
                diesel::insert_into(events::table)
                    .values(chunk)
                    .execute(c)?;
            }
        }
    }
    // Other nodes streaming these sessions hear of them at commit.
    if let DbConnection::Postgres(c) = conn {
        let mut told: Vec<&str> = Vec::new();
        for row in rows {
            if !told.contains(&row.session_id.as_str()) {
                crate::db::notify::notify_events(c, &row.session_id)?;
                told.push(&row.session_id);
            }
        }
    }
    Ok(())
}

/// A session's events after `after_seq` up to `upto_seq`, in order, at most
/// `limit` of them.
pub fn list_after(
    conn: &mut DbConnection,
    tenant: &TenantId,
    session_id: &str,
    after_seq: i64,
    upto_seq: i64,
    limit: i64,
) -> DbResult<Vec<Event>> {
    let owned = sessions::table
        .filter(sessions::id.eq(session_id))
        .filter(sessions::tenant_id.eq(tenant.as_str()))
        .select(sessions::id);
    Ok(events::table
        .filter(events::session_id.eq_any(owned))
        .filter(events::seq.gt(after_seq))
        .filter(events::seq.le(upto_seq))
        .order(events::seq.asc())
        .limit(limit)
        .select(Event::as_select())
        .load(conn)?)
}

/// The lowest `seq` still stored for a session (`None` when it has none).
pub fn min_seq(conn: &mut DbConnection, session_id: &str) -> DbResult<Option<i64>> {
    Ok(events::table
        .filter(events::session_id.eq(session_id))
        .select(diesel::dsl::min(events::seq))
        .first(conn)?)
}

/// Deletes events stored before `cutoff` (retention); returns how many.
pub fn purge_before(conn: &mut DbConnection, cutoff: NaiveDateTime) -> DbResult<usize> {
    Ok(diesel::delete(events::table.filter(events::created_at.lt(cutoff))).execute(conn)?)
}

/// Ends a turn its node left open (the node died mid-turn): when the
/// session's last `turn_started` has no end after it, appends a
/// `turn_interrupted` event with `payload`; its seq, if one was added.
pub fn close_open_turn(
    conn: &mut DbConnection,
    session_id: &str,
    payload: &str,
) -> DbResult<Option<i64>> {
    crate::db::write_transaction(conn, |conn| {
        let last_of = |conn: &mut DbConnection, kinds: &[&str]| -> DbResult<Option<i64>> {
            Ok(events::table
                .filter(events::session_id.eq(session_id))
                .filter(events::kind.eq_any(kinds))
                .select(diesel::dsl::max(events::seq))
                .first(conn)?)
        };
        let Some(started) = last_of(conn, &["turn_started"])? else {
            return Ok(None);
        };
        if last_of(conn, &TURN_ENDS)?.is_some_and(|ended| ended > started) {
            return Ok(None);
        }
        let seq = max_seq(conn, session_id)? + 1;
        insert_all(
            conn,
            &[Event {
                session_id: session_id.to_owned(),
                seq,
                kind: "turn_interrupted".into(),
                payload: payload.to_owned(),
                created_at: crate::db::now(),
            }],
        )?;
        Ok(Some(seq))
    })
}
