//! The server's vocabulary: what a turn, a job, an approval and an amount of
//! money are, with the rules that belong to them. Plain data: nothing here
//! knows HTTP, the database or the actors; everything else may use it.

pub mod agent;
pub mod answer;
pub mod approval;
pub mod attachment;
pub mod creator;
pub mod event;
pub mod job;
pub mod job_git;
pub mod mcp;
pub mod money;
pub mod pipeline;
pub mod problem;
pub mod role;
pub mod schedule;
pub mod session;
pub mod turn;

use chrono::NaiveDateTime;

/// A stored time as clients read it: RFC 3339, UTC, microseconds.
pub fn timestamp(t: &NaiveDateTime) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
