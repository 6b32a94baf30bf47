//! Console sign-in: an API key posted once becomes a server-side session
//! row and an HttpOnly `SameSite=Strict` cookie holding a random id (only
//! its hash is stored). The cookie then stands for that key everywhere the
//! key is accepted, including the JSON API the console's script calls, but
//! a request that changes anything must also carry the session's CSRF token
//! (`X-CSRF-Token`, or the `csrf` field of a console form), which a
//! cross-site page cannot read.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::{web, HttpRequest};
use base64::Engine;
use chrono::NaiveDateTime;
use claude_code_api_core::error::ServiceError;
use diesel::prelude::*;
use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;
use claude_code_api_core::db::models::tenant::{ApiKey, TenantId};
use claude_code_api_core::db::schema::{api_keys, console_sessions, tenants};
use claude_code_api_core::db::{DbConnection, DbResult};
use claude_code_api_core::security::auth::Caller;
use claude_code_api_core::security::keys::hash_key;

/// The session cookie (path `/`: the API the script calls needs it too).
pub const COOKIE: &str = "cca_console";
/// Holds the sign-in form's CSRF token before there is a session.
pub const LOGIN_COOKIE: &str = "cca_console_login";
/// The header the console's script sends the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A sign-in lasts this long, then the key must be given again.
pub const SESSION_HOURS: i64 = 12;
/// Longest key accepted by the sign-in form (keys are about 50 bytes).
pub const MAX_KEY_LEN: usize = 512;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = console_sessions)]
struct ConsoleSession {
    id_hash: String,
    key_id: String,
    tenant_id: String,
    csrf_token: String,
    created_at: NaiveDateTime,
    expires_at: NaiveDateTime,
}

/// A signed-in browser: who it acts as, and its CSRF token.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub caller: Caller,
    pub csrf: String,
    /// The key's hash, which its rate-limit bucket is keyed by.
    key_hash: String,
    rate_limit: Option<(u32, u64)>,
}

/// 32 random bytes, URL-safe base64.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

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
/// value. Expired rows are swept on the way.
pub async fn create(state: &AppState, caller: &Caller) -> Result<String, ApiError> {
    let id = random_token();
    let now = claude_code_api_core::db::now();
    let row = ConsoleSession {
        id_hash: hash_key(&id),
        key_id: caller.key_id.clone(),
        tenant_id: caller.tenant.0.clone(),
        csrf_token: random_token(),
        created_at: now,
        expires_at: now + chrono::Duration::hours(SESSION_HOURS),
    };
    claude_code_api_core::db::run(&state.services.pool, move |c| {
        diesel::delete(console_sessions::table.filter(console_sessions::expires_at.lt(now)))
            .execute(c)?;
        diesel::insert_into(console_sessions::table)
            .values(&row)
            .execute(c)?;
        Ok(())
    })
    .await?;
    Ok(id)
}

/// Ends the session the cookie names (signing out).
pub async fn destroy(state: &AppState, cookie_value: &str) -> Result<(), ApiError> {
    let id_hash = hash_key(cookie_value);
    claude_code_api_core::db::run(&state.services.pool, move |c| {
        diesel::delete(console_sessions::table.find(id_hash)).execute(c)?;
        Ok(())
    })
    .await?;
    Ok(())
}

/// A live session row, its key, and its tenant's own rate limit
/// (requests, window seconds).
type Live = (ConsoleSession, ApiKey, Option<i64>, Option<i64>);

/// The live session row and its key: unexpired, key not revoked.
fn find_live(conn: &mut DbConnection, id_hash: &str) -> DbResult<Option<Live>> {
    Ok(console_sessions::table
        .inner_join(api_keys::table)
        .inner_join(tenants::table.on(tenants::id.eq(api_keys::tenant_id)))
        .filter(console_sessions::id_hash.eq(id_hash))
        .filter(console_sessions::expires_at.gt(claude_code_api_core::db::now()))
        .filter(api_keys::revoked_at.is_null())
        .select((
            ConsoleSession::as_select(),
            ApiKey::as_select(),
            tenants::rate_limit_requests,
            tenants::rate_limit_window_seconds,
        ))
        .first(conn)
        .optional()?)
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
    let id_hash = hash_key(&value);
    let found =
        claude_code_api_core::db::run(&state.services.pool, move |c| find_live(c, &id_hash))
            .await?;
    Ok(found.map(|(session, key, requests, window)| {
        // The tenant's own quota, as `security::auth::resolve` reads it.
        let rate_limit = match (
            requests.and_then(|r| u32::try_from(r).ok()),
            window.and_then(|w| u64::try_from(w).ok()),
        ) {
            (None, None) => None,
            (r, w) => Some((
                r.unwrap_or(state.services.settings.rate_limit_requests),
                w.unwrap_or(state.services.settings.rate_limit_window.as_secs()),
            )),
        };
        SignedIn {
            caller: Caller {
                tenant: TenantId(key.tenant_id),
                key_id: key.id,
                key_label: key.label,
                role: key.role,
            },
            csrf: session.csrf_token,
            key_hash: key.key_hash,
            rate_limit,
        }
    }))
}

/// Whether a method only reads (no CSRF token needed).
fn is_safe(method: &actix_web::http::Method) -> bool {
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
