//! The authentication extractor: a handler that takes `Caller` cannot run
//! without a valid key, and gets the tenant every query must be scoped to.

use std::future::Future;
use std::pin::Pin;

use actix_web::{web, FromRequest, HttpRequest};
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

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Caller, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let key = presented_key(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let key = key.ok_or(ApiError::Unauthorized)?;
            let state = state.ok_or_else(|| ApiError::internal("application state missing"))?;
            let presented_hash = hash_key(&key);
            let lookup = presented_hash.clone();
            let found =
                crate::db::run(&state.pool, move |c| tenant::find_active_key(c, &lookup)).await?;
            match found {
                Some(key)
                    if bool::from(key.key_hash.as_bytes().ct_eq(presented_hash.as_bytes())) =>
                {
                    Ok(Caller {
                        tenant: TenantId(key.tenant_id),
                        key_id: key.id,
                        key_label: key.label,
                        role: key.role,
                    })
                }
                _ => Err(ApiError::Unauthorized),
            }
        })
    }
}
