//! Usage figures of a tenant: totals, jobs by state, and per day. Summed in
//! Rust rather than SQL: `SUM(BIGINT)` has different types on the two
//! backends, and the rows involved are few.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use super::TenantId;
use crate::db::schema::{jobs, messages, sessions, tenants};
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

#[derive(Debug, Default, Clone, Serialize, utoipa::ToSchema)]
pub struct Usage {
    pub tenant: String,
    pub sessions: i64,
    pub turns: i64,
    /// Jobs by status.
    pub jobs: BTreeMap<String, i64>,
    /// Everything the tenant was charged, deleted sessions included.
    pub cost_micros: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// The last 30 days with activity, oldest first (from stored history).
    pub days: Vec<Day>,
}

pub fn for_tenant(conn: &mut DbConnection, tenant: &TenantId) -> DbResult<Usage> {
    let t = tenant.as_str();
    let totals: Vec<(i64, i64, i64)> = sessions::table
        .filter(sessions::tenant_id.eq(t))
        .select((
            sessions::turns,
            sessions::input_tokens,
            sessions::output_tokens,
        ))
        .load(conn)?;
    let statuses: Vec<String> = jobs::table
        .filter(jobs::tenant_id.eq(t))
        .select(jobs::status)
        .load(conn)?;
    let spent: Option<i64> = tenants::table
        .find(t)
        .select(tenants::spent_micros)
        .first(conn)
        .optional()?;
    let since = crate::db::now() - chrono::Duration::days(DAYS);
    let owned = sessions::table
        .filter(sessions::tenant_id.eq(t))
        .select(sessions::id);
    let answers: Vec<(NaiveDateTime, i64, Option<String>)> = messages::table
        .filter(messages::session_id.eq_any(owned))
        .filter(messages::role.eq("assistant"))
        .filter(messages::created_at.ge(since))
        .select((messages::created_at, messages::cost_micros, messages::usage))
        .load(conn)?;

    let mut jobs_by_state = BTreeMap::new();
    for status in statuses {
        *jobs_by_state.entry(status).or_insert(0) += 1;
    }
    let mut days: BTreeMap<String, Day> = BTreeMap::new();
    for (at, cost, usage) in answers {
        let date = at.date().to_string();
        let day = days.entry(date.clone()).or_insert_with(|| Day {
            date,
            ..Day::default()
        });
        let (input, output) = tokens_of(usage.as_deref());
        day.turns += 1;
        day.cost_micros += cost;
        day.input_tokens += input;
        day.output_tokens += output;
    }
    Ok(Usage {
        tenant: t.to_owned(),
        sessions: i64::try_from(totals.len()).unwrap_or(i64::MAX),
        turns: totals.iter().map(|r| r.0).sum(),
        input_tokens: totals.iter().map(|r| r.1).sum(),
        output_tokens: totals.iter().map(|r| r.2).sum(),
        jobs: jobs_by_state,
        cost_micros: spent.unwrap_or(0),
        days: days.into_values().collect(),
    })
}

/// Input (with cache) and output tokens of a stored usage object.
fn tokens_of(usage: Option<&str>) -> (i64, i64) {
    let Some(value) = usage.and_then(|u| serde_json::from_str::<serde_json::Value>(u).ok()) else {
        return (0, 0);
    };
    let get = |k: &str| {
        value
            .get(k)
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(0)
    };
    (
        get("input_tokens") + get("cache_creation_input_tokens") + get("cache_read_input_tokens"),
        get("output_tokens"),
    )
}
