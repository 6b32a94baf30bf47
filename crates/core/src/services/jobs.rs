//! Jobs: turns run in the background. Queued through `turns::submit`
//! (`Reply::Job`); here they are stored, handed to their session, read,
//! cancelled, and recovered after a restart.

use std::time::Duration;

use super::ownership::Recovery;
use super::{Requester, Services};
use crate::actors::session::messages::{CancelJob, CancelReply};
use crate::db::models::job::{self, Job};
use crate::db::models::session::Session;
use crate::domain::job as status;
use crate::error::ServiceError;

/// How long a cancel of a running job waits for the turn to stop.
const CANCEL_WAIT: Duration = Duration::from_secs(30);

/// Stores a job for `session`, then hands it to the session's actor. Once
/// stored it is never lost: if the hand-over fails, the next start runs it.
pub(super) async fn insert(
    services: &Services,
    who: &Requester,
    session: &Session,
    request: crate::domain::turn::TurnRequest,
    attachments: Vec<crate::domain::attachment::Attachment>,
    webhook_url: Option<String>,
    job_id: Option<String>,
) -> Result<Job, ServiceError> {
    let attachments = match attachments.is_empty() {
        true => None,
        false => Some(serde_json::to_string(&attachments).map_err(ServiceError::internal)?),
    };
    let row = Job {
        id: job_id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
        tenant_id: who.tenant().0.clone(),
        session_id: session.id.clone(),
        status: status::QUEUED.into(),
        message: request.message,
        overrides: serde_json::to_string(&request.overrides).map_err(ServiceError::internal)?,
        webhook_url,
        result: None,
        error: None,
        cost_micros: 0,
        duration_ms: None,
        tools_used: "[]".into(),
        attempts: 0,
        created_at: crate::db::now(),
        started_at: None,
        completed_at: None,
        git: None,
        attachments,
        created_by: Some(who.key_id.clone()),
        created_by_label: Some(who.key_label.clone()),
    };
    // The session is this node's before the job is stored (in a cluster,
    // a job stored for a session another node runs would wait unseen).
    let actor = super::ownership::actor(services, session).await?;
    let insert = row.clone();
    crate::db::run(&services.pool, move |c| job::insert(c, &insert)).await?;
    if let Err(e) = super::ownership::enqueue_job(&actor, &row).await {
        tracing::error!(job = %row.id, error = %e, "cannot dispatch a job now");
    }
    Ok(row)
}

/// The caller's job `id` of session `name`.
pub async fn get(
    services: &Services,
    who: &Requester,
    name: &str,
    id: &str,
) -> Result<Job, ServiceError> {
    // One query when both are there; the misses say which is missing.
    tracing::Span::current().record("session", name);
    let (tenant, sight) = (who.tenant().clone(), who.sight());
    let (session_name, job_id) = (name.to_owned(), id.to_owned());
    let found = crate::db::read(&services.pool, move |c| {
        job::find_in_named_session(c, &tenant, &sight, &session_name, &job_id)
    })
    .await?;
    if let Some(found) = found {
        return Ok(found);
    }
    let session = super::sessions::load(services, who, name).await?;
    find(services, who, &session, id).await
}

async fn find(
    services: &Services,
    who: &Requester,
    session: &Session,
    id: &str,
) -> Result<Job, ServiceError> {
    let tenant = who.tenant().clone();
    let (session_id, job_id) = (session.id.clone(), id.to_owned());
    crate::db::run(&services.pool, move |c| {
        job::find(c, &tenant, &session_id, &job_id)
    })
    .await?
    .ok_or_else(|| ServiceError::NotFound(format!("no job {id:?} in this session")))
}

/// A page of the session's jobs, newest first, its total, and the session.
pub async fn list(
    services: &Services,
    who: &Requester,
    name: &str,
    offset: i64,
    limit: i64,
) -> Result<(Vec<Job>, i64, Session), ServiceError> {
    let session = super::sessions::load(services, who, name).await?;
    let (tenant, session_id) = (who.tenant().clone(), session.id.clone());
    let (rows, total) = crate::db::run(&services.pool, move |c| {
        job::list(c, &tenant, &session_id, offset, limit)
    })
    .await?;
    Ok((rows, total, session))
}

/// Cancels a queued job at once; stops a running one with the CLI's
/// `interrupt`. A job that already ended is a 409. Audited.
pub async fn cancel(
    services: &Services,
    who: &Requester,
    name: &str,
    id: &str,
) -> Result<(Job, Session), ServiceError> {
    let session = super::sessions::load(services, who, name).await?;
    let row = find(services, who, &session, id).await?;
    if status::is_final(&row.status) {
        return Err(ServiceError::Conflict(format!(
            "the job already ended: {}",
            row.status
        )));
    }
    let actor = super::ownership::actor(services, &session).await?;
    // The session's actor cancels it whether it holds the job or only the
    // database has it queued, so the events are the same either way.
    match actor
        .send(CancelJob {
            job_id: id.to_owned(),
        })
        .await??
    {
        CancelReply::Cancelling(stopped) => {
            let _ = tokio::time::timeout(CANCEL_WAIT, stopped).await;
        }
        CancelReply::NotQueued => {
            let now = find(services, who, &session, id).await?;
            if !status::is_final(&now.status) {
                return Err(ServiceError::Conflict(
                    "the job cannot be cancelled right now; try again".into(),
                ));
            }
        }
    }
    let row = find(services, who, &session, id).await?;
    if row.status != status::CANCELLED {
        return Err(ServiceError::Conflict(format!(
            "the job already ended: {}",
            row.status
        )));
    }
    super::audit::record(services, who, "job.cancel", &format!("{name}/{id}")).await;
    Ok((row, session))
}

/// At the start of a server that runs alone: every job left running or
/// queued by the previous run (see `requeue_running`).
pub async fn recover(services: &Services) -> crate::db::DbResult<Recovery> {
    use super::ownership::{enqueue_job, requeue_running};
    use crate::db::models::session;

    let max_attempts = i64::from(services.settings.jobs.max_attempts);
    let mut report = crate::db::run(&services.pool, move |c| {
        requeue_running(c, None, max_attempts)
    })
    .await?;
    let queued = crate::db::run(&services.pool, |c| {
        let jobs = job::with_status(c, status::QUEUED)?;
        let mut with_sessions = Vec::with_capacity(jobs.len());
        for queued in jobs {
            if let Some(session) = session::find_by_id(c, &queued.session_id)? {
                with_sessions.push((session, queued));
            }
        }
        Ok(with_sessions)
    })
    .await?;
    for (session, queued) in queued {
        let handed = match super::ownership::actor(services, &session).await {
            Ok(actor) => enqueue_job(&actor, &queued).await,
            Err(e) => Err(e.to_string()),
        };
        match handed {
            Ok(()) => report.dispatched += 1,
            Err(e) => {
                tracing::error!(job = %queued.id, error = %e, "cannot dispatch a recovered job")
            }
        }
    }
    Ok(report)
}
