//! Sessions: create, list, get, delete.

use crate::identity::Who;
use actix_web::{web, HttpRequest, HttpResponse};

use super::envelope::{self, Envelope, PageQuery, Paged};
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use claude_code_api_core::services::sessions::{self, SessionStatus};

use crate::api::views::sessions::{listed_view, session_views, CreateSession, SessionData};

/// Creates a session and its workspace.
#[utoipa::path(
    post,
    path = "/api/v1/sessions",
    tag = "sessions",
    request_body = CreateSession,
    responses(
        (status = 201, description = "Created; `Location` names it", body = Envelope<SessionData>),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken, or the tenant is at its session limit", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No template of that name", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn create_session(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    body: super::envelope::JsonObject<CreateSession>,
) -> Result<HttpResponse, ApiError> {
    let new = body.into_inner().into_new_session()?;
    let row = sessions::create(&state.services, &who, new).await?;
    let location = format!("/api/v1/sessions/{}", row.name);
    let view = SessionData::new(row, SessionStatus::Pending, &state.services.settings);
    Ok(envelope::created(&req, &location, view))
}

/// The tenant's sessions, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/sessions",
    tag = "sessions",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of sessions", body = Paged<SessionData>),
        (status = 422, description = "Bad `page` or `limit`", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list_sessions(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.validate()?;
    let (rows, total) = sessions::list(&state.services, &who, page.offset(), page.limit).await?;
    let items = session_views(&state.services, &who, rows).await?;
    Ok(envelope::page(&req, items, &page, total))
}

/// The session's MCP servers, each with its status and tools as its CLI
/// last reported them (`not_started` before the CLI's first turn). A
/// server that fails is a status here, not a failed session.
#[utoipa::path(
    get,
    path = "/api/v1/sessions/{name}/mcp",
    tag = "sessions",
    params(("name" = String, Path, description = "The session's name")),
    responses(
        (status = 200, description = "The session's MCP servers", body = Envelope<Vec<claude_code_api_core::services::mcp_servers::McpServerStatus>>),
        (status = 404, description = "No session of that name in this tenant", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_mcp(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let servers =
        claude_code_api_core::services::mcp_servers::status(&state.services, &who, &name).await?;
    Ok(envelope::ok(&req, servers))
}

/// One session, with its spend and token counts.
#[utoipa::path(
    get,
    path = "/api/v1/sessions/{name}",
    tag = "sessions",
    params(("name" = String, Path, description = "The session's name")),
    responses(
        (status = 200, description = "The session", body = Envelope<SessionData>),
        (status = 404, description = "No session of that name in this tenant", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_session(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let listed = sessions::load_listed(&state.services, &who, &name).await?;
    Ok(envelope::ok(
        &req,
        listed_view(&state.services, &who, listed).await?,
    ))
}

/// Stops the session's CLI, deletes its history, jobs and the workspace it
/// created (never a folder it was pointed at with `/repo`).
#[utoipa::path(
    delete,
    path = "/api/v1/sessions/{name}",
    tag = "sessions",
    params(("name" = String, Path, description = "The session's name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No session of that name in this tenant", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn delete_session(
    state: web::Data<AppState>,
    who: Who,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    sessions::delete(&state.services, &who, &name).await?;
    Ok(HttpResponse::NoContent().finish())
}
