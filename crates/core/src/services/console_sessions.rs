//! Console sign-ins: a key given once becomes a session row and a random
//! cookie value (only its hash is stored), with a CSRF token of its own.

use base64::Engine;
use rand::RngCore;

use super::Services;
use crate::db::models::console_session::{self, ConsoleSession, Live};
use crate::error::ServiceError;
use crate::security::auth::Caller;
use crate::security::keys::hash_key;

/// A sign-in lasts this long, then the key must be given again.
pub const SESSION_HOURS: i64 = 12;

/// 32 random bytes, URL-safe base64.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Stores a new console session for the caller's key; returns the cookie's
/// value. Expired rows are swept on the way.
pub async fn create(services: &Services, caller: &Caller) -> Result<String, ServiceError> {
    let id = random_token();
    let now = crate::db::now();
    let row = ConsoleSession {
        id_hash: hash_key(&id),
        key_id: caller.key_id.clone(),
        tenant_id: caller.tenant.0.clone(),
        csrf_token: random_token(),
        created_at: now,
        expires_at: now + chrono::Duration::hours(SESSION_HOURS),
    };
    crate::db::run(&services.pool, move |c| {
        console_session::insert_sweeping(c, &row, now)
    })
    .await?;
    Ok(id)
}

/// Ends the session the cookie value names (signing out).
pub async fn destroy(services: &Services, cookie_value: &str) -> Result<(), ServiceError> {
    let id_hash = hash_key(cookie_value);
    crate::db::run(&services.pool, move |c| {
        console_session::delete(c, &id_hash)
    })
    .await?;
    Ok(())
}

/// The live session the cookie value names, with its key and its tenant's
/// own rate limit.
pub async fn find_live(
    services: &Services,
    cookie_value: &str,
) -> Result<Option<Live>, ServiceError> {
    let id_hash = hash_key(cookie_value);
    Ok(crate::db::run(&services.pool, move |c| {
        console_session::find_live(c, &id_hash)
    })
    .await?)
}

/// The live person's session (OpenID Connect sign-in) the cookie value
/// names, with its tenant's own rate limit.
pub async fn find_live_person(
    services: &Services,
    cookie_value: &str,
) -> Result<Option<console_session::LivePerson>, ServiceError> {
    let id_hash = hash_key(cookie_value);
    Ok(crate::db::run(&services.pool, move |c| {
        console_session::find_live_person(c, &id_hash)
    })
    .await?)
}
