//! Async jobs as clients and webhook receivers see them: states, the
//! `JobData` document, and the webhook event a finished job produces.

use serde::Serialize;
use serde_json::{json, Value};

use crate::actors::session::turn::{micros_to_usd, Turn};
use crate::api::envelope::timestamp;
use crate::db::models::job::Job;

pub const QUEUED: &str = "queued";
pub const RUNNING: &str = "running";
pub const DONE: &str = "done";
pub const FAILED: &str = "failed";
pub const CANCELLED: &str = "cancelled";
pub const INTERRUPTED: &str = "interrupted";

/// States a job never leaves.
pub const FINAL: [&str; 4] = [DONE, FAILED, CANCELLED, INTERRUPTED];

pub fn is_final(status: &str) -> bool {
    FINAL.contains(&status)
}

/// A job as the API and webhooks show it. `result` and `tools_used` are JSON
/// values (never strings holding JSON).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobData {
    pub id: String,
    /// The session's name.
    pub session: String,
    /// `queued`, `running`, then `done`, `failed`, `cancelled` or `interrupted`.
    pub status: String,
    pub message: String,
    pub webhook_url: Option<String>,
    /// The answer (as `/chat` gives it) once the job is `done`.
    #[schema(value_type = Option<crate::actors::session::turn::ChatResponse>)]
    pub result: Value,
    pub error: Option<String>,
    pub cost: f64,
    pub cost_micros: i64,
    pub duration_ms: Option<i64>,
    #[schema(value_type = Vec<crate::actors::session::turn::ToolUse>)]
    pub tools_used: Value,
    /// Runs started; more than 1 after a restart resumed it.
    pub attempts: i64,
    pub created_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
}

impl JobData {
    pub fn new(job: &Job, session_name: &str) -> JobData {
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
        }
    }
}

/// The webhook body for a job that reached a final state: compatible with
/// receivers of the Python original (`event: job.completed`) and typed per
/// Standard Webhooks (`type: job.<status>`).
pub fn completion_event(data: &JobData) -> (String, Value) {
    let event_type = format!("job.{}", data.status);
    let body = json!({
        "event": "job.completed",
        "type": event_type,
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "job": data,
    });
    (event_type, body)
}

/// Hands a queued job to its session's actor (FIFO with the session's chats).
pub async fn dispatch(
    supervisor: &actix::Addr<crate::actors::supervisor::Supervisor>,
    session: crate::db::models::session::Session,
    job: &Job,
) -> Result<(), String> {
    use crate::actors::session::messages::Enqueue;
    use crate::actors::supervisor::messages::OpenSession;

    let addr = supervisor
        .send(OpenSession(session))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    addr.send(Enqueue(turn_for(job)))
        .await
        .map_err(|e| e.to_string())
}

/// The turn that runs a job; no client waits on it.
pub fn turn_for(job: &Job) -> Turn {
    Turn {
        job_id: Some(job.id.clone()),
        message: job.message.clone(),
        overrides: serde_json::from_str(&job.overrides).unwrap_or_default(),
        subscriber: None,
        reply: None,
        span: tracing::info_span!("job", job_id = %job.id),
        approvals: None,
    }
}

/// What start-up recovery did.
#[derive(Debug, Default)]
pub struct Recovery {
    pub resumed: usize,
    pub interrupted: usize,
    pub dispatched: usize,
}

/// After a crash or a restart: jobs that were running run again (their
/// session resumes its conversation) while attempts remain, else they end
/// `interrupted` with their webhook; every queued job is handed to its
/// session, oldest first.
pub async fn recover(
    pool: &crate::db::DbPool,
    supervisor: &actix::Addr<crate::actors::supervisor::Supervisor>,
    max_attempts: u32,
) -> crate::db::DbResult<Recovery> {
    use crate::db::models::{job, session};

    let mut report = Recovery::default();
    let max_attempts = i64::from(max_attempts);
    let (resumed, interrupted) = crate::db::run(pool, move |c| {
        let mut resumed = 0;
        let mut interrupted = 0;
        for running in job::with_status(c, RUNNING)? {
            if running.attempts < max_attempts {
                job::requeue(c, &running.id)?;
                resumed += 1;
            } else {
                let done = job::JobCompletion {
                    job_id: running.id.clone(),
                    status: INTERRUPTED.into(),
                    result: None,
                    error: Some(format!(
                        "the server stopped while the job was running, {} time(s); giving up",
                        running.attempts
                    )),
                    cost_micros: 0,
                    duration_ms: 0,
                    tools_used: running.tools_used.clone(),
                };
                job::complete_and_notify(c, &done)?;
                interrupted += 1;
            }
        }
        Ok((resumed, interrupted))
    })
    .await?;
    report.resumed = resumed;
    report.interrupted = interrupted;

    let queued = crate::db::run(pool, |c| {
        let jobs = job::with_status(c, QUEUED)?;
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
        match dispatch(supervisor, session, &queued).await {
            Ok(()) => report.dispatched += 1,
            Err(e) => {
                tracing::error!(job = %queued.id, error = %e, "cannot dispatch a recovered job")
            }
        }
    }
    Ok(report)
}
