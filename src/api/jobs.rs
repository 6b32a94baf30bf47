//! Async jobs: accepted with 202 once written, run in the session's FIFO
//! with its chats, cancellable, reported by signed webhooks.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::chat::validate_message;
use utoipa::ToSchema;

use super::envelope::{self, Envelope, PageQuery, Paged};
use super::sessions::load_session;
use super::{idempotency, AppState};
use crate::actors::session::messages::{CancelJob, CancelReply};
use crate::actors::supervisor::messages::OpenSession;
use crate::db::models::job::{self, Job};
use crate::db::models::session::Session;
use crate::error::{ApiError, Problem};
use crate::jobs::{self as jobs_domain, JobData};
use crate::security::auth::Caller;
use crate::spec::{Effort, OutputFormat, PermissionMode, TurnOverrides};
use crate::webhooks::ssrf;

/// How long a cancel of a running job waits for the turn to stop.
const CANCEL_WAIT: Duration = Duration::from_secs(30);

/// A turn to run in the background.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateJob {
    /// The prompt; not empty, at most 1 MiB.
    #[schema(pattern = "^[^\\x00]*[^\\s\\x00][^\\x00]*$")]
    message: String,
    /// Receives the signed `job.completed` event when the job ends
    /// (http or https; internal addresses are refused).
    #[serde(default)]
    #[schema(pattern = "^[Hh][Tt][Tt][Pp][Ss]?://[^\\x00]*$")]
    webhook_url: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    effort: Option<Effort>,
    #[serde(default)]
    permission_mode: Option<PermissionMode>,
    /// Structured output: the result's `structured_output` follows the schema.
    #[serde(default)]
    output_format: Option<OutputFormat>,
}

async fn load_job(
    state: &AppState,
    caller: &Caller,
    session: &Session,
    id: &str,
) -> Result<Job, ApiError> {
    let tenant = caller.tenant.clone();
    let (session_id, job_id) = (session.id.clone(), id.to_owned());
    crate::db::run(&state.pool, move |c| {
        job::find(c, &tenant, &session_id, &job_id)
    })
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no job {id:?} in this session")))
}

/// Queues a job: answered 202 once written, run in the session's queue with
/// its chats, survives restarts. With `Idempotency-Key`, a repeat returns
/// the job already made.
#[utoipa::path(
    post,
    path = "/api/v1/sessions/{name}/jobs",
    tag = "jobs",
    params(
        ("name" = String, Path, description = "The session's name"),
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Returns the job an earlier request with this key made"),
    ),
    request_body = CreateJob,
    responses(
        (status = 202, description = "Queued; `Location` names the job", body = Envelope<JobData>),
        (status = 402, description = "The tenant's budget is used up", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No session of that name in this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The idempotency key was used for another request", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid field, or a webhook URL that is not allowed", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn create_job(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    body: super::envelope::JsonObject<CreateJob>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    validate_message(&body.message)?;
    let json_schema = super::chat::json_schema(body.output_format.as_ref())?;
    super::chat::check_deny_patterns(&state.settings, &body.message)?;
    super::chat::check_budget(&state, &caller).await?;
    if let Some(url) = &body.webhook_url {
        ssrf::check(url, &state.settings.webhook_allowed_hosts)
            .await
            .map_err(|e| ApiError::Validation(e.to_string()))?;
    }
    let session = load_session(&state, &caller, &name).await?;
    super::chat::check_permission_mode(
        &state,
        &caller,
        super::chat::session_mode(&session),
        body.permission_mode,
    )
    .await?;
    let guard = match idempotency::begin(&state, &caller, &req, &body).await? {
        idempotency::Begin::Replay(response) => return Ok(response),
        idempotency::Begin::Run(guard) => guard,
    };
    let (status, document) = idempotency::run(guard, || async {
        let overrides = TurnOverrides {
            model: body.model,
            system: body.system,
            effort: body.effort,
            permission_mode: body.permission_mode,
            json_schema,
        };
        let row = Job {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: caller.tenant.0.clone(),
            session_id: session.id.clone(),
            status: jobs_domain::QUEUED.into(),
            message: body.message,
            overrides: serde_json::to_string(&overrides).map_err(ApiError::internal)?,
            webhook_url: body.webhook_url,
            result: None,
            error: None,
            cost_micros: 0,
            duration_ms: None,
            tools_used: "[]".into(),
            attempts: 0,
            created_at: crate::db::now(),
            started_at: None,
            completed_at: None,
        };
        // Written before the 202: an accepted job is never lost.
        let insert = row.clone();
        crate::db::run(&state.pool, move |c| job::insert(c, &insert)).await?;
        if let Err(e) = jobs_domain::dispatch(&state.supervisor, session.clone(), &row).await {
            // Still queued in the database: the next start runs it.
            tracing::error!(job = %row.id, error = %e, "cannot dispatch a job now");
        }
        let target = format!("{}/{}", session.name, row.id);
        super::audit::record_prompt(&state, &req, &caller, "job.create", &target, &row.message);
        let data = JobData::new(&row, &session.name);
        Ok((
            StatusCode::ACCEPTED,
            envelope::document(&req, data).to_string(),
        ))
    })
    .await?;
    let id = serde_json::from_str::<serde_json::Value>(&document)
        .ok()
        .and_then(|d| d["data"]["id"].as_str().map(str::to_owned))
        .unwrap_or_default();
    Ok(HttpResponse::build(status)
        .content_type("application/json")
        .insert_header(("Location", format!("/api/v1/sessions/{name}/jobs/{id}")))
        .body(document))
}

/// The session's jobs, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/sessions/{name}/jobs",
    tag = "jobs",
    params(("name" = String, Path, description = "The session's name"), PageQuery),
    responses(
        (status = 200, description = "A page of jobs", body = Paged<JobData>),
        (status = 404, description = "No session of that name in this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad `page` or `limit`", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list_jobs(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.validate()?;
    let session = load_session(&state, &caller, &name).await?;
    let session_id = session.id.clone();
    let (rows, total) = crate::db::run(&state.pool, move |c| {
        job::list(c, &caller.tenant, &session_id, page.offset(), page.limit)
    })
    .await?;
    let items: Vec<JobData> = rows
        .iter()
        .map(|j| JobData::new(j, &session.name))
        .collect();
    Ok(envelope::page(&req, items, &page, total))
}

/// One job: its state, and its answer once done.
#[utoipa::path(
    get,
    path = "/api/v1/sessions/{name}/jobs/{id}",
    tag = "jobs",
    params(
        ("name" = String, Path, description = "The session's name"),
        ("id" = String, Path, description = "The job's id"),
    ),
    responses(
        (status = 200, description = "The job", body = Envelope<JobData>),
        (status = 404, description = "No such session or job in this tenant", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_job(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, id) = path.into_inner();
    let session = load_session(&state, &caller, &name).await?;
    let row = load_job(&state, &caller, &session, &id).await?;
    Ok(envelope::ok(&req, JobData::new(&row, &session.name)))
}

/// Cancels a queued job at once; stops a running one with the CLI's
/// `interrupt` (killed if it does not stop within a few seconds). A
/// finished job is a 409.
#[utoipa::path(
    post,
    path = "/api/v1/sessions/{name}/jobs/{id}/cancel",
    tag = "jobs",
    params(
        ("name" = String, Path, description = "The session's name"),
        ("id" = String, Path, description = "The job's id"),
    ),
    responses(
        (status = 200, description = "The job, now `cancelled`", body = Envelope<JobData>),
        (status = 404, description = "No such session or job in this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job already ended", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn cancel_job(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, id) = path.into_inner();
    let session = load_session(&state, &caller, &name).await?;
    let row = load_job(&state, &caller, &session, &id).await?;
    if jobs_domain::is_final(&row.status) {
        return Err(ApiError::Conflict(format!(
            "the job already ended: {}",
            row.status
        )));
    }
    let actor = state
        .supervisor
        .send(OpenSession(session.clone()))
        .await??;
    // The session's actor cancels it whether it holds the job or only the
    // database has it queued, so the events are the same either way.
    match actor.send(CancelJob { job_id: id.clone() }).await?? {
        CancelReply::Cancelling(stopped) => {
            let _ = tokio::time::timeout(CANCEL_WAIT, stopped).await;
        }
        CancelReply::NotQueued => {
            let now = load_job(&state, &caller, &session, &id).await?;
            if !jobs_domain::is_final(&now.status) {
                return Err(ApiError::Conflict(
                    "the job cannot be cancelled right now; try again".into(),
                ));
            }
        }
    }
    let row = load_job(&state, &caller, &session, &id).await?;
    if row.status != jobs_domain::CANCELLED {
        return Err(ApiError::Conflict(format!(
            "the job already ended: {}",
            row.status
        )));
    }
    super::audit::record(&state, &req, &caller, "job.cancel", &format!("{name}/{id}"));
    Ok(envelope::ok(&req, JobData::new(&row, &session.name)))
}
