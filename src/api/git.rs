//! A session's repository work: status, diff, commit, push, pull request.

use crate::identity::Who;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::envelope::{self, Envelope};
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use claude_code_api_core::error::ServiceError;
use claude_code_api_core::git::provider::PullRequest;
use claude_code_api_core::services::git::{
    self, CommitRequest, CommitView, DiffAnswer, DiffView, GitView, PullRequestRequest, PushView,
};

/// An optional JSON object body: none (or empty) means every default.
fn optional_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::from(ServiceError::BadRequest(format!(
            "the body is not JSON: {e}"
        )))
    })?;
    if value.is_null() {
        return Ok(T::default());
    }
    if !value.is_object() {
        return Err(ServiceError::Validation("the body must be a JSON object".into()).into());
    }
    serde_json::from_value(value).map_err(|e| ServiceError::Validation(e.to_string()).into())
}

/// The branch, its base, ahead/behind and the files not committed.
#[utoipa::path(
    get,
    path = "/api/v1/sessions/{name}/git",
    tag = "repos",
    params(("name" = String, Path, description = "The session's name")),
    responses(
        (status = 200, description = "The worktree's state", body = Envelope<GitView>),
        (status = 404, description = "No such session, or one not made from a repository", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_git(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(envelope::ok(
        &req,
        git::status(&state.services, &who, &name).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// Counts per file instead of hunks.
    #[serde(default)]
    stat: bool,
    /// `json` (default) or `patch` (the unified diff as `text/x-diff`, also
    /// chosen by `Accept: text/x-diff`).
    #[serde(default)]
    #[param(inline)]
    format: Option<DiffFormat>,
}

#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DiffFormat {
    Json,
    Patch,
}

/// The worktree (committed or not, new files included) against the commit
/// the session started from.
#[utoipa::path(
    get,
    path = "/api/v1/sessions/{name}/diff",
    tag = "repos",
    params(("name" = String, Path, description = "The session's name"), DiffQuery),
    responses(
        (status = 200, description = "Files with hunks (or counts); or the unified diff",
            content(
                (Envelope<DiffView> = "application/json"),
                (String = "text/x-diff"),
            ),
        ),
        (status = 404, description = "No such session, or one not made from a repository", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than GIT_MAX_DIFF_MB: ask for ?stat=true", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An unknown format", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_diff(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    name: web::Path<String>,
    query: web::Query<DiffQuery>,
) -> Result<HttpResponse, ApiError> {
    let accepts_patch = req
        .headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/x-diff"));
    let patch = match query.format {
        None => accepts_patch,
        Some(DiffFormat::Json) => false,
        Some(DiffFormat::Patch) => true,
    };
    match git::diff(&state.services, &who, &name, query.stat, patch).await? {
        DiffAnswer::Patch(text) => Ok(HttpResponse::Ok()
            .content_type("text/x-diff; charset=utf-8")
            .body(text)),
        DiffAnswer::Files(view) => Ok(envelope::ok(&req, view)),
    }
}

/// Commits everything in the worktree on its branch (as the agent, no hooks).
#[utoipa::path(
    post,
    path = "/api/v1/sessions/{name}/commit",
    tag = "repos",
    params(("name" = String, Path, description = "The session's name")),
    request_body(content = Option<CommitRequest>, description = "Optional; `{}` or no body for the defaults"),
    responses(
        (status = 200, description = "Committed", body = Envelope<CommitView>),
        (status = 404, description = "No such session, or one not made from a repository", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Nothing to commit", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn commit(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    name: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let request: CommitRequest = optional_body(&body)?;
    Ok(envelope::ok(
        &req,
        git::commit(&state.services, &who, &name, request).await?,
    ))
}

/// Pushes the session's branch to its repository with the stored credential
/// (a fast-forward only).
#[utoipa::path(
    post,
    path = "/api/v1/sessions/{name}/push",
    tag = "repos",
    params(("name" = String, Path, description = "The session's name")),
    responses(
        (status = 200, description = "Pushed", body = Envelope<PushView>),
        (status = 404, description = "No such session, or one not made from a repository", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Nothing to push, the remote moved on (non-fast-forward), or the repository was deleted", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The remote refused the credential or cannot be reached", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn push(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(envelope::ok(
        &req,
        git::push(&state.services, &who, &name).await?,
    ))
}

/// Opens a pull request (GitLab: a merge request) for the session's branch,
/// pushing it first when it has commits not pushed yet.
#[utoipa::path(
    post,
    path = "/api/v1/sessions/{name}/pull-request",
    tag = "repos",
    params(("name" = String, Path, description = "The session's name")),
    request_body(content = Option<PullRequestRequest>, description = "Optional; `{}` or no body for the defaults"),
    responses(
        (status = 201, description = "Opened: its number and the page a person opens", body = Envelope<PullRequest>),
        (status = 404, description = "No such session, or one not made from a repository", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Nothing to push, no provider or token for the repository", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The provider refused (its message is passed on) or cannot be reached", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn pull_request(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    name: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let request: PullRequestRequest = optional_body(&body)?;
    let opened = git::pull_request(&state.services, &who, &name, request).await?;
    Ok(envelope::data(
        &req,
        actix_web::http::StatusCode::CREATED,
        opened,
    ))
}
