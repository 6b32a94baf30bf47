//! Who a request comes from: the `Who` extractor (a handler that takes it
//! cannot run without a valid key or a bearer token of a trusted issuer). It is the core's `Requester`: the caller
//! (tenant, key, role), the client address (behind trusted proxies) and the
//! request id the audit log keeps.

pub mod console_sign_in;
pub mod marks;

use claude_code_api_core::error::ServiceError;
use std::future::Future;
use std::pin::Pin;

use actix_web::{web, FromRequest, HttpMessage, HttpRequest};

use crate::error::ApiError;
use crate::state::AppState;
use claude_code_api_core::domain::role::Role;
use claude_code_api_core::security::auth::{Caller, RefusedToken, Resolved, UnknownKey};
use claude_code_api_core::services::Requester;

/// The identity of a request, as handlers take it.
#[derive(Debug, Clone)]
pub struct Who(pub Requester);

impl std::ops::Deref for Who {
    type Target = Requester;

    fn deref(&self) -> &Requester {
        &self.0
    }
}

/// The key from `X-API-Key`, else from `Authorization: Bearer`.
pub fn presented_key(req: &HttpRequest) -> Option<String> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    claude_code_api_core::security::auth::presented_key(
        header("x-api-key"),
        header("authorization"),
    )
}

/// The client's address (see `security::client`); `None` without a socket.
pub fn client_ip(req: &HttpRequest, trusted: &[ipnet::IpNet]) -> Option<std::net::IpAddr> {
    let forwarded_for = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok());
    Some(claude_code_api_core::security::client::client_ip(
        req.peer_addr()?.ip(),
        forwarded_for,
        trusted,
    ))
}

/// The requester of `req`, once its caller is known.
pub fn requester(req: &HttpRequest, caller: Caller) -> Requester {
    // Forwarded by another node of the cluster: the address it saw.
    let forwarded = req
        .extensions()
        .get::<marks::Forwarded>()
        .map(|f| f.client_addr.clone());
    let client_addr = forwarded.unwrap_or_else(|| {
        req.app_data::<web::Data<AppState>>()
            .and_then(|state| client_ip(req, &state.services.settings.server.trusted_proxies))
            .map(|ip| ip.to_string())
    });
    Requester {
        caller,
        client_addr,
        request_id: marks::request_id(req),
    }
}

impl FromRequest for Who {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Who, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let caller = caller(req);
        let req = req.clone();
        Box::pin(async move {
            let caller = caller.await?;
            refuse_viewer_writes(&req, &caller)?;
            Ok(Who(requester(&req, caller)))
        })
    }
}

/// Routes that take a body or end a transport session but change nothing
/// of the tenant's: a token estimate, and MCP (whose tools that write check
/// the role themselves, `api::mcp::tools`).
const READS_WITH_A_BODY: [&str; 2] = ["/api/v1/tokens/count", "/mcp"];

/// A viewer reads: every method but GET, HEAD and OPTIONS changes
/// something (chat, jobs, files, approvals), so it is refused in one place
/// for all routes, but for those that only read with a body.
fn refuse_viewer_writes(req: &HttpRequest, caller: &Caller) -> Result<(), ApiError> {
    if caller.role() == Role::Viewer
        && !console_sign_in::is_safe(req.method())
        && !READS_WITH_A_BODY.contains(&req.path())
    {
        return Err(ServiceError::Forbidden(
            "a viewer reads sessions, streams and usage; this needs the member role".into(),
        )
        .into());
    }
    Ok(())
}

/// The caller a request's key, bearer token (or console cookie) resolves to.
fn caller(req: &HttpRequest) -> Pin<Box<dyn Future<Output = Result<Caller, ApiError>>>> {
    // The rate-limit middleware already resolved the key on most routes.
    if let Some(resolved) = req.extensions().get::<Resolved>() {
        let caller = resolved.caller.clone();
        return Box::pin(async move { Ok(caller) });
    }
    if let Some(RefusedToken(why)) = req.extensions().get::<RefusedToken>().cloned() {
        return Box::pin(async move { Err(ServiceError::TokenRefused(why).into()) });
    }
    if req.extensions().get::<UnknownKey>().is_some() {
        return Box::pin(async { Err(ServiceError::Unauthorized.into()) });
    }
    let key = presented_key(req);
    // No key: a console sign-in cookie may stand for one (with CSRF rules).
    if key.is_none()
        && req
            .cookie(crate::identity::console_sign_in::COOKIE)
            .is_some()
    {
        return Box::pin(crate::identity::console_sign_in::caller_from_cookie(
            req.clone(),
        ));
    }
    let state = req.app_data::<web::Data<AppState>>().cloned();
    Box::pin(async move {
        let key = key.ok_or(ServiceError::Unauthorized)?;
        let state = state
            .ok_or_else(|| ApiError::from(ServiceError::internal("application state missing")))?;
        state
            .services
            .identities
            .resolve_credential(&state.services.pool, &state.services.settings, &key)
            .await?
            .map(|r| r.caller)
            .ok_or(ApiError(ServiceError::Unauthorized))
    })
}
