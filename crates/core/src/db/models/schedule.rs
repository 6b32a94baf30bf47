//! Schedule and schedule-run rows. A due time is claimed in one
//! transaction that records its run and moves the schedule's `next_run_at`
//! on (on PostgreSQL the due schedules are read `FOR UPDATE SKIP LOCKED`, so
//! nodes ticking together take different ones); the unique index on
//! `(schedule_id, due_at)` refuses a second claim of the same due time.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::TenantId;
use crate::db::schema::{jobs, schedule_runs, schedules};
use crate::db::{DbConnection, DbResult};
use crate::domain::job as job_status;
use crate::domain::schedule::{
    RunCounts, RUN_CLAIMED, RUN_ERROR, RUN_SKIPPED, RUN_STARTED, RUN_WAITING,
};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = schedules)]
pub struct Schedule {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub key_id: String,
    pub key_label: String,
    pub role: String,
    pub cron: Option<String>,
    pub every_seconds: Option<i64>,
    pub run_at: Option<NaiveDateTime>,
    pub timezone: String,
    pub job: String,
    pub overlap: String,
    pub catch_up: String,
    pub start_deadline_seconds: Option<i64>,
    pub paused: bool,
    pub pause_note: Option<String>,
    pub next_run_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = schedule_runs)]
pub struct ScheduleRun {
    pub id: String,
    pub schedule_id: String,
    pub tenant_id: String,
    pub origin: String,
    pub due_at: NaiveDateTime,
    pub status: String,
    pub reason: Option<String>,
    pub job_id: String,
    pub session_name: Option<String>,
    pub started_at: Option<NaiveDateTime>,
    /// When it was last claimed to be started (ids order runs by creation).
    pub claimed_at: NaiveDateTime,
}

/// Stores `row` unless the tenant already has `max` schedules; `false` then.
/// A name taken in the tenant is the unique index's error.
pub fn insert(conn: &mut DbConnection, row: &Schedule, max: i64) -> DbResult<bool> {
    crate::db::write_transaction(conn, |conn| {
        let count: i64 = schedules::table
            .filter(schedules::tenant_id.eq(&row.tenant_id))
            .count()
            .get_result(conn)?;
        if count >= max {
            return Ok(false);
        }
        diesel::insert_into(schedules::table)
            .values(row)
            .execute(conn)?;
        Ok(true)
    })
}

/// The tenant's schedule with this id or name.
pub fn find(conn: &mut DbConnection, tenant: &TenantId, key: &str) -> DbResult<Option<Schedule>> {
    Ok(schedules::table
        .filter(schedules::tenant_id.eq(&tenant.0))
        .filter(schedules::id.eq(key).or(schedules::name.eq(key)))
        .select(Schedule::as_select())
        .first(conn)
        .optional()?)
}

/// A page of the tenant's schedules by name, and their total.
pub fn list(
    conn: &mut DbConnection,
    tenant: &TenantId,
    offset: i64,
    limit: i64,
) -> DbResult<(Vec<Schedule>, i64)> {
    let rows = schedules::table
        .filter(schedules::tenant_id.eq(&tenant.0))
        .order(schedules::name.asc())
        .offset(offset)
        .limit(limit)
        .select(Schedule::as_select())
        .load(conn)?;
    let total = schedules::table
        .filter(schedules::tenant_id.eq(&tenant.0))
        .count()
        .get_result(conn)?;
    Ok((rows, total))
}

/// Deletes the schedule and its runs (their jobs stay).
pub fn delete(conn: &mut DbConnection, tenant: &TenantId, id: &str) -> DbResult<bool> {
    crate::db::write_transaction(conn, |conn| {
        let n = diesel::delete(
            schedules::table
                .filter(schedules::tenant_id.eq(&tenant.0))
                .filter(schedules::id.eq(id)),
        )
        .execute(conn)?;
        diesel::delete(schedule_runs::table.filter(schedule_runs::schedule_id.eq(id)))
            .execute(conn)?;
        Ok(n == 1)
    })
}

/// Pauses (with a note) or resumes the schedule, setting its next due time.
pub fn set_paused(
    conn: &mut DbConnection,
    tenant: &TenantId,
    id: &str,
    paused: bool,
    note: Option<String>,
    next_run_at: Option<NaiveDateTime>,
) -> DbResult<()> {
    diesel::update(
        schedules::table
            .filter(schedules::tenant_id.eq(&tenant.0))
            .filter(schedules::id.eq(id)),
    )
    .set((
        schedules::paused.eq(paused),
        schedules::pause_note.eq(note),
        schedules::next_run_at.eq(next_run_at),
        schedules::updated_at.eq(crate::db::now()),
    ))
    .execute(conn)?;
    Ok(())
}

/// What the claim of one due schedule decided: the runs to record and the
/// schedule's next due time.
pub struct Claim {
    pub runs: Vec<ScheduleRun>,
    pub next_run_at: Option<NaiveDateTime>,
}

/// Claims up to `limit` schedules due at `now`: `decide` says, for each,
/// which runs to record and when it is due next, and both are written in
/// the one transaction that read it. Returns the recorded runs with their
/// schedules.
pub fn claim_due(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    limit: i64,
    mut decide: impl FnMut(&Schedule) -> Claim,
) -> DbResult<Vec<(Schedule, ScheduleRun)>> {
    let mut take = |conn: &mut DbConnection, due: Vec<Schedule>| -> DbResult<_> {
        let mut claimed = Vec::new();
        for schedule in due {
            let claim = decide(&schedule);
            let moved = diesel::update(
                schedules::table
                    .find(&schedule.id)
                    .filter(schedules::next_run_at.eq(schedule.next_run_at)),
            )
            .set(schedules::next_run_at.eq(claim.next_run_at))
            .execute(conn)?;
            if moved != 1 {
                continue;
            }
            for run in &claim.runs {
                diesel::insert_into(schedule_runs::table)
                    .values(run)
                    .execute(conn)?;
            }
            claimed.extend(claim.runs.into_iter().map(|run| (schedule.clone(), run)));
        }
        Ok(claimed)
    };
    // A macro, not a closure: each backend gets its own query type.
    macro_rules! due {
        () => {
            schedules::table
                .filter(schedules::paused.eq(false))
                .filter(schedules::next_run_at.le(now))
                .order(schedules::next_run_at.asc())
                .limit(limit)
                .select(Schedule::as_select())
        };
    }
    crate::db::write_transaction(conn, |conn| {
        let rows = match conn {
            DbConnection::Postgres(pg) => due!().for_update().skip_locked().load(pg)?,
            _ => due!().load(conn)?,
        };
        take(conn, rows)
    })
}

/// Records a run claimed outside a due time (a trigger).
pub fn insert_run(conn: &mut DbConnection, run: &ScheduleRun) -> DbResult<()> {
    diesel::insert_into(schedule_runs::table)
        .values(run)
        .execute(conn)?;
    Ok(())
}

/// Moves a run from `from` to `to` (with its reason, session and start);
/// `false` when it was no longer in `from` (another node took it).
pub fn move_run(
    conn: &mut DbConnection,
    id: &str,
    from: &str,
    to: &str,
    reason: Option<String>,
    session_name: Option<String>,
) -> DbResult<bool> {
    let started_at = (to == RUN_STARTED).then(crate::db::now);
    let n = diesel::update(
        schedule_runs::table
            .find(id)
            .filter(schedule_runs::status.eq(from)),
    )
    .set((
        schedule_runs::status.eq(to),
        schedule_runs::reason.eq(reason),
        schedule_runs::session_name.eq(session_name),
        schedule_runs::started_at.eq(started_at),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Takes over a run left `claimed` before `stale_before` (its node stopped
/// while starting it): `false` when another node took it first.
pub fn retake(conn: &mut DbConnection, run: &ScheduleRun) -> DbResult<bool> {
    let n = diesel::update(
        schedule_runs::table
            .find(&run.id)
            .filter(schedule_runs::status.eq(RUN_CLAIMED))
            .filter(schedule_runs::claimed_at.eq(run.claimed_at)),
    )
    .set(schedule_runs::claimed_at.eq(crate::db::now()))
    .execute(conn)?;
    Ok(n == 1)
}

/// Takes a `waiting` run to start it; `false` when another node took it.
pub fn claim_waiting(conn: &mut DbConnection, id: &str) -> DbResult<bool> {
    let n = diesel::update(
        schedule_runs::table
            .find(id)
            .filter(schedule_runs::status.eq(RUN_WAITING)),
    )
    .set((
        schedule_runs::status.eq(RUN_CLAIMED),
        schedule_runs::claimed_at.eq(crate::db::now()),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Runs left `claimed` before `stale_before`, and `waiting` runs, oldest
/// first, with their schedules.
pub fn unstarted(
    conn: &mut DbConnection,
    stale_before: NaiveDateTime,
    limit: i64,
) -> DbResult<Vec<(Schedule, ScheduleRun)>> {
    let runs: Vec<ScheduleRun> = schedule_runs::table
        .filter(
            schedule_runs::status
                .eq(RUN_WAITING)
                .or(schedule_runs::status
                    .eq(RUN_CLAIMED)
                    .and(schedule_runs::claimed_at.lt(stale_before))),
        )
        // Least recently tried first: a run put back to wait goes to the
        // back, so no tenant's runs keep the others out of the batch.
        .order(schedule_runs::claimed_at.asc())
        .limit(limit)
        .select(ScheduleRun::as_select())
        .load(conn)?;
    let ids: Vec<&str> = runs.iter().map(|r| r.schedule_id.as_str()).collect();
    let owners: Vec<Schedule> = schedules::table
        .filter(schedules::id.eq_any(&ids))
        .select(Schedule::as_select())
        .load(conn)?;
    Ok(runs
        .into_iter()
        .filter_map(|run| {
            let schedule = owners.iter().find(|s| s.id == run.schedule_id)?.clone();
            Some((schedule, run))
        })
        .collect())
}

/// The schedule's runs not over yet, oldest first (other than `except`):
/// claimed or waiting to start, or started with a job that has not ended.
pub fn active_runs(
    conn: &mut DbConnection,
    schedule_id: &str,
    except: &str,
) -> DbResult<Vec<ScheduleRun>> {
    let live_jobs = jobs::table
        .filter(jobs::status.eq_any([job_status::QUEUED, job_status::RUNNING]))
        .select(jobs::id);
    Ok(schedule_runs::table
        .filter(schedule_runs::schedule_id.eq(schedule_id))
        .filter(schedule_runs::id.ne(except))
        .filter(
            schedule_runs::status
                .eq_any([RUN_CLAIMED, RUN_WAITING])
                .or(schedule_runs::status
                    .eq(RUN_STARTED)
                    .and(schedule_runs::job_id.eq_any(live_jobs))),
        )
        .order(schedule_runs::id.asc())
        .select(ScheduleRun::as_select())
        .load(conn)?)
}

/// Whether a job with this id exists (a run interrupted after its job was
/// stored).
pub fn job_exists(conn: &mut DbConnection, job_id: &str) -> DbResult<bool> {
    let n: i64 = jobs::table
        .filter(jobs::id.eq(job_id))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// The tenant's runs started since `since` (for the runs-per-hour limit).
pub fn started_since(
    conn: &mut DbConnection,
    tenant_id: &str,
    since: NaiveDateTime,
) -> DbResult<i64> {
    Ok(schedule_runs::table
        .filter(schedule_runs::tenant_id.eq(tenant_id))
        .filter(schedule_runs::started_at.ge(since))
        .count()
        .get_result(conn)?)
}

/// A run with its job's status, when it has a job.
pub type RunWithJob = (ScheduleRun, Option<String>);

/// A page of the schedule's runs, newest first, with their jobs' status.
pub fn runs(
    conn: &mut DbConnection,
    tenant: &TenantId,
    schedule_id: &str,
    offset: i64,
    limit: i64,
) -> DbResult<(Vec<RunWithJob>, i64)> {
    let page: Vec<ScheduleRun> = schedule_runs::table
        .filter(schedule_runs::tenant_id.eq(&tenant.0))
        .filter(schedule_runs::schedule_id.eq(schedule_id))
        .order(schedule_runs::id.desc())
        .offset(offset)
        .limit(limit)
        .select(ScheduleRun::as_select())
        .load(conn)?;
    let total = schedule_runs::table
        .filter(schedule_runs::tenant_id.eq(&tenant.0))
        .filter(schedule_runs::schedule_id.eq(schedule_id))
        .count()
        .get_result(conn)?;
    Ok((with_job_status(conn, page)?, total))
}

fn with_job_status(conn: &mut DbConnection, runs: Vec<ScheduleRun>) -> DbResult<Vec<RunWithJob>> {
    let ids: Vec<&str> = runs
        .iter()
        .filter(|r| r.status == RUN_STARTED)
        .map(|r| r.job_id.as_str())
        .collect();
    let statuses: Vec<(String, String)> = jobs::table
        .filter(jobs::id.eq_any(&ids))
        .select((jobs::id, jobs::status))
        .load(conn)?;
    Ok(runs
        .into_iter()
        .map(|run| {
            let status = statuses
                .iter()
                .find(|(id, _)| *id == run.job_id && run.status == RUN_STARTED)
                .map(|(_, s)| s.clone());
            (run, status)
        })
        .collect())
}

/// How the schedule's runs went, and its latest run.
pub fn summary(
    conn: &mut DbConnection,
    schedule_id: &str,
) -> DbResult<(RunCounts, Option<RunWithJob>)> {
    let by_status: Vec<(String, i64)> = schedule_runs::table
        .filter(schedule_runs::schedule_id.eq(schedule_id))
        .group_by(schedule_runs::status)
        .select((schedule_runs::status, diesel::dsl::count_star()))
        .load(conn)?;
    let count = |status: &str| {
        by_status
            .iter()
            .find(|(s, _)| s == status)
            .map_or(0, |(_, n)| *n)
    };
    let counts = RunCounts {
        started: count(RUN_STARTED),
        skipped: count(RUN_SKIPPED),
        errors: count(RUN_ERROR),
    };
    let last: Vec<ScheduleRun> = schedule_runs::table
        .filter(schedule_runs::schedule_id.eq(schedule_id))
        .order(schedule_runs::id.desc())
        .limit(1)
        .select(ScheduleRun::as_select())
        .load(conn)?;
    Ok((counts, with_job_status(conn, last)?.into_iter().next()))
}

/// The role the key (or trust rule, `oidc:<id>`, or person, `person:<sub>`)
/// that made a schedule of `tenant` has now; `None` once it is revoked or
/// deleted, or the person left the tenant.
pub fn creator_role(
    conn: &mut DbConnection,
    tenant: &str,
    key_id: &str,
) -> DbResult<Option<String>> {
    use crate::db::schema::{api_keys, tenant_members, trust_rules};
    if let Some(subject) = key_id.strip_prefix("person:") {
        return Ok(tenant_members::table
            .filter(tenant_members::tenant_id.eq(tenant))
            .filter(tenant_members::subject.eq(subject))
            .select(tenant_members::role)
            .first(conn)
            .optional()?);
    }
    if let Some(rule) = key_id.strip_prefix(crate::security::tokens::KEY_ID_PREFIX) {
        return Ok(trust_rules::table
            .find(rule)
            .select(trust_rules::role)
            .first(conn)
            .optional()?);
    }
    Ok(api_keys::table
        .find(key_id)
        .filter(api_keys::revoked_at.is_null())
        .select(api_keys::role)
        .first(conn)
        .optional()?)
}

/// Whether the schedule has a run waiting already (overlap `queue` keeps
/// one at most).
pub fn has_waiting(conn: &mut DbConnection, schedule_id: &str, except: &str) -> DbResult<bool> {
    let n: i64 = schedule_runs::table
        .filter(schedule_runs::schedule_id.eq(schedule_id))
        .filter(schedule_runs::id.ne(except))
        .filter(schedule_runs::status.eq(RUN_WAITING))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Pauses a schedule from the clock's side, with why.
pub fn pause_with_note(conn: &mut DbConnection, id: &str, note: &str) -> DbResult<()> {
    diesel::update(schedules::table.find(id))
        .set((
            schedules::paused.eq(true),
            schedules::pause_note.eq(note),
            schedules::next_run_at.eq(None::<NaiveDateTime>),
            schedules::updated_at.eq(crate::db::now()),
        ))
        .execute(conn)?;
    Ok(())
}
