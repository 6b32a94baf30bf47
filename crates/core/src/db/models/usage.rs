//! Usage figures of a tenant: totals, jobs by state, and per day, from the
//! `usage_daily` ledger that every stored turn adds to (so deleting a session
//! keeps what it used). Summed in Rust rather than SQL: `SUM(BIGINT)` has
//! different types on the two backends, and a tenant has one row per day.

use chrono::NaiveDate;
use diesel::prelude::*;
use serde::Serialize;

use super::TenantId;
use crate::db::schema::{jobs, messages, sessions, tenants, usage_daily};
use crate::db::{DbConnection, DbResult};

/// Days covered by `days`.
pub const DAYS: i64 = 30;

#[derive(Debug, Default, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Day {
    /// `YYYY-MM-DD`, UTC.
    pub date: String,
    pub turns: i64,
    pub cost_micros: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
}

/// The tenant's jobs: by status, with the original's `total` and `completed`.
#[derive(Debug, Default, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct JobCounts {
    pub total: i64,
    /// Jobs that ended `done`.
    pub completed: i64,
    pub queued: i64,
    pub running: i64,
    pub done: i64,
    pub failed: i64,
    pub cancelled: i64,
    pub interrupted: i64,
}

impl JobCounts {
    fn count(&mut self, status: &str) {
        self.total += 1;
        let slot = match status {
            crate::domain::job::QUEUED => &mut self.queued,
            crate::domain::job::RUNNING => &mut self.running,
            crate::domain::job::DONE => &mut self.done,
            crate::domain::job::FAILED => &mut self.failed,
            crate::domain::job::CANCELLED => &mut self.cancelled,
            crate::domain::job::INTERRUPTED => &mut self.interrupted,
            _ => return,
        };
        *slot += 1;
        self.completed = self.done;
    }
}

#[derive(Debug, Default, Clone, Serialize, utoipa::ToSchema)]
pub struct Usage {
    pub tenant: String,
    /// The tenant again, under the name clients of the original read.
    pub user_id: String,
    pub sessions: i64,
    pub turns: i64,
    /// History messages (prompts and answers) of the tenant's sessions.
    pub messages: i64,
    pub jobs: JobCounts,
    /// Everything the tenant was charged, deleted sessions included.
    pub cost_micros: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// The last 30 days with activity, oldest first (from stored history).
    pub days: Vec<Day>,
    /// Every model call of the tenant's CLI processes, as the model gateway
    /// counted it (turns cut short included).
    pub model_calls: super::model_call::ModelCallTotals,
}

pub fn for_tenant(conn: &mut DbConnection, tenant: &TenantId) -> DbResult<Usage> {
    let t = tenant.as_str();
    let sessions: i64 = sessions::table
        .filter(sessions::tenant_id.eq(t))
        .count()
        .get_result(conn)?;
    let messages: i64 = messages::table
        .filter(
            messages::session_id.eq_any(
                sessions::table
                    .filter(sessions::tenant_id.eq(t))
                    .select(sessions::id),
            ),
        )
        .count()
        .get_result(conn)?;
    let statuses: Vec<String> = jobs::table
        .filter(jobs::tenant_id.eq(t))
        .select(jobs::status)
        .load(conn)?;
    let spent: Option<i64> = tenants::table
        .find(t)
        .select(tenants::spent_micros)
        .first(conn)
        .optional()?;
    let ledger: Vec<(NaiveDate, i64, i64, i64, i64)> = usage_daily::table
        .filter(usage_daily::tenant_id.eq(t))
        .order(usage_daily::day.asc())
        .select((
            usage_daily::day,
            usage_daily::turns,
            usage_daily::cost_micros,
            usage_daily::input_tokens,
            usage_daily::output_tokens,
        ))
        .load(conn)?;

    let mut jobs = JobCounts::default();
    for status in &statuses {
        jobs.count(status);
    }
    let since = crate::db::now().date() - chrono::Duration::days(DAYS);
    let days = ledger
        .iter()
        .filter(|row| row.0 > since)
        .map(
            |&(date, turns, cost_micros, input_tokens, output_tokens)| Day {
                date: date.to_string(),
                turns,
                cost_micros,
                input_tokens,
                output_tokens,
            },
        )
        .collect();
    Ok(Usage {
        tenant: t.to_owned(),
        user_id: t.to_owned(),
        sessions,
        messages,
        turns: ledger.iter().map(|r| r.1).sum(),
        input_tokens: ledger.iter().map(|r| r.3).sum(),
        output_tokens: ledger.iter().map(|r| r.4).sum(),
        jobs,
        cost_micros: spent.unwrap_or(0),
        days,
        model_calls: super::model_call::totals(conn, tenant, None)?,
    })
}
