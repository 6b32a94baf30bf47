//! Async jobs: accepted with 202 once written, run in the session's FIFO
//! with its chats, cancellable, reported by signed webhooks.

use crate::identity::Who;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use claude_code_api_core::error::ServiceError;
use serde::{Deserialize, Serialize};

use utoipa::ToSchema;

use super::envelope::{self, Envelope, PageQuery, Paged};
use super::idempotency;
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use claude_code_api_core::domain::job::JobData;
use claude_code_api_core::domain::session::{Effort, OutputFormat, PermissionMode, TurnOverrides};
use claude_code_api_core::domain::turn::TurnRequest;
use claude_code_api_core::services::jobs;
use claude_code_api_core::services::turns::{self, Reply, Submitted, Target};

/// A turn to run in the background.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateJob {
    /// The prompt: text (not empty, at most 1 MiB), or a list of text,
    /// image and document blocks (kept with the job until it runs).
    message: claude_code_api_core::domain::attachment::MessageInput,
    /// Receives the signed `job.completed` event when the job ends
    /// (http or https, no user or password in it, at most 2048 characters;
    /// internal addresses are refused).
    #[serde(default)]
    #[schema(pattern = "^[Hh][Tt][Tt][Pp][Ss]?://[^\\x00]*$", max_length = 2048)]
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
    /// When the turn ends well, commit, push and open a pull request (the
    /// session must come from a repository); the job's `git` says what was done.
    #[serde(default)]
    git: Option<claude_code_api_core::domain::job_git::JobGit>,
    /// This job's own subagents, laid over the session's by name.
    #[serde(default)]
    agents:
        Option<std::collections::BTreeMap<String, claude_code_api_core::domain::agent::AgentSpec>>,
    /// This job's own MCP servers, laid over the session's by name (as the
    /// session's `mcp_servers`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    mcp_servers: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    /// This job's own choice of the session's `strict_mcp_config`.
    #[serde(default)]
    strict_mcp_config: Option<bool>,
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
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Returns the job an earlier request with this key and body made (with `Idempotent-Replayed: true`), kept 24 hours"),
    ),
    request_body = CreateJob,
    responses(
        (status = 202, description = "Queued; `Location` names the job", body = Envelope<JobData>),
        (status = 402, description = "The tenant's budget is used up", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No session of that name in this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A request with this idempotency key is still being processed, or `git` on a session not made from a repository", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body, or the message's attachments, larger than allowed (MAX_ATTACHMENTS_MB)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "An attachment whose bytes are not an image or document type the model reads, or not the type named", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid field, a webhook URL that is not allowed, or an idempotency key used with another body", body = Problem, content_type = "application/problem+json"),
        (status = 507, description = "The tenant's disk quota is reached (a job whose turn reaches it fails with this problem)", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn create_job(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    name: web::Path<String>,
    body: super::envelope::TurnBody<CreateJob>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let guard = match idempotency::begin(&state, &who, &req, &body).await? {
        idempotency::Begin::Replay(response) => return Ok(response),
        idempotency::Begin::Run(guard) => guard,
    };
    let (status, document) = idempotency::run(guard, || async {
        if body.git.is_some() {
            claude_code_api_core::services::git::check_job_git(&state.services, &who, &name)
                .await?;
        }
        let request = TurnRequest::from_input(
            body.message,
            TurnOverrides {
                model: body.model,
                system: body.system,
                effort: body.effort,
                permission_mode: body.permission_mode,
                json_schema: claude_code_api_core::services::turns::output_schema(
                    body.output_format.as_ref(),
                )?,
                git: body.git,
                agents: body.agents,
                mcp_servers: body.mcp_servers,
                strict_mcp_config: body.strict_mcp_config,
            },
        );
        let reply = Reply::Job {
            webhook_url: body.webhook_url,
            job_id: None,
        };
        let submitted =
            turns::submit(&state.services, &who, Target::Named(&name), request, reply).await?;
        let Submitted::Job { job, session } = submitted else {
            return Err(ApiError::from(ServiceError::internal(
                "a job was asked for",
            )));
        };
        let data = job.data(&session.name);
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
    who: Who,
    name: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.validate()?;
    let (rows, total, session) =
        jobs::list(&state.services, &who, &name, page.offset(), page.limit).await?;
    let items: Vec<JobData> = rows.iter().map(|j| j.data(&session.name)).collect();
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
    who: Who,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, id) = path.into_inner();
    let row = jobs::get(&state.services, &who, &name, &id).await?;
    Ok(envelope::ok(&req, row.data(&name)))
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
    who: Who,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, id) = path.into_inner();
    let (row, session) = jobs::cancel(&state.services, &who, &name, &id).await?;
    Ok(envelope::ok(&req, row.data(&session.name)))
}
