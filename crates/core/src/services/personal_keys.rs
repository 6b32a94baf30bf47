//! A member's own keys: made by a person signed in through the identity
//! provider, for scripts and tools of their own. Each is named, has a role
//! no higher than the person's and an expiry, and is revoked when the
//! person leaves the tenant (see `db::models::member`).

use super::{audit, Requester, Services};
use crate::db::models::tenant::{self, ApiKey};
use crate::db::schema::api_keys;
use crate::error::ServiceError;
use crate::security::keys;

/// Days a personal key lives when its maker does not say.
pub const DEFAULT_DAYS: i64 = 90;
/// Longest life of a personal key, in days.
pub const MAX_DAYS: i64 = 365;
/// Most unrevoked, unexpired keys one person may hold in a tenant.
pub const MAX_PER_PERSON: i64 = 20;

/// The person a requester is: `person:<sub>` callers (console sign-ins
/// through the provider) only.
fn person(who: &Requester) -> Result<&str, ServiceError> {
    who.caller.key_id.strip_prefix("person:").ok_or_else(|| {
        ServiceError::Forbidden(
            "personal keys are made by people signed in through the identity provider; \
                 a key's holder asks an admin for keys"
                .into(),
        )
    })
}

/// Makes a key of the caller's own: `role` (member by default, no higher
/// than the caller's), living `days` (1-365, 90 by default).
pub async fn create(
    services: &Services,
    who: &Requester,
    label: String,
    role: Option<&str>,
    days: Option<i64>,
) -> Result<(ApiKey, String), ServiceError> {
    let subject = person(who)?.to_owned();
    let role = super::admin::grantable_role(who, role)?;
    let label = label.trim().to_owned();
    if label.is_empty() || label.chars().count() > super::admin::KEY_LABEL_MAX_CHARS {
        return Err(ServiceError::Validation(format!(
            "label must be 1-{} characters",
            super::admin::KEY_LABEL_MAX_CHARS
        )));
    }
    let days = days.unwrap_or(DEFAULT_DAYS);
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(ServiceError::Validation(format!(
            "expires_in_days must be 1-{MAX_DAYS}"
        )));
    }
    let tenant = who.tenant().0.clone();
    let now = crate::db::now();
    let expires_at = now + chrono::Duration::days(days);
    let made = crate::db::run(&services.pool, move |c| {
        crate::db::write_transaction(c, |c| {
            use diesel::prelude::*;
            let held: i64 = api_keys::table
                .filter(api_keys::tenant_id.eq(&tenant))
                .filter(api_keys::owner_subject.eq(&subject))
                .filter(api_keys::revoked_at.is_null())
                .filter(api_keys::expires_at.gt(now))
                .count()
                .get_result(c)?;
            if held >= MAX_PER_PERSON {
                return Ok(None);
            }
            keys::create_personal_key(c, &tenant, &role, &label, &subject, expires_at).map(Some)
        })
    })
    .await?
    .ok_or_else(|| {
        ServiceError::Conflict(format!(
            "you hold {MAX_PER_PERSON} keys already; revoke one first"
        ))
    })?;
    services.identities.changed(&services.pool).await;
    audit::record(services, who, "key.create", &made.0.id).await;
    Ok(made)
}

/// The caller's own keys, newest first (revoked and expired ones too).
pub async fn list(services: &Services, who: &Requester) -> Result<Vec<ApiKey>, ServiceError> {
    let subject = person(who)?.to_owned();
    let tenant = who.tenant().0.clone();
    Ok(crate::db::run(&services.pool, move |c| {
        tenant::personal_keys(c, &tenant, &subject)
    })
    .await?)
}

/// Revokes one of the caller's own keys; another's is a 404.
pub async fn revoke(
    services: &Services,
    who: &Requester,
    id: String,
) -> Result<ApiKey, ServiceError> {
    let subject = person(who)?.to_owned();
    let (tenant, lookup) = (who.tenant().0.clone(), id.clone());
    let revoked = crate::db::run(&services.pool, move |c| {
        let own = tenant::find_key(c, &lookup)?.filter(|k| {
            k.tenant_id == tenant && k.owner_subject.as_deref() == Some(subject.as_str())
        });
        match own {
            Some(_) => tenant::revoke_key(c, &lookup),
            None => Ok(None),
        }
    })
    .await?
    .ok_or_else(|| ServiceError::NotFound(format!("no key {id:?} of yours")))?;
    services.identities.changed(&services.pool).await;
    audit::record(services, who, "key.revoke", &revoked.id).await;
    Ok(revoked)
}
