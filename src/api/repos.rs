//! A tenant's repositories: register, list, get, change, delete. The
//! credential is write-only.

use crate::identity::Who;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::envelope::{self, Envelope};
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use claude_code_api_core::services::repos::{self, NewRepo, RepoChange, RepoView};

/// Registers a repository: the remote is reached once (`ls-remote`) with
/// the credential, which is then stored encrypted and never shown again.
#[utoipa::path(
    post,
    path = "/api/v1/repos",
    tag = "repos",
    request_body = NewRepo,
    responses(
        (status = 201, description = "Registered", body = Envelope<RepoView>),
        (status = 409, description = "The name is taken, or the tenant is at GIT_MAX_REPOS", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid: a URL with credentials, plain http, a private host, a path not allowed", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The remote refused the credential or cannot be reached", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn create_repo(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    body: super::envelope::JsonObject<NewRepo>,
) -> Result<HttpResponse, ApiError> {
    let view = repos::create(&state.services, &who, body.into_inner()).await?;
    Ok(envelope::data(&req, StatusCode::CREATED, view))
}

/// The tenant's repositories, by name.
#[utoipa::path(
    get,
    path = "/api/v1/repos",
    tag = "repos",
    responses((status = 200, description = "The repositories", body = Envelope<Vec<RepoView>>)),
)]
pub async fn list_repos(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
) -> Result<HttpResponse, ApiError> {
    Ok(envelope::ok(
        &req,
        repos::list(&state.services, &who).await?,
    ))
}

/// One repository.
#[utoipa::path(
    get,
    path = "/api/v1/repos/{name}",
    tag = "repos",
    params(("name" = String, Path, description = "The repository's name")),
    responses(
        (status = 200, description = "The repository", body = Envelope<RepoView>),
        (status = 404, description = "No repository of that name in this tenant", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_repo(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = repos::load(&state.services, &who, &name).await?;
    Ok(envelope::ok(&req, RepoView::from(row)))
}

/// Changes what is given; `credential: null` removes the credential.
#[utoipa::path(
    patch,
    path = "/api/v1/repos/{name}",
    tag = "repos",
    params(("name" = String, Path, description = "The repository's name")),
    request_body = RepoChange,
    responses(
        (status = 200, description = "The repository", body = Envelope<RepoView>),
        (status = 404, description = "No repository of that name in this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The remote refused the new credential or cannot be reached", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn update_repo(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    name: web::Path<String>,
    body: super::envelope::JsonObject<RepoChange>,
) -> Result<HttpResponse, ApiError> {
    let view = repos::update(&state.services, &who, &name, body.into_inner()).await?;
    Ok(envelope::ok(&req, view))
}

/// Deletes the repository; sessions made from it keep working but cannot push.
#[utoipa::path(
    delete,
    path = "/api/v1/repos/{name}",
    tag = "repos",
    params(("name" = String, Path, description = "The repository's name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No repository of that name in this tenant", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn delete_repo(
    state: web::Data<AppState>,
    who: Who,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    repos::delete(&state.services, &who, &name).await?;
    Ok(HttpResponse::NoContent().finish())
}
