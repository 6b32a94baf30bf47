//! Forks: `POST /sessions/{name}/fork` makes a new session from one of the
//! session's turns (its conversation so far, its workspace then);
//! `GET /sessions/{name}/forks` lists the sessions forked from it.

use crate::identity::Who;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::envelope::{self, Envelope, PageQuery, Paged};
use super::views::sessions::SessionData;
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use claude_code_api_core::services::forks::{self, ForkRequest};
use claude_code_api_core::services::sessions::SessionStatus;

/// The fork to make.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForkSession {
    /// The new session's name (session-name rules; a name in use is a 409).
    #[schema(pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")]
    new_name: String,
    /// The original's turn to fork after, from 1 to its completed turns;
    /// default: its latest.
    #[schema(minimum = 1)]
    at_turn: Option<i64>,
}

/// Makes a new session whose conversation is this session's up to the end
/// of turn `at_turn`, and whose workspace is this session's workspace as it
/// was then. It keeps the original's settings and counts against the
/// tenant's session limit; the original is left as it is.
#[utoipa::path(
    post,
    path = "/api/v1/sessions/{name}/fork",
    tag = "sessions",
    params(("name" = String, Path, description = "The session to fork")),
    request_body = ForkSession,
    responses(
        (status = 201, description = "The fork; `Location` names it", body = Envelope<SessionData>),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No session of that name in this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`new_name` is taken, the tenant is at its session limit, or the turn has no workspace snapshot (over a limit, or no longer kept); the detail says which", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`new_name` is not a valid session name, or `at_turn` is outside the session's completed turns (the detail names the range)", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn fork_session(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    name: web::Path<String>,
    body: envelope::JsonObject<ForkSession>,
) -> Result<HttpResponse, ApiError> {
    let ForkSession { new_name, at_turn } = body.into_inner();
    let (row, link) = forks::fork(
        &state.services,
        &who,
        &name,
        ForkRequest { new_name, at_turn },
    )
    .await?;
    let location = format!("/api/v1/sessions/{}", row.name);
    let view = SessionData::new(row, SessionStatus::Pending, &state.services.settings)
        .forked_from(Some(&link));
    Ok(envelope::created(&req, &location, view))
}

/// The sessions forked from this one, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/sessions/{name}/forks",
    tag = "sessions",
    params(("name" = String, Path, description = "The original session"), PageQuery),
    responses(
        (status = 200, description = "A page of its forks", body = Paged<SessionData>),
        (status = 404, description = "No session of that name in this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad `page` or `limit`", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list_forks(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    name: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.validate()?;
    let (children, total) =
        forks::children(&state.services, &who, &name, page.offset(), page.limit).await?;
    let (rows, links): (Vec<_>, Vec<_>) = children.into_iter().unzip();
    let statuses =
        claude_code_api_core::services::sessions::statuses(&state.services, &who, &rows).await?;
    let items = rows
        .into_iter()
        .zip(statuses)
        .zip(&links)
        .map(|((row, status), link)| {
            SessionData::new(row, status, &state.services.settings).forked_from(Some(link))
        })
        .collect();
    Ok(envelope::page(&req, items, &page, total))
}
