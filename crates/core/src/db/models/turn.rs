//! Recording a finished turn: history rows, its events, and the session's
//! totals, in one transaction so a turn is stored whole or not at all.

use diesel::prelude::*;

use super::event::{self, Event};
use super::job::{self, JobCompletion};
use super::message::Message;
use crate::db::schema::{messages, sessions};
use crate::db::{DbConnection, DbResult};

/// What a finished (or failed) turn leaves behind.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TurnRecord {
    pub session_id: String,
    pub tenant_id: String,
    /// Budget held for the turn; released as its real cost is charged.
    pub reservation: super::instance::Held,
    pub messages: Vec<Message>,
    pub events: Vec<Event>,
    pub cost_micros: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// Whether the turn counts as a completed turn of the session.
    pub counts_as_turn: bool,
    /// The job this turn ran, when it reached a final state.
    pub job: Option<JobCompletion>,
}

/// Stores the turn; `true` when a job webhook was queued with it.
pub fn record(conn: &mut DbConnection, turn: &TurnRecord) -> DbResult<bool> {
    crate::db::write_transaction(conn, |conn| {
        for message in &turn.messages {
            diesel::insert_into(messages::table)
                .values(message)
                .execute(conn)?;
        }
        event::insert_all(conn, &turn.events)?;
        // A turn whose instance was counted dead meanwhile (a heartbeat very
        // late) was charged its model calls then: its cost and tokens are
        // not added twice.
        let charged =
            super::tenant::settle(conn, &turn.tenant_id, &turn.reservation, turn.cost_micros)?;
        let (cost, input, output) = if charged {
            (turn.cost_micros, turn.input_tokens, turn.output_tokens)
        } else {
            (0, 0, 0)
        };
        // Totals move by deltas in SQL, never by read-modify-write.
        diesel::update(sessions::table.find(&turn.session_id))
            .set((
                sessions::total_cost_micros.eq(sessions::total_cost_micros + cost),
                sessions::turns.eq(sessions::turns + i64::from(turn.counts_as_turn)),
                sessions::input_tokens.eq(sessions::input_tokens + input),
                sessions::output_tokens.eq(sessions::output_tokens + output),
                sessions::updated_at.eq(crate::db::now()),
            ))
            .execute(conn)?;
        super::usage_daily::add(
            conn,
            &turn.tenant_id,
            super::usage_daily::TurnUsage {
                turns: i64::from(turn.counts_as_turn),
                cost_micros: cost,
                input_tokens: input,
                output_tokens: output,
            },
        )?;
        match &turn.job {
            Some(done) => job::complete_and_notify(conn, done),
            None => Ok(false),
        }
    })
}

/// Events of a turn still in flight, flushed ahead of the turn's end.
pub fn flush_events(conn: &mut DbConnection, events: &[Event]) -> DbResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    crate::db::write_transaction(conn, |conn| event::insert_all(conn, events))
}
