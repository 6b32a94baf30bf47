//! A tenant's own model credential (admin keys only): set, shown masked,
//! removed. The secret is never returned; the gateway uses it for that
//! tenant's CLI processes instead of the server's credential.

use crate::identity::Who;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::envelope::{self, Envelope};
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use claude_code_api_core::db::models::model_call::TenantCredentialRow;
use claude_code_api_core::services::admin;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetModelCredential {
    /// `api_key` (sent as `x-api-key`), `auth_token` (a bearer token, e.g.
    /// of an LLM proxy) or `oauth_token` (from `claude setup-token`).
    #[schema(pattern = "^(api_key|auth_token|oauth_token)$")]
    kind: String,
    /// The key or token (printable ASCII, no spaces); stored, never returned.
    #[schema(pattern = "^[!-~]{1,4096}$")]
    secret: String,
}

/// A tenant's credential as the API shows it: its kind and last characters.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelCredentialData {
    tenant: String,
    kind: String,
    /// `…` and the secret's last four characters (only `…` for short ones).
    hint: String,
    updated_at: String,
}

impl From<TenantCredentialRow> for ModelCredentialData {
    fn from(row: TenantCredentialRow) -> Self {
        let chars: Vec<char> = row.secret.chars().collect();
        let hint = if chars.len() >= 16 {
            format!("…{}", chars[chars.len() - 4..].iter().collect::<String>())
        } else {
            "…".to_owned()
        };
        ModelCredentialData {
            tenant: row.tenant_id,
            kind: row.kind,
            hint,
            updated_at: claude_code_api_core::domain::timestamp(&row.updated_at),
        }
    }
}

/// The tenant's own model credential, masked.
#[utoipa::path(
    get,
    path = "/api/v1/admin/tenants/{id}/model-credential",
    tag = "admin",
    params(("id" = String, Path, description = "The tenant's id")),
    responses(
        (status = 200, description = "Its kind and a hint; never the secret", body = Envelope<ModelCredentialData>),
        (status = 403, description = "Not the owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant, or it uses the server's credential", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_model_credential(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = admin::model_credential(&state.services, &who, id.into_inner()).await?;
    Ok(envelope::ok(&req, ModelCredentialData::from(row)))
}

/// Gives a tenant its own model credential: its CLI processes use it from
/// their next model call.
#[utoipa::path(
    put,
    path = "/api/v1/admin/tenants/{id}/model-credential",
    tag = "admin",
    params(("id" = String, Path, description = "The tenant's id")),
    request_body = SetModelCredential,
    responses(
        (status = 200, description = "Stored; shown masked", body = Envelope<ModelCredentialData>),
        (status = 403, description = "Not the owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An unknown kind or an empty secret", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn set_model_credential(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    id: web::Path<String>,
    body: web::Json<SetModelCredential>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let row = admin::set_model_credential(
        &state.services,
        &state.gateway,
        &who,
        id.into_inner(),
        &body.kind,
        body.secret,
    )
    .await?;
    Ok(envelope::ok(&req, ModelCredentialData::from(row)))
}

/// Removes a tenant's own credential: it uses the server's again.
#[utoipa::path(
    delete,
    path = "/api/v1/admin/tenants/{id}/model-credential",
    tag = "admin",
    params(("id" = String, Path, description = "The tenant's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Not the owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The tenant had no credential of its own", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn delete_model_credential(
    state: web::Data<AppState>,
    who: Who,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    admin::delete_model_credential(&state.services, &state.gateway, &who, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}
