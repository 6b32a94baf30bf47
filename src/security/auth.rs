//! The authentication extractor: a handler that takes `Caller` cannot run
//! without a valid key, and gets the tenant every query must be scoped to.

use std::future::Future;
use std::pin::Pin;

use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use subtle::ConstantTimeEq;

use super::keys::hash_key;
use crate::api::AppState;
use crate::db::models::tenant::{self, TenantId};
use crate::error::ApiError;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: TenantId,
    pub key_id: String,
    pub key_label: String,
    pub role: String,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role == tenant::ROLE_ADMIN
    }

    /// Refuses callers that are not admins.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden("this needs an admin key".into()))
        }
    }
}

/// The key from `X-API-Key`, else from `Authorization: Bearer`.
pub fn presented_key(req: &HttpRequest) -> Option<String> {
    let headers = req.headers();
    if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(key.trim().to_owned()).filter(|k| !k.is_empty());
    }
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        })
        .filter(|k| !k.is_empty())
}

/// Marks a request whose key the rate-limit middleware found to be no key.
#[derive(Debug, Clone, Copy)]
pub struct UnknownKey;

/// What a presented key resolves to: the caller, and its tenant's own rate
/// limit if it has one. Looked up once per request.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub caller: Caller,
    pub rate_limit: Option<(u32, u64)>,
}

/// Resolves a key against the database; `None` for an unknown or revoked key.
pub async fn resolve(state: &AppState, key: &str) -> Result<Option<Resolved>, ApiError> {
    let presented_hash = hash_key(key);
    let lookup = presented_hash.clone();
    let found = crate::db::run(&state.pool, move |c| {
        let Some(key) = tenant::find_active_key(c, &lookup)? else {
            return Ok(None);
        };
        let limits = tenant::find_tenant(c, &key.tenant_id)?;
        Ok(Some((key, limits)))
    })
    .await?;
    Ok(match found {
        Some((key, limits))
            if bool::from(key.key_hash.as_bytes().ct_eq(presented_hash.as_bytes())) =>
        {
            let rate_limit = limits.and_then(|t| {
                let requests = t.rate_limit_requests.and_then(|r| u32::try_from(r).ok());
                let window = t
                    .rate_limit_window_seconds
                    .and_then(|w| u64::try_from(w).ok());
                match (requests, window) {
                    (None, None) => None,
                    (r, w) => Some((
                        r.unwrap_or(state.settings.rate_limit_requests),
                        w.unwrap_or(state.settings.rate_limit_window.as_secs()),
                    )),
                }
            });
            Some(Resolved {
                caller: Caller {
                    tenant: TenantId(key.tenant_id),
                    key_id: key.id,
                    key_label: key.label,
                    role: key.role,
                },
                rate_limit,
            })
        }
        _ => None,
    })
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Caller, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        // The rate-limit middleware already resolved the key on most routes.
        if let Some(resolved) = req.extensions().get::<Resolved>() {
            let caller = resolved.caller.clone();
            return Box::pin(async move { Ok(caller) });
        }
        if req.extensions().get::<UnknownKey>().is_some() {
            return Box::pin(async { Err(ApiError::Unauthorized) });
        }
        let key = presented_key(req);
        // No key: a console sign-in cookie may stand for one (with CSRF rules).
        if key.is_none() && req.cookie(crate::console::auth::COOKIE).is_some() {
            return Box::pin(crate::console::auth::caller_from_cookie(req.clone()));
        }
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let key = key.ok_or(ApiError::Unauthorized)?;
            let state = state.ok_or_else(|| ApiError::internal("application state missing"))?;
            resolve(&state, &key)
                .await?
                .map(|r| r.caller)
                .ok_or(ApiError::Unauthorized)
        })
    }
}
