//! Who a request comes from: the `Caller` extractor (a handler that takes
//! it cannot run without a valid key) and `Requester`, the caller plus the
//! client address (behind trusted proxies) and request id the audit log keeps.

use std::future::Future;
use std::pin::Pin;

use actix_web::{web, FromRequest, HttpMessage, HttpRequest};

use super::AppState;
use crate::error::ApiError;
use crate::security::auth::{presented_key, resolve, Caller, Resolved, UnknownKey};
use crate::services::Requester;

/// The requester of `req`, once its caller is known.
pub fn requester(req: &HttpRequest, caller: Caller) -> Requester {
    // Forwarded by another node of the cluster: the address it saw.
    let forwarded = req
        .extensions()
        .get::<super::forward::Forwarded>()
        .map(|f| f.client_addr.clone());
    let client_addr = forwarded.unwrap_or_else(|| {
        req.app_data::<web::Data<AppState>>()
            .and_then(|state| {
                crate::security::client::client_ip(req, &state.services.settings.trusted_proxies)
            })
            .map(|ip| ip.to_string())
    });
    Requester {
        caller,
        client_addr,
        request_id: super::envelope::request_id(req),
    }
}

impl FromRequest for Requester {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Requester, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let caller = Caller::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move { Ok(requester(&req, caller.await?)) })
    }
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
            resolve(&state.services.pool, &state.services.settings, &key)
                .await?
                .map(|r| r.caller)
                .ok_or(ApiError::Unauthorized)
        })
    }
}
