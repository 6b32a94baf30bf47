//! Schedules: jobs started by the clock. Clients create, read, pause,
//! resume, trigger and delete them here; `tick` (run by every node, every
//! `SCHEDULE_TICK_MS`) claims due times and starts their runs.
//!
//! Exactly once: a due time is claimed in the one transaction that moves
//! the schedule on (see `db::models::schedule::claim_due`), and each run's
//! job id is chosen then, so a run interrupted by a crash is found again
//! (its job already stored) or started under that same id, never twice.

use std::time::Duration;

use chrono::NaiveDateTime;

use super::launch::{self, JobPlan};
use super::{Requester, Services};
use crate::db::models::schedule::{self as rows, Claim, RunWithJob, Schedule, ScheduleRun};
use crate::domain::role::Role;
use crate::domain::schedule::{
    CatchUp, Overlap, RunCounts, RunData, ScheduleData, Timing, ORIGIN_CATCH_UP, ORIGIN_MANUAL,
    ORIGIN_SCHEDULE, RUN_CLAIMED, RUN_ERROR, RUN_SKIPPED, RUN_STARTED, RUN_WAITING,
};
use crate::domain::timestamp;
use crate::error::ServiceError;
use crate::security::auth::Caller;

/// A due time later than this when claimed was missed (no server ran, or
/// the schedule was claimed long after): `catch_up` decides what runs.
const MISSED_AFTER: Duration = Duration::from_secs(5);
/// Missed due times of one schedule run at most this many (`catch_up: all`).
const CATCH_UP_LIMIT: usize = 100;
/// Schedules claimed per tick and node.
const CLAIM_BATCH: i64 = 100;
/// A run still `claimed` this long after its claim lost its node (longer
/// than any start, a session made from a large repository included).
const CLAIM_STALE: Duration = Duration::from_secs(600);
/// The longest `start_deadline_seconds` (a week).
const MAX_START_DEADLINE: i64 = 7 * 24 * 3600;

/// `POST /schedules`, the name already validated by the caller's surface.
pub struct NewSchedule {
    pub name: String,
    pub cron: Option<String>,
    pub every: Option<String>,
    pub at: Option<String>,
    pub timezone: Option<String>,
    pub job: JobPlan,
    pub overlap: Option<Overlap>,
    pub catch_up: Option<CatchUp>,
    pub start_deadline_seconds: Option<i64>,
    pub paused: Option<bool>,
}

fn timing(row: &Schedule) -> Result<Timing, String> {
    let every = row.every_seconds.map(|s| format!("{s}s"));
    let at = row.run_at.map(|t| timestamp(&t));
    Timing::parse(
        row.cron.as_deref(),
        every.as_deref(),
        at.as_deref(),
        &row.timezone,
    )
}

/// Creates a schedule: checked whole (its timing, its job, the session it
/// names) before it is stored within the tenant's limit. Audited.
pub async fn create(
    services: &Services,
    who: &Requester,
    new: NewSchedule,
) -> Result<Schedule, ServiceError> {
    super::named_session::validate_name(&new.name).map_err(|_| {
        ServiceError::Validation(format!(
            "invalid schedule name {:?}: 1-100 of [A-Za-z0-9._-], not starting with a dot",
            new.name
        ))
    })?;
    if new.name.len() > 100 {
        return Err(ServiceError::Validation(
            "a schedule name has at most 100 characters".into(),
        ));
    }
    let timezone = new.timezone.unwrap_or_else(|| "UTC".into());
    let timing = Timing::parse(
        new.cron.as_deref(),
        new.every.as_deref(),
        new.at.as_deref(),
        &timezone,
    )
    .map_err(ServiceError::Validation)?;
    new.job.check("job")?;
    if let Some(name) = &new.job.session {
        super::sessions::load(services, who, name).await?;
    }
    if let Some(url) = &new.job.webhook_url {
        crate::webhooks::ssrf::check(url, &services.settings.webhooks.allowed_hosts)
            .await
            .map_err(|e| ServiceError::Validation(format!("job.webhook_url: {e}")))?;
    }
    if let Some(deadline) = new.start_deadline_seconds {
        if !(1..=MAX_START_DEADLINE).contains(&deadline) {
            return Err(ServiceError::Validation(format!(
                "start_deadline_seconds must be from 1 to {MAX_START_DEADLINE}"
            )));
        }
    }
    let now = crate::db::now();
    let paused = new.paused.unwrap_or(false);
    let (every_seconds, run_at) = match &timing {
        Timing::Every { seconds } => (Some(*seconds), None),
        Timing::At(at) => (None, Some(*at)),
        Timing::Cron { .. } => (None, None),
    };
    let row = Schedule {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: who.tenant().0.clone(),
        name: new.name,
        key_id: who.key_id.clone(),
        key_label: who.key_label.clone(),
        role: who.role.clone(),
        cron: new.cron.map(|c| c.trim().to_owned()),
        every_seconds,
        run_at,
        timezone,
        job: serde_json::to_string(&new.job).map_err(ServiceError::internal)?,
        overlap: new.overlap.unwrap_or_default().as_str().into(),
        catch_up: new.catch_up.unwrap_or_default().as_str().into(),
        start_deadline_seconds: new.start_deadline_seconds,
        paused,
        pause_note: None,
        next_run_at: if paused { None } else { timing.first(now) },
        created_at: now,
        updated_at: now,
    };
    let max = services.settings.jobs.schedules.per_tenant;
    let insert = row.clone();
    let stored = crate::db::run(&services.pool, move |c| rows::insert(c, &insert, max))
        .await
        .map_err(|e| match e.is_unique_violation() {
            true => {
                ServiceError::Conflict(format!("a schedule named {:?} already exists", row.name))
            }
            false => ServiceError::from(e),
        })?;
    if !stored {
        return Err(ServiceError::RateLimited(format!(
            "this tenant has its {max} schedules (SCHEDULES_PER_TENANT); delete one first"
        )));
    }
    super::audit::record(services, who, "schedule.create", &row.name).await;
    Ok(row)
}

/// The caller's schedule by id or name.
pub async fn load(
    services: &Services,
    who: &Requester,
    key: &str,
) -> Result<Schedule, ServiceError> {
    let (tenant, key_owned) = (who.tenant().clone(), key.to_owned());
    crate::db::run(&services.pool, move |c| rows::find(c, &tenant, &key_owned))
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("no schedule {key:?} in this tenant")))
}

/// The schedule as clients see it (its counts and last run read now).
pub async fn view(services: &Services, row: Schedule) -> Result<ScheduleData, ServiceError> {
    let id = row.id.clone();
    let (counts, last) = crate::db::run(&services.pool, move |c| rows::summary(c, &id)).await?;
    Ok(data(row, counts, last))
}

/// A page of the caller's schedules, and their total.
pub async fn list(
    services: &Services,
    who: &Requester,
    offset: i64,
    limit: i64,
) -> Result<(Vec<ScheduleData>, i64), ServiceError> {
    let tenant = who.tenant().clone();
    let (page, total) = crate::db::run(&services.pool, move |c| {
        rows::list(c, &tenant, offset, limit)
    })
    .await?;
    let mut views = Vec::with_capacity(page.len());
    for row in page {
        views.push(view(services, row).await?);
    }
    Ok((views, total))
}

/// Deletes the schedule and its record of runs; jobs it started stay.
pub async fn delete(services: &Services, who: &Requester, key: &str) -> Result<(), ServiceError> {
    let row = load(services, who, key).await?;
    let (tenant, id) = (who.tenant().clone(), row.id.clone());
    crate::db::run(&services.pool, move |c| rows::delete(c, &tenant, &id)).await?;
    super::audit::record(services, who, "schedule.delete", &row.name).await;
    Ok(())
}

/// Pauses the schedule: nothing runs until it is resumed (due times in
/// between are not caught up).
pub async fn pause(
    services: &Services,
    who: &Requester,
    key: &str,
    note: Option<String>,
) -> Result<Schedule, ServiceError> {
    if note.as_ref().is_some_and(|n| n.len() > 1000) {
        return Err(ServiceError::Validation(
            "a pause note has at most 1000 characters".into(),
        ));
    }
    set_paused(services, who, key, true, note).await
}

/// Resumes the schedule from now.
pub async fn resume(
    services: &Services,
    who: &Requester,
    key: &str,
) -> Result<Schedule, ServiceError> {
    set_paused(services, who, key, false, None).await
}

async fn set_paused(
    services: &Services,
    who: &Requester,
    key: &str,
    paused: bool,
    note: Option<String>,
) -> Result<Schedule, ServiceError> {
    let row = load(services, who, key).await?;
    let next = match paused {
        true => None,
        false => {
            let now = crate::db::now();
            match timing(&row).map_err(ServiceError::internal)? {
                // A one-shot whose instant passed while paused stays done.
                Timing::At(at) if at <= now => None,
                t => t.first(now),
            }
        }
    };
    let (tenant, id, stored_note) = (who.tenant().clone(), row.id.clone(), note.clone());
    crate::db::run(&services.pool, move |c| {
        rows::set_paused(c, &tenant, &id, paused, stored_note, next)
    })
    .await?;
    let action = if paused {
        "schedule.pause"
    } else {
        "schedule.resume"
    };
    super::audit::record(services, who, action, &row.name).await;
    load(services, who, &row.id).await
}

/// Starts a run now, outside the schedule's times (also while paused);
/// the overlap policy applies. Audited.
pub async fn trigger(
    services: &Services,
    who: &Requester,
    key: &str,
) -> Result<RunData, ServiceError> {
    let schedule = load(services, who, key).await?;
    let run = new_run(&schedule, ORIGIN_MANUAL, crate::db::now(), None);
    let insert = run.clone();
    crate::db::run(&services.pool, move |c| rows::insert_run(c, &insert)).await?;
    super::audit::record(services, who, "schedule.trigger", &schedule.name).await;
    start(services, &schedule, run.clone()).await;
    let (tenant, schedule_id, run_id) = (who.tenant().clone(), schedule.id.clone(), run.id);
    let (page, _) = crate::db::run(&services.pool, move |c| {
        rows::runs(c, &tenant, &schedule_id, 0, 50)
    })
    .await?;
    page.into_iter()
        .find(|(r, _)| r.id == run_id)
        .map(run_data)
        .ok_or_else(|| ServiceError::internal("a triggered run vanished"))
}

/// A page of the schedule's runs, newest first, and their total.
pub async fn runs(
    services: &Services,
    who: &Requester,
    key: &str,
    offset: i64,
    limit: i64,
) -> Result<(Vec<RunData>, i64), ServiceError> {
    let schedule = load(services, who, key).await?;
    let tenant = who.tenant().clone();
    let (page, total) = crate::db::run(&services.pool, move |c| {
        rows::runs(c, &tenant, &schedule.id, offset, limit)
    })
    .await?;
    Ok((page.into_iter().map(run_data).collect(), total))
}

/// One pass of the clock: claims due times, starts their runs, and starts
/// runs left waiting (overlap `queue`) or left claimed by a node that
/// stopped. Returns how many runs it handled.
pub async fn tick(services: &Services) -> usize {
    let now = crate::db::now();
    let claimed = crate::db::run(&services.pool, move |c| {
        rows::claim_due(c, now, CLAIM_BATCH, |s| decide(s, now))
    })
    .await;
    let claimed = match claimed {
        Ok(claimed) => claimed,
        Err(e) => {
            tracing::warn!(error = %e, "cannot claim due schedules");
            return 0;
        }
    };
    let mut handled = claimed.len();
    for (schedule, run) in claimed {
        if run.status == RUN_SKIPPED {
            crate::metrics::schedule_run(&run.origin, "skipped");
            continue;
        }
        start(services, &schedule, run).await;
    }
    let stale_before = now - chrono::Duration::from_std(CLAIM_STALE).unwrap_or_default();
    let unstarted = crate::db::run(&services.pool, move |c| {
        rows::unstarted(c, stale_before, CLAIM_BATCH)
    })
    .await
    .unwrap_or_default();
    for (schedule, mut run) in unstarted {
        // Taken in one conditional update, so one node starts it.
        let take = run.clone();
        let taken = crate::db::run(&services.pool, move |c| match take.status.as_str() {
            RUN_WAITING => rows::claim_waiting(c, &take.id),
            _ => rows::retake(c, &take),
        })
        .await;
        if !matches!(taken, Ok(true)) {
            continue;
        }
        run.status = RUN_CLAIMED.into();
        handled += 1;
        start(services, &schedule, run).await;
    }
    handled
}

/// What a claimed schedule runs: one run per due time, missed due times as
/// `catch_up` says, and its next due time.
fn decide(schedule: &Schedule, now: NaiveDateTime) -> Claim {
    let Some(from) = schedule.next_run_at else {
        return Claim {
            runs: Vec::new(),
            next_run_at: None,
        };
    };
    let Ok(timing) = timing(schedule) else {
        // Stored rows were checked when made; an unreadable one stops.
        return Claim {
            runs: Vec::new(),
            next_run_at: None,
        };
    };
    let (due, over_limit, next) = timing.due_until(from, now, CATCH_UP_LIMIT + 1);
    let missed_before = now - chrono::Duration::from_std(MISSED_AFTER).unwrap_or_default();
    let (missed, on_time): (Vec<_>, Vec<_>) = due.into_iter().partition(|t| *t < missed_before);
    let mut runs: Vec<ScheduleRun> = Vec::new();
    let missed_count = missed.len() + over_limit;
    if let Some(latest) = missed.last().copied() {
        match CatchUp::from_stored(&schedule.catch_up) {
            CatchUp::None => runs.push(new_run(
                schedule,
                ORIGIN_CATCH_UP,
                latest,
                Some(skipped(format!(
                    "{missed_count} due time(s) passed while no server ran them (catch_up: none)"
                ))),
            )),
            CatchUp::One => {
                let mut run = new_run(schedule, ORIGIN_CATCH_UP, latest, None);
                if missed_count > 1 {
                    run.reason = Some(format!(
                        "runs once for {missed_count} due times missed (catch_up: one)"
                    ));
                }
                runs.push(run);
            }
            CatchUp::All => {
                runs.extend(
                    missed
                        .iter()
                        .take(CATCH_UP_LIMIT)
                        .map(|t| new_run(schedule, ORIGIN_CATCH_UP, *t, None)),
                );
                if missed_count > CATCH_UP_LIMIT {
                    if let Some(last) = runs.last_mut() {
                        last.reason = Some(format!(
                            "{} more missed due times were not run (at most {CATCH_UP_LIMIT})",
                            missed_count - CATCH_UP_LIMIT
                        ));
                    }
                }
            }
        }
    }
    runs.extend(
        on_time
            .into_iter()
            .map(|t| new_run(schedule, ORIGIN_SCHEDULE, t, None)),
    );
    Claim {
        runs,
        next_run_at: next,
    }
}

/// A run's status and reason when it is recorded as skipped.
struct Skipped(String);

fn skipped(reason: String) -> Skipped {
    Skipped(reason)
}

fn new_run(
    schedule: &Schedule,
    origin: &str,
    due_at: NaiveDateTime,
    skip: Option<Skipped>,
) -> ScheduleRun {
    let (status, reason) = match skip {
        Some(Skipped(reason)) => (RUN_SKIPPED, Some(reason)),
        None => (RUN_CLAIMED, None),
    };
    ScheduleRun {
        id: uuid::Uuid::now_v7().to_string(),
        schedule_id: schedule.id.clone(),
        tenant_id: schedule.tenant_id.clone(),
        origin: origin.into(),
        due_at,
        status: status.into(),
        reason,
        job_id: uuid::Uuid::now_v7().to_string(),
        session_name: None,
        started_at: None,
        claimed_at: crate::db::now(),
    }
}

/// Starts a claimed (or waiting) run: its start deadline, the tenant's
/// runs per hour and the overlap policy first, then its job. Whatever
/// happens is written on the run; nothing is returned.
async fn start(services: &Services, schedule: &Schedule, run: ScheduleRun) {
    let outcome = match start_checked(services, schedule, &run).await {
        Ok(outcome) => outcome,
        // In a cluster, the session runs on another node: that node's
        // clock starts the run (any node tries waiting runs).
        Err(ServiceError::Unavailable(_)) => Outcome::Waiting,
        Err(e) => Outcome::Error(e.to_string()),
    };
    let from = run.status.clone();
    let (to, reason, session) = match &outcome {
        Outcome::Started(session) => (RUN_STARTED, run.reason.clone(), Some(session.clone())),
        Outcome::Waiting => (RUN_WAITING, None, None),
        Outcome::Skipped(reason) => (RUN_SKIPPED, Some(reason.clone()), None),
        Outcome::Error(reason) => (RUN_ERROR, Some(reason.clone()), None),
    };
    if from == to {
        return;
    }
    crate::metrics::schedule_run(&run.origin, outcome.label());
    let id = run.id.clone();
    let moved = crate::db::run(&services.pool, move |c| {
        rows::move_run(c, &id, &from, to, reason, session)
    })
    .await;
    if let Err(e) = moved {
        tracing::error!(run = %run.id, error = %e, "cannot record a schedule run");
    }
}

enum Outcome {
    /// Its job is stored, in this session.
    Started(String),
    Waiting,
    Skipped(String),
    Error(String),
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Started(_) => "started",
            Outcome::Waiting => "waiting",
            Outcome::Skipped(_) => "skipped",
            Outcome::Error(_) => "error",
        }
    }
}

async fn start_checked(
    services: &Services,
    schedule: &Schedule,
    run: &ScheduleRun,
) -> Result<Outcome, ServiceError> {
    let plan: JobPlan = serde_json::from_str(&schedule.job).map_err(ServiceError::internal)?;
    let who = launch::requester(
        Caller {
            tenant: crate::db::models::TenantId(schedule.tenant_id.clone()),
            key_id: schedule.key_id.clone(),
            key_label: schedule.key_label.clone(),
            role: schedule.role.clone(),
            person: None,
        },
        format!("schedule-run-{}", run.id),
    );
    let session_name = run_session_name(schedule, run, &plan);
    let job_id = run.job_id.clone();
    // Interrupted after its job was stored: that job is the run's.
    if crate::db::run(&services.pool, move |c| rows::job_exists(c, &job_id)).await? {
        return Ok(Outcome::Started(session_name));
    }
    // Runs act with the rights their creator has now: none once its key is
    // revoked (or its trust rule deleted), and never more than when made.
    let key_id = schedule.key_id.clone();
    let tenant_id = schedule.tenant_id.clone();
    let current = crate::db::run(&services.pool, move |c| {
        rows::creator_role(c, &tenant_id, &key_id)
    })
    .await?;
    // The lower of the two; below member, nothing runs.
    let role = current
        .as_deref()
        .map(|now| Role::from_stored(now).min(Role::from_stored(&schedule.role)))
        .filter(|role| *role >= Role::Member);
    let Some(role) = role else {
        let (note, why) = match current {
            None => (
                "paused: the key that made it was revoked (or its trust rule or membership is gone)",
                "the key (or trust rule) that made this schedule was revoked or deleted, or the person who made it left the tenant; the schedule is paused",
            ),
            Some(_) => (
                "paused: the one who made it can no longer run jobs",
                "the one who made this schedule is now a viewer and cannot run jobs; the schedule is paused",
            ),
        };
        let id = schedule.id.clone();
        crate::db::run(&services.pool, move |c| rows::pause_with_note(c, &id, note)).await?;
        return Ok(Outcome::Skipped(why.into()));
    };
    let who = match role.as_str() == schedule.role {
        true => who,
        false => launch::requester(
            Caller {
                role: role.as_str().into(),
                ..who.caller.clone()
            },
            who.request_id.clone(),
        ),
    };
    let now = crate::db::now();
    if let Some(deadline) = schedule.start_deadline_seconds {
        let late = (now - run.due_at).num_seconds();
        if run.origin != ORIGIN_MANUAL && late > deadline {
            return Ok(Outcome::Skipped(format!(
                "{late} s after its due time, past start_deadline_seconds ({deadline})"
            )));
        }
    }
    let limit = services.settings.jobs.schedules.runs_per_hour;
    let tenant_id = schedule.tenant_id.clone();
    let hour_ago = now - chrono::Duration::hours(1);
    let started = crate::db::run(&services.pool, move |c| {
        rows::started_since(c, &tenant_id, hour_ago)
    })
    .await?;
    if started >= limit {
        return Ok(Outcome::Skipped(format!(
            "this tenant's schedules started {started} runs in the last hour (SCHEDULE_RUNS_PER_HOUR is {limit})"
        )));
    }
    let (schedule_id, run_id) = (schedule.id.clone(), run.id.clone());
    let active = crate::db::run(&services.pool, move |c| {
        rows::active_runs(c, &schedule_id, &run_id)
    })
    .await?;
    // Only earlier runs hold this one back.
    let active: Vec<ScheduleRun> = active.into_iter().filter(|a| a.id < run.id).collect();
    if let Some(last) = active.first() {
        match Overlap::from_stored(&schedule.overlap) {
            Overlap::Skip => {
                return Ok(Outcome::Skipped(format!(
                    "the last run (job {}) has not ended (overlap: skip)",
                    last.job_id
                )))
            }
            Overlap::Queue => {
                let (schedule_id, run_id) = (schedule.id.clone(), run.id.clone());
                let waiting = crate::db::run(&services.pool, move |c| {
                    rows::has_waiting(c, &schedule_id, &run_id)
                })
                .await?;
                return Ok(match waiting {
                    // One waiting run at most: a slow job cannot pile them up.
                    true => Outcome::Skipped(
                        "a run is waiting for the last one already (overlap: queue keeps one)"
                            .into(),
                    ),
                    false => Outcome::Waiting,
                });
            }
            Overlap::Replace => {
                for earlier in &active {
                    replace(services, &who, earlier).await;
                }
            }
            Overlap::Allow => {}
        }
    }
    // A new session made before a crash is the run's own: reused.
    let mut plan = plan;
    if plan.new_session.is_some() {
        let exists = super::sessions::load(services, &who, &session_name)
            .await
            .is_ok();
        if exists {
            plan.new_session = None;
            plan.session = Some(session_name.clone());
        }
    }
    let message = plan.message.clone();
    let (_, session) = launch::launch_as(
        services,
        &who,
        &plan,
        message,
        &session_name,
        Some(run.job_id.clone()),
    )
    .await?;
    Ok(Outcome::Started(session.name))
}

/// The session a run's job goes to: the plan's, or its own new one named
/// after the schedule and the run.
fn run_session_name(schedule: &Schedule, run: &ScheduleRun, plan: &JobPlan) -> String {
    match &plan.session {
        Some(name) => name.clone(),
        None => {
            let suffix: String = run
                .id
                .chars()
                .rev()
                .filter(|c| *c != '-')
                .take(12)
                .collect();
            format!("{}-{suffix}", schedule.name)
        }
    }
}

/// Cancels an earlier run's job for a run that replaces it.
async fn replace(services: &Services, who: &Requester, earlier: &ScheduleRun) {
    let Some(session) = &earlier.session_name else {
        return;
    };
    if let Err(e) = super::jobs::cancel(services, who, session, &earlier.job_id).await {
        tracing::info!(job = %earlier.job_id, error = %e, "replaced run's job not cancelled");
    }
}

fn data(row: Schedule, counts: RunCounts, last: Option<RunWithJob>) -> ScheduleData {
    ScheduleData {
        id: row.id,
        name: row.name,
        cron: row.cron,
        every_seconds: row.every_seconds,
        at: row.run_at.map(|t| timestamp(&t)),
        timezone: row.timezone,
        job: serde_json::from_str(&row.job).unwrap_or_default(),
        overlap: Overlap::from_stored(&row.overlap),
        catch_up: CatchUp::from_stored(&row.catch_up),
        start_deadline_seconds: row.start_deadline_seconds,
        paused: row.paused,
        pause_note: row.pause_note,
        next_run_at: row.next_run_at.map(|t| timestamp(&t)),
        last_run: last.map(run_data),
        counts,
        created_at: timestamp(&row.created_at),
        updated_at: timestamp(&row.updated_at),
    }
}

fn run_data((run, job_status): RunWithJob) -> RunData {
    let has_job = run.status == RUN_STARTED;
    RunData {
        status: job_status.unwrap_or_else(|| run.status.clone()),
        job_id: has_job.then(|| run.job_id.clone()),
        session: run.session_name,
        id: run.id,
        origin: run.origin,
        due_at: timestamp(&run.due_at),
        reason: run.reason,
        started_at: run.started_at.map(|t| timestamp(&t)),
    }
}
