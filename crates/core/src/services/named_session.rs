//! A session named by a client: the name's rules, and the caller's session
//! of that name (every other service that acts on a named session starts
//! here; another tenant's session is a 404 like a missing one).

use super::{Requester, Services};
use crate::db::models::session::{self, Session};
use crate::db::models::session_page::{self, Listed};
use crate::db::models::TenantId;
use crate::db::{DbConnection, DbResult};
use crate::error::ServiceError;

/// Session names: 1–128 of `[A-Za-z0-9._-]`, not starting with a dot.
pub fn validate_name(name: &str) -> Result<(), ServiceError> {
    let valid = (1..=128).contains(&name.len())
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(ServiceError::Validation(format!(
            "invalid session name {name:?}: use 1-128 characters of A-Z a-z 0-9 . _ - not starting with '.'"
        )))
    }
}

/// The caller's session by name, or 404 (also for another tenant's session,
/// and for a session private to someone else).
pub async fn load(
    services: &Services,
    who: &Requester,
    name: &str,
) -> Result<Session, ServiceError> {
    find_seen(services, who, name, session::find_by_name, |s| s).await
}

/// The caller's session by name with its fork link, in one query (a
/// session document's whole read), or 404 as `load`.
pub async fn load_listed(
    services: &Services,
    who: &Requester,
    name: &str,
) -> Result<Listed, ServiceError> {
    find_seen(services, who, name, session_page::find, |(s, _)| s).await
}

/// `find`'s row of the tenant's session `name` when the caller sees that
/// session (`session_of` picks it out of the row), else a 404.
async fn find_seen<T: Send + 'static>(
    services: &Services,
    who: &Requester,
    name: &str,
    find: fn(&mut DbConnection, &TenantId, &str) -> DbResult<Option<T>>,
    session_of: fn(&T) -> &Session,
) -> Result<T, ServiceError> {
    let missing = || ServiceError::NotFound(format!("no session named {name:?}"));
    validate_name(name).map_err(|_| missing())?;
    tracing::Span::current().record("session", name);
    let tenant = who.tenant().clone();
    let lookup = name.to_owned();
    crate::db::read(&services.pool, move |c| find(c, &tenant, &lookup))
        .await?
        .filter(|row| who.sight().sees(session_of(row)))
        .ok_or_else(missing)
}
