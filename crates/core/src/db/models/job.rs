//! Job rows. A job is written before its 202 is returned and moves
//! `queued → running → done | failed | cancelled | interrupted`.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use serde_json::{json, Value};

use crate::domain::job::JobData;
use crate::domain::money::micros_to_usd;
use crate::domain::timestamp;

use super::TenantId;
use crate::db::schema::jobs;
use crate::db::{DbConnection, DbResult};
use crate::domain::job::{QUEUED, RUNNING};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = jobs)]
pub struct Job {
    pub id: String,
    pub tenant_id: String,
    pub session_id: String,
    pub status: String,
    pub message: String,
    pub overrides: String,
    pub webhook_url: Option<String>,
    pub result: Option<String>,
    pub error: Option<String>,
    pub cost_micros: i64,
    pub duration_ms: Option<i64>,
    pub tools_used: String,
    pub attempts: i64,
    pub created_at: NaiveDateTime,
    pub started_at: Option<NaiveDateTime>,
    pub completed_at: Option<NaiveDateTime>,
    /// What the job's git step did (JSON), when it asked for one.
    pub git: Option<String>,
    /// Its images and documents (JSON of `Attachment`s), when it has any.
    pub attachments: Option<String>,
    /// Who queued it: a key's id, or `person:<sub>`.
    pub created_by: Option<String>,
    /// The maker's label: a person's email, or a key's label.
    pub created_by_label: Option<String>,
}

impl Job {
    /// The job as clients and webhook receivers see it.
    pub fn data(&self, session_name: &str) -> JobData {
        let job = self;
        JobData {
            id: job.id.clone(),
            session: session_name.to_owned(),
            status: job.status.clone(),
            message: job.message.clone(),
            webhook_url: job.webhook_url.clone(),
            result: job
                .result
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok())
                .unwrap_or(Value::Null),
            error: job.error.clone(),
            cost: micros_to_usd(job.cost_micros),
            cost_micros: job.cost_micros,
            duration_ms: job.duration_ms,
            tools_used: serde_json::from_str(&job.tools_used).unwrap_or_else(|_| json!([])),
            attempts: job.attempts,
            created_at: timestamp(&job.created_at),
            started_at: job.started_at.as_ref().map(timestamp),
            completed_at: job.completed_at.as_ref().map(timestamp),
            git: job
                .git
                .as_deref()
                .and_then(|g| serde_json::from_str(g).ok())
                .unwrap_or(Value::Null),
            created_by: crate::domain::creator::Creator::of(&job.created_by, &job.created_by_label),
        }
    }
}

/// How a job ended, written with the turn that ran it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JobCompletion {
    pub job_id: String,
    pub status: std::borrow::Cow<'static, str>,
    pub result: Option<String>,
    pub error: Option<String>,
    pub cost_micros: i64,
    pub duration_ms: i64,
    pub tools_used: String,
    /// What the job's git step did (JSON), when it asked for one.
    #[serde(default)]
    pub git: Option<String>,
}

pub fn insert(conn: &mut DbConnection, job: &Job) -> DbResult<()> {
    diesel::insert_into(jobs::table).values(job).execute(conn)?;
    Ok(())
}

pub fn find(
    conn: &mut DbConnection,
    tenant: &TenantId,
    session_id: &str,
    id: &str,
) -> DbResult<Option<Job>> {
    Ok(jobs::table
        .filter(jobs::id.eq(id))
        .filter(jobs::tenant_id.eq(tenant.as_str()))
        .filter(jobs::session_id.eq(session_id))
        .select(Job::as_select())
        .first(conn)
        .optional()?)
}

/// The job `id` of the tenant's session named `session_name` when `sight`
/// sees that session, in one statement (a status poll's whole read; only
/// the job's columns are read).
pub fn find_in_named_session(
    conn: &mut DbConnection,
    tenant: &TenantId,
    sight: &super::session::Sight,
    session_name: &str,
    id: &str,
) -> DbResult<Option<Job>> {
    use crate::db::schema::sessions;
    Ok(jobs::table
        .inner_join(sessions::table)
        .filter(jobs::id.eq(id))
        .filter(jobs::tenant_id.eq(tenant.as_str()))
        .filter(sessions::tenant_id.eq(tenant.as_str()))
        .filter(sessions::name.eq(session_name))
        .filter(super::session::visible_to(sight))
        .select(Job::as_select())
        .first(conn)
        .optional()?)
}

pub fn find_by_id(conn: &mut DbConnection, id: &str) -> DbResult<Option<Job>> {
    Ok(jobs::table
        .find(id)
        .select(Job::as_select())
        .first(conn)
        .optional()?)
}

/// One page of a session's jobs, newest first, and the total.
pub fn list(
    conn: &mut DbConnection,
    tenant: &TenantId,
    session_id: &str,
    offset: i64,
    limit: i64,
) -> DbResult<(Vec<Job>, i64)> {
    let scope = jobs::table
        .filter(jobs::tenant_id.eq(tenant.as_str()))
        .filter(jobs::session_id.eq(session_id));
    let total = scope.count().get_result(conn)?;
    let rows = scope
        .order((jobs::created_at.desc(), jobs::id.desc()))
        .offset(offset)
        .limit(limit)
        .select(Job::as_select())
        .load(conn)?;
    Ok((rows, total))
}

/// `queued → running`, counting the attempt. No-op for a job that was
/// cancelled meanwhile.
pub fn mark_running(conn: &mut DbConnection, id: &str) -> DbResult<bool> {
    let n = diesel::update(jobs::table.find(id).filter(jobs::status.eq(QUEUED)))
        .set((
            jobs::status.eq(RUNNING),
            jobs::attempts.eq(jobs::attempts + 1),
            jobs::started_at.eq(crate::db::now()),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// Writes a job's final state; `None` when it was already final.
pub fn complete(conn: &mut DbConnection, done: &JobCompletion) -> DbResult<Option<Job>> {
    let n = diesel::update(
        jobs::table
            .find(&done.job_id)
            .filter(jobs::status.eq_any([QUEUED, RUNNING])),
    )
    .set((
        jobs::status.eq(done.status.as_ref()),
        jobs::result.eq(&done.result),
        jobs::error.eq(&done.error),
        jobs::cost_micros.eq(jobs::cost_micros + done.cost_micros),
        jobs::duration_ms.eq(done.duration_ms),
        jobs::tools_used.eq(&done.tools_used),
        jobs::git.eq(&done.git),
        jobs::completed_at.eq(crate::db::now()),
        // Sent with the turn: an ended job keeps no copy (reads of the
        // row, a status poll among them, stay small).
        jobs::attachments.eq(None::<String>),
    ))
    .execute(conn)?;
    if n == 0 {
        return Ok(None);
    }
    find_by_id(conn, &done.job_id)
}

/// Jobs in one state, oldest first (crash recovery, dispatch at start).
pub fn with_status(conn: &mut DbConnection, status: &str) -> DbResult<Vec<Job>> {
    Ok(jobs::table
        .filter(jobs::status.eq(status))
        .order((jobs::created_at.asc(), jobs::id.asc()))
        .select(Job::as_select())
        .load(conn)?)
}

/// One session's jobs in one state, oldest first (a session taken over
/// from a node that died).
pub fn of_session_with_status(
    conn: &mut DbConnection,
    session_id: &str,
    status: &str,
) -> DbResult<Vec<Job>> {
    Ok(jobs::table
        .filter(jobs::session_id.eq(session_id))
        .filter(jobs::status.eq(status))
        .order((jobs::created_at.asc(), jobs::id.asc()))
        .select(Job::as_select())
        .load(conn)?)
}

/// A job that was running when the server died goes back to the queue.
pub fn requeue(conn: &mut DbConnection, id: &str) -> DbResult<()> {
    diesel::update(jobs::table.find(id).filter(jobs::status.eq(RUNNING)))
        .set(jobs::status.eq(QUEUED))
        .execute(conn)?;
    Ok(())
}

/// Writes a job's final state and, when it has a webhook URL, queues the
/// completion event in the same transaction (the caller provides it). `true`
/// when a webhook was queued.
pub fn complete_and_notify(conn: &mut DbConnection, done: &JobCompletion) -> DbResult<bool> {
    let Some(job) = complete(conn, done)? else {
        return Ok(false);
    };
    let Some(url) = job.webhook_url.clone() else {
        return Ok(false);
    };
    let session_name: String = crate::db::schema::sessions::table
        .find(&job.session_id)
        .select(crate::db::schema::sessions::name)
        .first(conn)
        .optional()?
        .unwrap_or_default();
    let data = job.data(&session_name);
    let (event_type, body) = crate::domain::job::completion_event(&data);
    super::webhook::enqueue(
        conn,
        &job.tenant_id,
        &job.id,
        &url,
        &event_type,
        &body.to_string(),
    )?;
    Ok(true)
}

/// The jobs `ids` (of any tenant: the caller got the ids from its own
/// rows), each with its session's name.
pub fn with_session_names(conn: &mut DbConnection, ids: &[&str]) -> DbResult<Vec<(Job, String)>> {
    use crate::db::schema::sessions;
    Ok(jobs::table
        .inner_join(sessions::table)
        .filter(jobs::id.eq_any(ids))
        .select((Job::as_select(), sessions::name))
        .load(conn)?)
}

/// The tenant's job in session `session_name` asking `message`, queued at
/// or after `since`: a job a launch queued before the server stopped, so
/// the launch done again adopts it rather than queue a second one.
pub fn find_queued_since(
    conn: &mut DbConnection,
    tenant: &TenantId,
    session_name: &str,
    message: &str,
    since: chrono::NaiveDateTime,
) -> DbResult<Option<Job>> {
    use crate::db::schema::sessions;
    Ok(jobs::table
        .inner_join(sessions::table)
        .filter(jobs::tenant_id.eq(tenant.as_str()))
        .filter(sessions::tenant_id.eq(tenant.as_str()))
        .filter(sessions::name.eq(session_name))
        .filter(jobs::message.eq(message))
        .filter(jobs::created_at.ge(since))
        .order((jobs::created_at.asc(), jobs::id.asc()))
        .select(Job::as_select())
        .first(conn)
        .optional()?)
}
