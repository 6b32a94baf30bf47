//! Admin API: tenants (budgets, quotas) and API keys. An admin manages its
//! own tenant's keys; tenants themselves are the owner's.

use crate::identity::Who;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use claude_code_api_core::error::ServiceError;
use serde::{Deserialize, Serialize};

use utoipa::{IntoParams, ToSchema};

use super::envelope::{self, Envelope};
use super::views::keys::{KeyData, KeyRole};
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use claude_code_api_core::db::models::tenant::{Tenant, TenantLimits};
use claude_code_api_core::domain::money::micros_to_usd;
use claude_code_api_core::services::admin;

/// A tenant with its limits and spend. A `null` limit is the server default.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantData {
    id: String,
    name: String,
    /// USD; `budget_micros` is exact.
    budget: Option<f64>,
    budget_micros: Option<i64>,
    spent: f64,
    spent_micros: i64,
    /// Held by turns running now; settled when they end.
    reserved_micros: i64,
    max_sessions: Option<i64>,
    max_running_turns: Option<i64>,
    rate_limit_requests: Option<i64>,
    rate_limit_window_seconds: Option<i64>,
    /// The permission modes its sessions and turns may use; `null` = every
    /// mode the server allows.
    allowed_permission_modes: Option<Vec<String>>,
    /// Disk quota of its agents (workspaces and CLI state) in MiB; `null` =
    /// the server's `AGENT_DISK_MAX_MB`.
    disk_max_mb: Option<i64>,
    created_at: String,
}

impl From<Tenant> for TenantData {
    fn from(t: Tenant) -> Self {
        TenantData {
            budget: t.budget_micros.map(micros_to_usd),
            spent: micros_to_usd(t.spent_micros),
            created_at: claude_code_api_core::domain::timestamp(&t.created_at),
            id: t.id,
            name: t.name,
            budget_micros: t.budget_micros,
            spent_micros: t.spent_micros,
            reserved_micros: t.reserved_micros,
            max_sessions: t.max_sessions,
            max_running_turns: t.max_running_turns,
            rate_limit_requests: t.rate_limit_requests,
            rate_limit_window_seconds: t.rate_limit_window_seconds,
            allowed_permission_modes: t
                .allowed_permission_modes
                .map(|m| m.split(',').map(str::to_owned).collect()),
            disk_max_mb: t.disk_max_mb,
        }
    }
}

/// Limits in a request: a number sets one, `null` returns it to the server
/// default, absent leaves it alone.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsBody {
    /// Spend limit in USD (0 or more).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>, minimum = 0, exclusive_maximum = 1e9)]
    budget_usd: Option<Option<f64>>,
    /// Sessions the tenant may have at once.
    #[serde(default, deserialize_with = "present_integer")]
    #[schema(value_type = Option<i64>, minimum = 1)]
    max_sessions: Option<Option<i64>>,
    /// Turns the tenant may run at once, across its sessions.
    #[serde(default, deserialize_with = "present_integer")]
    #[schema(value_type = Option<i64>, minimum = 1)]
    max_running_turns: Option<Option<i64>>,
    /// Requests per window for the whole tenant.
    #[serde(default, deserialize_with = "present_integer")]
    #[schema(value_type = Option<i64>, minimum = 1)]
    rate_limit_requests: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present_integer")]
    #[schema(value_type = Option<i64>, minimum = 1)]
    rate_limit_window_seconds: Option<Option<i64>>,
    /// The permission modes the tenant's sessions and turns may use, within
    /// the server's `CLAUDE_ALLOWED_PERMISSION_MODES`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<claude_code_api_core::domain::session::PermissionMode>>, min_items = 1)]
    allowed_permission_modes:
        Option<Option<Vec<claude_code_api_core::domain::session::PermissionMode>>>,
    /// Disk quota (MiB) of the tenant's agents: its workspaces and CLI state.
    #[serde(default, deserialize_with = "present_integer")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 1073741824)]
    disk_max_mb: Option<Option<i64>>,
}

/// The largest disk quota accepted, in MiB (1 PiB).
const MAX_DISK_MB: i64 = 1 << 30;

fn present<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn present_integer<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<i64>>, D::Error> {
    super::envelope::integer(d).map(Some)
}

impl LimitsBody {
    pub fn into_limits(self) -> Result<TenantLimits, ApiError> {
        let positive =
            |name: &str, v: Option<Option<i64>>| -> Result<Option<Option<i64>>, ApiError> {
                match v {
                    Some(Some(n)) if n < 1 => Err(ApiError::from(ServiceError::Validation(
                        format!("{name} must be at least 1"),
                    ))),
                    other => Ok(other),
                }
            };
        let budget_micros = match self.budget_usd {
            Some(Some(usd)) if !(usd.is_finite() && (0.0..1e9).contains(&usd)) => {
                return Err(ApiError::from(ServiceError::Validation(
                    "budget_usd must be a non-negative amount".into(),
                )))
            }
            Some(Some(usd)) => Some(Some((usd * 1_000_000.0).round() as i64)),
            Some(None) => Some(None),
            None => None,
        };
        Ok(TenantLimits {
            budget_micros,
            max_sessions: positive("max_sessions", self.max_sessions)?,
            max_running_turns: positive("max_running_turns", self.max_running_turns)?,
            rate_limit_requests: positive("rate_limit_requests", self.rate_limit_requests)?,
            rate_limit_window_seconds: positive(
                "rate_limit_window_seconds",
                self.rate_limit_window_seconds,
            )?,
            allowed_permission_modes: match self.allowed_permission_modes {
                Some(Some(modes)) if modes.is_empty() => {
                    return Err(ApiError::from(ServiceError::Validation(
                        "allowed_permission_modes must name at least one mode (null: the server's)"
                            .into(),
                    )))
                }
                Some(Some(modes)) => Some(Some(
                    modes
                        .iter()
                        .map(|m| m.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                )),
                Some(None) => Some(None),
                None => None,
            },
            disk_max_mb: match positive("disk_max_mb", self.disk_max_mb)? {
                Some(Some(mb)) if mb > MAX_DISK_MB => {
                    return Err(ApiError::from(ServiceError::Validation(format!(
                        "disk_max_mb must be at most {MAX_DISK_MB}"
                    ))))
                }
                other => other,
            },
        })
    }
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// 1–64 of `[A-Za-z0-9._-]`, not starting with a dot; also its id.
    #[schema(pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")]
    name: String,
    #[serde(flatten)]
    limits: LimitsBody,
}

/// Every tenant.
#[utoipa::path(
    get,
    path = "/api/v1/admin/tenants",
    tag = "admin",
    responses(
        (status = 200, description = "The tenants", body = Envelope<Vec<TenantData>>),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list_tenants(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
) -> Result<HttpResponse, ApiError> {
    let rows = admin::list_tenants(&state.services, &who).await?;
    let items: Vec<TenantData> = rows.into_iter().map(TenantData::from).collect();
    Ok(envelope::ok(&req, items))
}

/// Creates a tenant with its limits.
#[utoipa::path(
    post,
    path = "/api/v1/admin/tenants",
    tag = "admin",
    request_body = CreateTenant,
    responses(
        (status = 201, description = "Created", body = Envelope<TenantData>),
        (status = 403, description = "Not the owner", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad name or limit", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn create_tenant(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    body: super::envelope::JsonObject<CreateTenant>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let limits = body.limits.into_limits()?;
    let created = admin::create_tenant(&state.services, &who, body.name, limits).await?;
    Ok(envelope::data(
        &req,
        StatusCode::CREATED,
        TenantData::from(created),
    ))
}

/// Changes a tenant's limits: a number sets one, `null` returns it to the
/// server default, an absent field stays as it is. A new `max_running_turns`
/// applies to the tenant's live sessions at once; running turns finish.
#[utoipa::path(
    patch,
    path = "/api/v1/admin/tenants/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "The tenant's id")),
    request_body = LimitsBody,
    responses(
        (status = 200, description = "The tenant", body = Envelope<TenantData>),
        (status = 403, description = "Not the owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad limit", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn update_tenant(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    id: web::Path<String>,
    body: super::envelope::JsonObject<LimitsBody>,
) -> Result<HttpResponse, ApiError> {
    let limits = body.into_inner().into_limits()?;
    let updated =
        admin::update_tenant_limits(&state.services, &who, id.into_inner(), limits).await?;
    Ok(envelope::ok(&req, TenantData::from(updated)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeysQuery {
    /// Only this tenant's keys.
    tenant: Option<String>,
}

/// API keys (never the keys themselves).
#[utoipa::path(
    get,
    path = "/api/v1/admin/keys",
    tag = "admin",
    params(KeysQuery),
    responses(
        (status = 200, description = "The keys", body = Envelope<Vec<KeyData>>),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list_keys(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    query: web::Query<KeysQuery>,
) -> Result<HttpResponse, ApiError> {
    let rows = admin::list_keys(&state.services, &who, query.into_inner().tenant).await?;
    let items: Vec<KeyData> = rows.into_iter().map(|k| KeyData::new(k, None)).collect();
    Ok(envelope::ok(&req, items))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// The tenant's id.
    tenant: String,
    /// `viewer`, `member` (default), `admin` or `owner`; no higher than
    /// the caller's own.
    #[serde(default)]
    #[schema(value_type = Option<KeyRole>)]
    role: Option<String>,
    /// Up to 200 characters, to recognise the key by.
    #[serde(default)]
    #[schema(max_length = 200)]
    label: Option<String>,
}

/// Creates a key; the answer is the only place the key is ever shown.
#[utoipa::path(
    post,
    path = "/api/v1/admin/keys",
    tag = "admin",
    request_body = CreateKey,
    responses(
        (status = 201, description = "Created, with `key`", body = Envelope<KeyData>),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad role or label", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn create_key(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    body: super::envelope::JsonObject<CreateKey>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let (row, key) =
        admin::create_key(&state.services, &who, body.tenant, body.role, body.label).await?;
    Ok(envelope::data(
        &req,
        StatusCode::CREATED,
        KeyData::new(row, Some(key)),
    ))
}

/// Revokes a key at once.
#[utoipa::path(
    post,
    path = "/api/v1/admin/keys/{id}/revoke",
    tag = "admin",
    params(("id" = String, Path, description = "The key's id")),
    responses(
        (status = 200, description = "The key, with `revoked_at`", body = Envelope<KeyData>),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn revoke_key(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let revoked = admin::revoke_key(&state.services, &who, id.into_inner()).await?;
    Ok(envelope::ok(&req, KeyData::new(revoked, None)))
}
