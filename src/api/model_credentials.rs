//! A tenant's own model credential (admin keys only): set, shown masked,
//! removed. The secret is never returned; the gateway uses it for that
//! tenant's CLI processes instead of the server's credential.

use crate::api::requester::Who;
use actix_web::{web, HttpRequest, HttpResponse};
use claude_code_api_core::error::ServiceError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::audit::record;
use super::envelope::{self, Envelope};
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use claude_code_api_core::db::models::model_call::{self, TenantCredentialRow};
use claude_code_api_core::db::models::tenant;
use claude_code_api_core::gateway::credential::Kind;

/// Longest secret accepted (model API keys and tokens are far shorter).
const MAX_SECRET_LEN: usize = 4096;

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

async fn find(state: &AppState, id: String) -> Result<Option<TenantCredentialRow>, ApiError> {
    Ok(
        claude_code_api_core::db::run(&state.services.pool, move |c| {
            model_call::find_credential(c, &id)
        })
        .await?,
    )
}

/// The tenant's own model credential, masked.
#[utoipa::path(
    get,
    path = "/api/v1/admin/tenants/{id}/model-credential",
    tag = "admin",
    params(("id" = String, Path, description = "The tenant's id")),
    responses(
        (status = 200, description = "Its kind and a hint; never the secret", body = Envelope<ModelCredentialData>),
        (status = 403, description = "Not an admin key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant, or it uses the server's credential", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_model_credential(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Who,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let id = id.into_inner();
    let row = find(&state, id.clone()).await?.ok_or_else(|| {
        ApiError::from(ServiceError::NotFound(format!(
            "tenant {id:?} has no credential of its own"
        )))
    })?;
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
        (status = 403, description = "Not an admin key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An unknown kind or an empty secret", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn set_model_credential(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Who,
    id: web::Path<String>,
    body: web::Json<SetModelCredential>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let body = body.into_inner();
    let kind = Kind::parse(&body.kind).ok_or_else(|| {
        ApiError::from(ServiceError::Validation(
            "kind must be api_key, auth_token or oauth_token".into(),
        ))
    })?;
    let secret = body.secret;
    if secret.is_empty()
        || secret.len() > MAX_SECRET_LEN
        || !secret.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(ApiError::from(ServiceError::Validation(
            "secret must be 1-4096 printable ASCII characters without spaces".into(),
        )));
    }
    let id = id.into_inner();
    let tenant_id = id.clone();
    let stored = claude_code_api_core::db::run(&state.services.pool, move |c| {
        if tenant::find_tenant(c, &tenant_id)?.is_none() {
            return Ok(false);
        }
        model_call::set_credential(c, &tenant_id, kind.as_str(), &secret)?;
        Ok(true)
    })
    .await?;
    if !stored {
        return Err(ApiError::from(ServiceError::NotFound(format!(
            "no tenant {id:?}"
        ))));
    }
    state.gateway.reload_tenant_credentials().await?;
    record(&state, &req, &caller, "tenant.model_credential.set", &id).await;
    let row = find(&state, id.clone())
        .await?
        .ok_or_else(|| ApiError::from(ServiceError::NotFound(format!("no tenant {id:?}"))))?;
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
        (status = 403, description = "Not an admin key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The tenant had no credential of its own", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn delete_model_credential(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Who,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let id = id.into_inner();
    let tenant_id = id.clone();
    let removed = claude_code_api_core::db::run(&state.services.pool, move |c| {
        model_call::clear_credential(c, &tenant_id)
    })
    .await?;
    if !removed {
        return Err(ApiError::from(ServiceError::NotFound(format!(
            "tenant {id:?} has no credential of its own"
        ))));
    }
    state.gateway.reload_tenant_credentials().await?;
    record(&state, &req, &caller, "tenant.model_credential.delete", &id).await;
    Ok(HttpResponse::NoContent().finish())
}
