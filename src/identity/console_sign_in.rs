//! Console sign-in: an API key posted once becomes a server-side session
//! row and an HttpOnly `SameSite=Strict` cookie holding a random id (only
//! its hash is stored). The cookie then stands for that key everywhere the
//! key is accepted, including the JSON API the console's script calls, but
//! a request that changes anything must also carry the session's CSRF token
//! (`X-CSRF-Token`, or the `csrf` field of a console form), which a
//! cross-site page cannot read.
//!
//! A person who signed in through the OpenID provider (`console::oidc`) has
//! a cookie of the same name whose row is in `console_people`: it acts as
//! the tenant and role their groups mapped to, `key_id` `person:<sub>` and
//! their email as the label, so the audit log names them.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::{web, HttpRequest};
use claude_code_api_core::error::ServiceError;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;
use claude_code_api_core::db::models::tenant::TenantId;
use claude_code_api_core::security::auth::Caller;
use claude_code_api_core::services::{console_oidc, console_sessions};

/// The session cookie (path `/`: the API the script calls needs it too).
pub const COOKIE: &str = "cca_console";
/// Holds the sign-in form's CSRF token before there is a session.
pub const LOGIN_COOKIE: &str = "cca_console_login";
/// The header the console's script sends the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
pub use console_sessions::SESSION_HOURS;
/// Longest key accepted by the sign-in form (keys are about 50 bytes).
pub const MAX_KEY_LEN: usize = 512;

/// A signed-in browser: who it acts as, and its CSRF token.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub caller: Caller,
    pub csrf: String,
    /// The key's hash, which its rate-limit bucket is keyed by.
    key_hash: String,
    rate_limit: Option<(u32, u64)>,
    /// Signed in through the OpenID provider (not with a key).
    pub person: bool,
}

pub use claude_code_api_core::services::console_sessions::random_token;

/// Constant-time equality of two tokens.
pub fn same_token(a: &str, b: &str) -> bool {
    !a.is_empty() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A cookie as the console sets them: HttpOnly, `SameSite=Strict`, and
/// `Secure` when the browser reached us over TLS (directly or, as a
/// forwarded header says, through a proxy).
pub fn cookie(
    req: &HttpRequest,
    name: &'static str,
    value: String,
    path: &'static str,
) -> Cookie<'static> {
    let secure = req.connection_info().scheme() == "https";
    Cookie::build(name, value)
        .path(path)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .finish()
}

/// The cookie that removes `name`.
pub fn removal(req: &HttpRequest, name: &'static str, path: &'static str) -> Cookie<'static> {
    let mut c = cookie(req, name, String::new(), path);
    c.make_removal();
    c
}

/// Stores a new console session for the caller's key; returns the cookie's
/// value.
pub async fn create(state: &AppState, caller: &Caller) -> Result<String, ApiError> {
    Ok(console_sessions::create(&state.services, caller).await?)
}

/// Ends the session the cookie names (signing out).
pub async fn destroy(state: &AppState, cookie_value: &str) -> Result<(), ApiError> {
    Ok(console_sessions::destroy(&state.services, cookie_value).await?)
}

/// The signed-in browser of this request, if its cookie names a live session.
pub async fn signed_in(req: &HttpRequest, state: &AppState) -> Result<Option<SignedIn>, ApiError> {
    let Some(value) = req.cookie(COOKIE).map(|c| c.value().to_owned()) else {
        return Ok(None);
    };
    // Our ids are 43 characters; anything far longer is not one.
    if value.is_empty() || value.len() > 128 {
        return Ok(None);
    }
    // The tenant's own quota, as `security::auth::resolve` reads it.
    let rate_limit = |requests: Option<i64>, window: Option<i64>| match (
        requests.and_then(|r| u32::try_from(r).ok()),
        window.and_then(|w| u64::try_from(w).ok()),
    ) {
        (None, None) => None,
        (r, w) => Some((
            r.unwrap_or(state.services.settings.server.rate_limit_requests),
            w.unwrap_or(state.services.settings.server.rate_limit_window.as_secs()),
        )),
    };
    if let Some((session, key, requests, window)) =
        console_sessions::find_live(&state.services, &value).await?
    {
        return Ok(Some(SignedIn {
            caller: Caller {
                tenant: TenantId(key.tenant_id),
                key_id: key.id,
                key_label: key.label,
                role: key.role,
                person: key.owner_subject,
            },
            csrf: session.csrf_token,
            key_hash: key.key_hash,
            rate_limit: rate_limit(requests, window),
            person: false,
        }));
    }
    // A person signed in through the OpenID provider: the tenant and role
    // their groups mapped to; the audit names them (`person:<sub>`, email).
    let found = console_sessions::find_live_person(&state.services, &value).await?;
    Ok(found.map(|(row, requests, window)| {
        let key_id = format!("{}{}", console_oidc::PERSON_PREFIX, row.subject);
        SignedIn {
            // One request budget per person and tenant.
            key_hash: claude_code_api_core::security::keys::hash_key(&format!(
                "{key_id}@{}",
                row.tenant_id
            )),
            caller: Caller {
                tenant: TenantId(row.tenant_id),
                key_label: row.email.unwrap_or_else(|| row.subject.clone()),
                key_id,
                role: row.role,
                person: Some(row.subject),
            },
            csrf: row.csrf_token,
            rate_limit: rate_limit(requests, window),
            person: true,
        }
    }))
}

/// Whether a method only reads (no CSRF token needed).
pub fn is_safe(method: &actix_web::http::Method) -> bool {
    use actix_web::http::Method;
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The `Caller` a request without a key stands for through its console
/// cookie: 401 without a live session; 403 when it changes something
/// without the session's CSRF token; the key's own rate limit applies.
pub async fn caller_from_cookie(req: HttpRequest) -> Result<Caller, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::from(ServiceError::internal("application state missing")))?;
    // The console's script only calls the REST API: the cookie is no key
    // for the other surfaces (OpenAI-compatible, MCP).
    if !req.path().starts_with(crate::state::API_V1) {
        return Err(ServiceError::Unauthorized.into());
    }
    let signed = signed_in(&req, &state)
        .await?
        .ok_or(ServiceError::Unauthorized)?;
    if !is_safe(req.method()) {
        let presented = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !same_token(presented, &signed.csrf) {
            return Err(ApiError::from(ServiceError::Forbidden(
                "a console request that changes something needs the session's X-CSRF-Token header"
                    .into(),
            )));
        }
    }
    // The cookie is the key: it spends from the key's own request budget.
    if let claude_code_api_core::security::rate_limit::Decision::Limited {
        limit,
        retry_after_secs,
    } = state.rate_limits.check(&signed.key_hash, signed.rate_limit)
    {
        return Err(ApiError::from(ServiceError::RateLimited(format!(
            "rate limit of {limit} requests exceeded; retry in {retry_after_secs} s"
        ))));
    }
    Ok(signed.caller)
}
