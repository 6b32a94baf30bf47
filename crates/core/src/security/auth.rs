//! Authentication: the key a request presents, and the caller it resolves
//! to (the tenant every query must be scoped to). The HTTP extractor is in
//! `api::requester`.

use subtle::ConstantTimeEq;

use crate::db::models::tenant::{self, TenantId};
use crate::domain::role::Role;
use crate::error::ServiceError;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: TenantId,
    pub key_id: String,
    pub key_label: String,
    pub role: String,
    /// The person behind the request: one signed in through the identity
    /// provider, or the owner of a personal key (its subject).
    pub person: Option<String>,
}

impl Caller {
    /// What the caller may do (a stored name this server does not know
    /// grants the least).
    pub fn role(&self) -> Role {
        Role::from_stored(&self.role)
    }

    /// Who the caller is across its ways in: `person:<sub>` for a person
    /// (signed in, or through a personal key), else the key's id. Private
    /// sessions are private to a principal.
    pub fn principal(&self) -> String {
        match &self.person {
            Some(subject) => format!("person:{subject}"),
            None => self.key_id.clone(),
        }
    }

    /// What of the tenant's sessions the caller sees.
    pub fn sight(&self) -> crate::db::models::session::Sight {
        crate::db::models::session::Sight {
            principal: self.principal(),
            sees_all: self.is_admin(),
        }
    }

    /// An admin of its tenant, or the server's owner.
    pub fn is_admin(&self) -> bool {
        self.role() >= Role::Admin
    }

    /// The server's owner: manages every tenant and the server itself.
    pub fn is_owner(&self) -> bool {
        self.role() == Role::Owner
    }

    /// Refuses callers below `role`.
    pub fn require(&self, role: Role) -> Result<(), ServiceError> {
        if self.role() >= role {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(format!(
                "this needs the {role} role; this caller is a {}",
                self.role()
            )))
        }
    }

    /// Refuses callers that are not admins (of their tenant) or the owner.
    pub fn require_admin(&self) -> Result<(), ServiceError> {
        self.require(Role::Admin)
    }

    /// Refuses callers that are not the server's owner.
    pub fn require_owner(&self) -> Result<(), ServiceError> {
        self.require(Role::Owner)
    }

    /// Refuses callers that may not administer `tenant`: the owner may
    /// administer any, an admin only its own. Another tenant is a 404, as
    /// everywhere, so its existence is not told.
    pub fn require_admin_of(&self, tenant: &str) -> Result<(), ServiceError> {
        self.require_admin()?;
        if self.is_owner() || self.tenant.as_str() == tenant {
            Ok(())
        } else {
            Err(ServiceError::NotFound(format!("no tenant {tenant:?}")))
        }
    }

    /// The tenant an admin listing covers: `requested` when the caller may
    /// administer it, else for no request every tenant (`None`, the owner)
    /// or the admin's own.
    pub fn admin_scope(&self, requested: Option<String>) -> Result<Option<String>, ServiceError> {
        match requested {
            Some(tenant) => {
                self.require_admin_of(&tenant)?;
                Ok(Some(tenant))
            }
            None => {
                self.require_admin()?;
                Ok((!self.is_owner()).then(|| self.tenant.0.clone()))
            }
        }
    }
}

/// The key from `X-API-Key` (`api_key_header`), else from `Authorization:
/// Bearer` (`authorization`).
pub fn presented_key(api_key_header: Option<&str>, authorization: Option<&str>) -> Option<String> {
    if let Some(key) = api_key_header {
        return Some(key.trim().to_owned()).filter(|k| !k.is_empty());
    }
    authorization
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

/// Marks a request whose bearer token the rate-limit middleware refused,
/// with why (the 401's detail).
#[derive(Debug, Clone)]
pub struct RefusedToken(pub String);

/// What a presented key resolves to: the caller, and its tenant's own rate
/// limit if it has one. Looked up once per request.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub caller: Caller,
    pub rate_limit: Option<(u32, u64)>,
}

/// Resolves a key's hash against the database (one query: the key and its
/// tenant's limits); `None` for an unknown, revoked or expired key, else
/// with when the key expires, if it does. Requests go through
/// `Identities::resolve`, which remembers the answer (not past the expiry).
pub async fn lookup(
    pool: &crate::db::DbPool,
    settings: &crate::config::Settings,
    presented_hash: String,
) -> Result<Option<(Resolved, Option<chrono::NaiveDateTime>)>, ServiceError> {
    let lookup = presented_hash.clone();
    let found = crate::db::run(pool, move |c| {
        tenant::find_active_key_with_limits(c, &lookup)
    })
    .await?;
    Ok(match found {
        Some((key, requests, window))
            if bool::from(key.key_hash.as_bytes().ct_eq(presented_hash.as_bytes())) =>
        {
            let rate_limit = tenant_rate_limit(settings, requests, window);
            let expires_at = key.expires_at;
            let resolved = Resolved {
                caller: Caller {
                    tenant: TenantId(key.tenant_id),
                    // A member's own key names its person in the audit log.
                    key_label: match &key.owner_subject {
                        Some(subject) => format!("{} (person:{subject})", key.label),
                        None => key.label,
                    },
                    key_id: key.id,
                    role: key.role,
                    person: key.owner_subject,
                },
                rate_limit,
            };
            Some((resolved, expires_at))
        }
        _ => None,
    })
}

/// A tenant's own rate limit (requests, window seconds), the server's
/// filling in the half it does not set; `None` when it sets neither.
pub fn tenant_rate_limit(
    settings: &crate::config::Settings,
    requests: Option<i64>,
    window: Option<i64>,
) -> Option<(u32, u64)> {
    let requests = requests.and_then(|r| u32::try_from(r).ok());
    let window = window.and_then(|w| u64::try_from(w).ok());
    match (requests, window) {
        (None, None) => None,
        (r, w) => Some((
            r.unwrap_or(settings.server.rate_limit_requests),
            w.unwrap_or(settings.server.rate_limit_window.as_secs()),
        )),
    }
}
