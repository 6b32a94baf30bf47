//! A tenant's secrets: put (write-only), list (names and dates), delete.

use crate::identity::Who;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::envelope::{self, Envelope};
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use claude_code_api_core::services::secrets::{self, SecretValue, SecretView};

/// Stores a secret, or replaces its value. The value is never shown again:
/// use it by name wherever a credential goes (`{"secret": "NAME"}`).
#[utoipa::path(
    put,
    path = "/api/v1/secrets/{name}",
    tag = "secrets",
    params(("name" = String, Path, pattern = "^[A-Za-z_][A-Za-z0-9_]{0,63}$", description = "The secret's name")),
    request_body = SecretValue,
    responses(
        (status = 200, description = "Replaced", body = Envelope<SecretView>),
        (status = 201, description = "Created", body = Envelope<SecretView>),
        (status = 409, description = "The tenant has as many secrets as it may", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad name, or a value empty or over 64 KiB", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn put_secret(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    name: web::Path<String>,
    body: super::envelope::JsonObject<SecretValue>,
) -> Result<HttpResponse, ApiError> {
    let (view, created) = secrets::put(&state.services, &who, &name, body.into_inner()).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(envelope::data(&req, status, view))
}

/// The tenant's secrets: names, when made, changed and last used; never values.
#[utoipa::path(
    get,
    path = "/api/v1/secrets",
    tag = "secrets",
    responses((status = 200, description = "The secrets", body = Envelope<Vec<SecretView>>)),
)]
pub async fn list_secrets(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
) -> Result<HttpResponse, ApiError> {
    Ok(envelope::ok(
        &req,
        secrets::list(&state.services, &who).await?,
    ))
}

/// Deletes a secret; what refers to it stops working (a 409 at its next use).
#[utoipa::path(
    delete,
    path = "/api/v1/secrets/{name}",
    tag = "secrets",
    params(("name" = String, Path, description = "The secret's name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No secret of that name in this tenant", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn delete_secret(
    state: web::Data<AppState>,
    who: Who,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    secrets::delete(&state.services, &who, &name).await?;
    Ok(HttpResponse::NoContent().finish())
}
