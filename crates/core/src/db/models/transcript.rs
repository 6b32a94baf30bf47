//! The CLI's transcripts, mirrored into the database: each conversation's
//! entries (the lines of its `<id>.jsonl` file) in the order they first
//! appeared, stored once each. Only stores and loads; the actor decides when.

use diesel::prelude::*;

use crate::db::schema::transcript_entries;
use crate::db::{DbConnection, DbResult};

#[derive(Debug, Insertable)]
#[diesel(table_name = transcript_entries)]
struct NewEntry<'a> {
    session_id: &'a str,
    cli_session_id: &'a str,
    position: i64,
    entry_key: &'a str,
    line: &'a str,
    created_at: chrono::NaiveDateTime,
}

/// Stores `entries` (`(key, line)`, in order) after the conversation's
/// stored ones; an entry whose key is stored already is skipped. Returns
/// how many were new.
pub fn store<'a>(
    conn: &mut DbConnection,
    session_id: &str,
    cli_session_id: &str,
    entries: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> DbResult<usize> {
    crate::db::write_transaction(conn, |conn| {
        append(conn, session_id, cli_session_id, entries)
    })
}

/// `store` within a transaction the caller holds (a fork's, with its session row).
pub fn append<'a>(
    conn: &mut DbConnection,
    session_id: &str,
    cli_session_id: &str,
    entries: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> DbResult<usize> {
    {
        let last: Option<i64> = transcript_entries::table
            .filter(transcript_entries::session_id.eq(session_id))
            .filter(transcript_entries::cli_session_id.eq(cli_session_id))
            .select(diesel::dsl::max(transcript_entries::position))
            .first(conn)?;
        let mut position = last.map_or(0, |p| p + 1);
        let created_at = crate::db::now();
        let mut stored = 0;
        for (entry_key, line) in entries {
            let row = NewEntry {
                session_id,
                cli_session_id,
                position,
                entry_key,
                line,
                created_at,
            };
            // ON CONFLICT DO NOTHING is outside the subset `MultiConnection`
            // offers, hence the match.
            let insert = diesel::insert_into(transcript_entries::table)
                .values(&row)
                .on_conflict_do_nothing();
            let inserted = match conn {
                DbConnection::Postgres(c) => insert.execute(c)?,
                DbConnection::Sqlite(c) => insert.execute(c)?,
            };
            if inserted > 0 {
                position += 1;
                stored += inserted;
            }
        }
        Ok(stored)
    }
}

/// The conversation's lines in order: its transcript file, one per line.
/// Empty when nothing was mirrored for it.
pub fn lines(
    conn: &mut DbConnection,
    session_id: &str,
    cli_session_id: &str,
) -> DbResult<Vec<String>> {
    Ok(transcript_entries::table
        .filter(transcript_entries::session_id.eq(session_id))
        .filter(transcript_entries::cli_session_id.eq(cli_session_id))
        .order(transcript_entries::position.asc())
        .select(transcript_entries::line)
        .load(conn)?)
}

/// The conversation's lines in order up to and including the entry
/// `entry_key` (a turn's last message); `None` when that entry is not
/// stored.
pub fn lines_through(
    conn: &mut DbConnection,
    session_id: &str,
    cli_session_id: &str,
    entry_key: &str,
) -> DbResult<Option<Vec<String>>> {
    let of_conversation = || {
        transcript_entries::table
            .filter(transcript_entries::session_id.eq(session_id))
            .filter(transcript_entries::cli_session_id.eq(cli_session_id))
    };
    let last: Option<i64> = of_conversation()
        .filter(transcript_entries::entry_key.eq(entry_key))
        .select(transcript_entries::position)
        .first(conn)
        .optional()?;
    let Some(last) = last else {
        return Ok(None);
    };
    Ok(Some(
        of_conversation()
            .filter(transcript_entries::position.le(last))
            .order(transcript_entries::position.asc())
            .select(transcript_entries::line)
            .load(conn)?,
    ))
}
