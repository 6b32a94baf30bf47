//! The caller itself: who it is, and, for a person signed in through the
//! identity provider, the keys of its own.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::envelope::{self, Envelope};
use super::views::keys::{KeyData, KeyRole};
use crate::error::{ApiError, Problem};
use crate::identity::Who;
use crate::state::AppState;
use claude_code_api_core::services::personal_keys;

/// Who the caller is.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeData {
    tenant: String,
    /// `viewer`, `member`, `admin` or `owner`.
    role: String,
    /// The key's id, or `person:<sub>` for a person's console sign-in.
    key_id: String,
    key_label: String,
    /// The provider's subject of a person signed in through it.
    person: Option<String>,
}

/// Who the caller is: its tenant, role and key (or person).
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "me",
    responses(
        (status = 200, description = "The caller", body = Envelope<MeData>),
    ),
)]
pub async fn me(req: HttpRequest, who: Who) -> Result<HttpResponse, ApiError> {
    let caller = &who.caller;
    Ok(envelope::ok(
        &req,
        MeData {
            tenant: caller.tenant.0.clone(),
            role: caller.role.clone(),
            key_id: caller.key_id.clone(),
            key_label: caller.key_label.clone(),
            person: caller.key_id.strip_prefix("person:").map(str::to_owned),
        },
    ))
}

/// The caller's own keys, newest first (revoked and expired ones too).
#[utoipa::path(
    get,
    path = "/api/v1/me/keys",
    tag = "me",
    responses(
        (status = 200, description = "The keys", body = Envelope<Vec<KeyData>>),
        (status = 403, description = "Not a person signed in through the identity provider", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list_my_keys(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
) -> Result<HttpResponse, ApiError> {
    let keys = personal_keys::list(&state.services, &who).await?;
    let items: Vec<KeyData> = keys.into_iter().map(|k| KeyData::new(k, None)).collect();
    Ok(envelope::ok(&req, items))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMyKey {
    /// 1-200 characters, to recognise the key by.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    label: String,
    /// `member` by default; no higher than the caller's own role.
    #[schema(value_type = Option<KeyRole>)]
    role: Option<String>,
    /// 1-365; 90 by default.
    #[schema(minimum = 1, maximum = 365)]
    expires_in_days: Option<i64>,
}

/// Makes a key of the caller's own (a person signed in through the identity
/// provider): shown once, revoked when the person leaves the tenant.
#[utoipa::path(
    post,
    path = "/api/v1/me/keys",
    tag = "me",
    request_body = CreateMyKey,
    responses(
        (status = 201, description = "Created, with `key`", body = Envelope<KeyData>),
        (status = 403, description = "Not a person, or a role above the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The person holds as many keys as allowed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad label, role or expiry", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn create_my_key(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    body: super::envelope::JsonObject<CreateMyKey>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let (row, key) = personal_keys::create(
        &state.services,
        &who,
        body.label,
        body.role.as_deref(),
        body.expires_in_days,
    )
    .await?;
    Ok(envelope::data(
        &req,
        StatusCode::CREATED,
        KeyData::new(row, Some(key)),
    ))
}

/// Revokes one of the caller's own keys at once.
#[utoipa::path(
    post,
    path = "/api/v1/me/keys/{id}/revoke",
    tag = "me",
    params(("id" = String, Path, description = "The key's id")),
    responses(
        (status = 200, description = "The key, revoked", body = Envelope<KeyData>),
        (status = 403, description = "Not a person signed in through the identity provider", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key of the caller's", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn revoke_my_key(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let revoked = personal_keys::revoke(&state.services, &who, id.into_inner()).await?;
    Ok(envelope::ok(&req, KeyData::new(revoked, None)))
}
