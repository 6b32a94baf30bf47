//! The per-key rate limit on every authenticated route (REST, OpenAI
//! surface, MCP): resolves the key or bearer token once (the `Caller`
//! extractor reuses it),
//! refuses addresses that failed authentication too often, and sets the
//! `RateLimit-*` headers, with a 429 problem and `Retry-After` when the
//! budget is spent.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use claude_code_api_core::error::ServiceError;

use crate::error::ApiError;
use crate::identity::{client_ip, presented_key};
use crate::state::AppState;
use claude_code_api_core::security::auth::{RefusedToken, UnknownKey};
use claude_code_api_core::security::keys::hash_key;
use claude_code_api_core::security::rate_limit::Decision;
use claude_code_api_core::security::tokens::looks_like_jwt;

fn set(res: &mut ServiceResponse<BoxBody>, name: &'static str, value: u64) {
    if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
        res.headers_mut().insert(HeaderName::from_static(name), v);
    }
}

/// A 429 problem carried as a response (so it gets its instance and
/// request id), with `Retry-After`.
fn too_many(
    req: ServiceRequest,
    detail: String,
    retry_after_secs: u64,
) -> ServiceResponse<BoxBody> {
    let (http_req, _) = req.into_parts();
    let mut res = ServiceResponse::new(
        http_req,
        actix_web::HttpResponse::from_error(ApiError::from(ServiceError::RateLimited(detail))),
    );
    set(&mut res, "retry-after", retry_after_secs);
    res
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let key = presented_key(req.request());
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let (Some(key), Some(state)) = (key, state) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    // Forwarded by another node of the cluster: counted where it entered.
    let forwarded = super::forward::verify(&req, &state.services.node);
    // An address that failed too often is refused before its key costs a
    // lookup, unless the key is one that authenticated from it before.
    let client = client_ip(
        req.request(),
        &state.services.settings.server.trusted_proxies,
    );
    let key_hash = hash_key(&key);
    if let Some(retry_after_secs) = client.and_then(|ip| state.auth_failures.blocked(ip, &key_hash))
    {
        let detail = format!(
            "too many failed authentications from this address; retry in {retry_after_secs} s"
        );
        return Ok(too_many(req, detail, retry_after_secs));
    }
    // Resolve the key (or bearer token) once here; the `Caller` extractor
    // reuses the result.
    let resolved = match state
        .services
        .identities
        .resolve_credential(&state.services.pool, &state.services.settings, &key)
        .await
    {
        Ok(resolved) => resolved,
        // The extractor answers the refusal, counted as a bad key.
        Err(ServiceError::TokenRefused(why)) => {
            req.extensions_mut().insert(RefusedToken(why));
            None
        }
        Err(e) => return Err(ApiError::from(e).into()),
    };
    let known = resolved.is_some();
    let quota = resolved.as_ref().and_then(|r| r.rate_limit);
    // Every token of one trust rule shares its budget, as a key's requests
    // do (a CI job has a new token each run).
    let bucket = match &resolved {
        Some(r) if looks_like_jwt(&key) => r.caller.key_id.clone(),
        _ => key_hash.clone(),
    };
    match resolved {
        Some(resolved) => {
            if let Some(ip) = client {
                state.auth_failures.succeeded(ip, &key_hash);
            }
            req.extensions_mut().insert(resolved);
        }
        // The extractor then refuses it without a second hash and lookup.
        None => {
            req.extensions_mut().insert(UnknownKey);
        }
    }
    let counted = |res: ServiceResponse<BoxBody>| {
        if !known && res.status() == actix_web::http::StatusCode::UNAUTHORIZED {
            if let Some(ip) = client {
                state.auth_failures.failed(ip);
            }
        }
        res
    };
    if let Some(forwarded) = forwarded {
        req.extensions_mut().insert(forwarded);
        return Ok(counted(next.call(req).await?.map_into_boxed_body()));
    }
    // In a cluster each node allows its share of the limit (see `Node::share`).
    let node = &state.services.node;
    let quota = if node.is_clustered() {
        let settings = &state.services.settings;
        let (requests, window) = quota.unwrap_or((
            settings.server.rate_limit_requests,
            settings.server.rate_limit_window.as_secs(),
        ));
        let share = node.share(u64::from(requests));
        Some((u32::try_from(share).unwrap_or(requests), window))
    } else {
        quota
    };
    match state.rate_limits.check(&bucket, quota) {
        Decision::Limited {
            limit,
            retry_after_secs,
        } => {
            let detail =
                format!("rate limit of {limit} requests exceeded; retry in {retry_after_secs} s");
            let mut res = too_many(req, detail, retry_after_secs);
            set(&mut res, "ratelimit-limit", u64::from(limit));
            set(&mut res, "ratelimit-remaining", 0);
            set(&mut res, "ratelimit-reset", retry_after_secs);
            Ok(res)
        }
        Decision::Allowed {
            limit,
            remaining,
            reset_secs,
        } => {
            let mut res = next.call(req).await?.map_into_boxed_body();
            set(&mut res, "ratelimit-limit", u64::from(limit));
            set(&mut res, "ratelimit-remaining", u64::from(remaining));
            set(&mut res, "ratelimit-reset", reset_secs);
            Ok(counted(res))
        }
    }
}
