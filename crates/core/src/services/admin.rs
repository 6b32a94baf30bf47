//! Administration of the server's tenants and their API keys, model
//! credentials and egress allowlists. Tenants, their limits, credentials
//! and allowlists are the owner's; an admin manages its own tenant's keys.
//! Every change is audited before it is answered.

use super::{audit, Requester, Services};
use crate::actors::supervisor::messages::TenantLimitsChanged;
use crate::db::models::tenant::{self, ApiKey, Tenant, TenantId, TenantLimits};
use crate::db::models::{egress, model_call};
use crate::db::{self};
use crate::domain::role::Role;
use crate::error::ServiceError;
use crate::gateway::credential::Kind;
use crate::security::auth::Caller;
use crate::security::keys;

/// Longest label of a key, in characters.
pub const KEY_LABEL_MAX_CHARS: usize = 200;

/// Every tenant (the owner), or the admin's own.
pub async fn list_tenants(services: &Services, who: &Caller) -> Result<Vec<Tenant>, ServiceError> {
    who.require_admin()?;
    if !who.is_owner() {
        let own = who.tenant.0.clone();
        return Ok(
            db::run(&services.pool, move |c| tenant::find_tenant(c, &own))
                .await?
                .into_iter()
                .collect(),
        );
    }
    Ok(db::run(&services.pool, tenant::list_tenants).await?)
}

/// Creates tenant `name` with `limits`; a taken name is a conflict.
pub async fn create_tenant(
    services: &Services,
    who: &Requester,
    name: String,
    limits: TenantLimits,
) -> Result<Tenant, ServiceError> {
    who.require_owner()?;
    if !keys::is_tenant_name(&name) {
        return Err(ServiceError::Validation(
            "tenant names are 1-64 of A-Z a-z 0-9 . _ - not starting with '.'".into(),
        ));
    }
    let new = name.clone();
    let created = db::run(&services.pool, move |c| {
        if tenant::find_tenant(c, &new)?.is_some() {
            return Ok(None);
        }
        tenant::insert_tenant(c, &Tenant::new(&new, None))?;
        tenant::update_limits(c, &new, &limits)
    })
    .await?
    .ok_or_else(|| ServiceError::Conflict(format!("a tenant named {name:?} exists")))?;
    audit::record(services, who, "tenant.create", &created.id).await;
    Ok(created)
}

/// Changes a tenant's limits. Live sessions take a new running-turn limit
/// at once (waiting turns it allows start before this returns); the change
/// itself is stored first.
pub async fn update_tenant_limits(
    services: &Services,
    who: &Requester,
    id: String,
    limits: TenantLimits,
) -> Result<Tenant, ServiceError> {
    who.require_owner()?;
    let lookup = id.clone();
    let updated = db::run(&services.pool, move |c| {
        tenant::update_limits(c, &lookup, &limits)
    })
    .await?
    .ok_or_else(|| ServiceError::NotFound(format!("no tenant {id:?}")))?;
    let changed = TenantLimitsChanged {
        tenant_id: updated.id.clone(),
    };
    if let Err(e) = services.supervisor.send(changed).await {
        tracing::warn!(tenant = %updated.id, error = %e, "live sessions keep the old turn limit until their next turn");
    }
    services.disk.forget_quota(&updated.id).await;
    services.identities.changed(&services.pool).await;
    audit::record(services, who, "tenant.update", &updated.id).await;
    Ok(updated)
}

/// Keys (never the keys themselves), of one tenant or all (the owner's
/// view); an admin sees its own tenant's.
pub async fn list_keys(
    services: &Services,
    who: &Caller,
    tenant: Option<String>,
) -> Result<Vec<ApiKey>, ServiceError> {
    let tenant = who.admin_scope(tenant)?;
    Ok(db::run(&services.pool, move |c| {
        tenant::list_keys(c, tenant.as_deref())
    })
    .await?)
}

/// Creates a key of `role` (member by default) for an existing tenant; the
/// key itself is returned once and never stored.
pub async fn create_key(
    services: &Services,
    who: &Requester,
    tenant_id: String,
    role: Option<String>,
    label: Option<String>,
) -> Result<(ApiKey, String), ServiceError> {
    who.require_admin_of(&tenant_id)?;
    let role = grantable_role(who, role.as_deref())?;
    let label = label.unwrap_or_default();
    if label.chars().count() > KEY_LABEL_MAX_CHARS {
        return Err(ServiceError::Validation(format!(
            "label is longer than {KEY_LABEL_MAX_CHARS} characters"
        )));
    }
    // The audit log names a personal key's person as `(person:<sub>)`: a
    // machine key's label may not pass for one.
    if label.contains("person:") {
        return Err(ServiceError::Validation(
            "a key's label may not contain \"person:\" (the audit log names people so)".into(),
        ));
    }
    let lookup = tenant_id.clone();
    let (row, key) = db::run(&services.pool, move |c| {
        if tenant::find_tenant(c, &lookup)?.is_none() {
            return Ok(None);
        }
        keys::create_key(c, &lookup, &role, &label).map(Some)
    })
    .await?
    .ok_or_else(|| ServiceError::NotFound(format!("no tenant {tenant_id:?}")))?;
    services.identities.changed(&services.pool).await;
    audit::record(services, who, "key.create", &row.id).await;
    Ok((row, key))
}

/// Revokes a key at once. An admin revokes its own tenant's keys, and none
/// of a higher role than its own.
pub async fn revoke_key(
    services: &Services,
    who: &Requester,
    id: String,
) -> Result<ApiKey, ServiceError> {
    who.require_admin()?;
    let lookup = id.clone();
    let key = db::run(&services.pool, move |c| tenant::find_key(c, &lookup))
        .await?
        .filter(|key| who.is_owner() || key.tenant_id == who.tenant().0)
        .ok_or_else(|| ServiceError::NotFound(format!("no key {id:?}")))?;
    if Role::from_stored(&key.role) > who.role() {
        return Err(ServiceError::Forbidden(format!(
            "key {id:?} is an {} key; a {} cannot revoke it",
            key.role,
            who.role()
        )));
    }
    let lookup = id.clone();
    let revoked = db::run(&services.pool, move |c| tenant::revoke_key(c, &lookup))
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("no key {id:?}")))?;
    services.identities.changed(&services.pool).await;
    audit::record(services, who, "key.revoke", &revoked.id).await;
    Ok(revoked)
}

/// The role a key, rule or mapping made by `who` may carry: `requested`
/// (member by default), a role's name and no higher than the caller's own.
pub fn grantable_role(who: &Caller, requested: Option<&str>) -> Result<String, ServiceError> {
    let role = match requested {
        None => Role::Member,
        Some(name) => Role::parse(name)
            .ok_or_else(|| ServiceError::Validation(format!("role must be {}", Role::names())))?,
    };
    if role > who.role() {
        return Err(ServiceError::Forbidden(format!(
            "a {} cannot grant the {role} role",
            who.role()
        )));
    }
    Ok(role.as_str().to_owned())
}

/// Longest model secret accepted (model API keys and tokens are far shorter).
pub const MODEL_SECRET_MAX_LEN: usize = 4096;

/// The tenant's own model credential, if it has one.
pub async fn model_credential(
    services: &Services,
    who: &Requester,
    tenant_id: String,
) -> Result<model_call::TenantCredentialRow, ServiceError> {
    who.require_owner()?;
    let lookup = tenant_id.clone();
    db::run(&services.pool, move |c| {
        model_call::find_credential(c, &lookup)
    })
    .await?
    .ok_or_else(|| {
        ServiceError::NotFound(format!("tenant {tenant_id:?} has no credential of its own"))
    })
}

/// Gives a tenant its own model credential; `gateway` uses it from its
/// processes' next model call.
pub async fn set_model_credential(
    services: &Services,
    gateway: &crate::gateway::ModelGateway,
    who: &Requester,
    tenant_id: String,
    kind: &str,
    secret: String,
) -> Result<model_call::TenantCredentialRow, ServiceError> {
    who.require_owner()?;
    let kind = Kind::parse(kind).ok_or_else(|| {
        ServiceError::Validation("kind must be api_key, auth_token or oauth_token".into())
    })?;
    if secret.is_empty()
        || secret.len() > MODEL_SECRET_MAX_LEN
        || !secret.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(ServiceError::Validation(
            "secret must be 1-4096 printable ASCII characters without spaces".into(),
        ));
    }
    let lookup = tenant_id.clone();
    let stored = db::run(&services.pool, move |c| {
        if tenant::find_tenant(c, &lookup)?.is_none() {
            return Ok(None);
        }
        model_call::set_credential(c, &lookup, kind.as_str(), &secret)?;
        model_call::find_credential(c, &lookup)
    })
    .await?
    .ok_or_else(|| ServiceError::NotFound(format!("no tenant {tenant_id:?}")))?;
    gateway.reload_tenant_credentials().await?;
    audit::record(services, who, "tenant.model_credential.set", &tenant_id).await;
    Ok(stored)
}

/// Removes a tenant's own credential: it uses the server's again.
pub async fn delete_model_credential(
    services: &Services,
    gateway: &crate::gateway::ModelGateway,
    who: &Requester,
    tenant_id: String,
) -> Result<(), ServiceError> {
    who.require_owner()?;
    let lookup = tenant_id.clone();
    let removed = db::run(&services.pool, move |c| {
        model_call::clear_credential(c, &lookup)
    })
    .await?;
    if !removed {
        return Err(ServiceError::NotFound(format!(
            "tenant {tenant_id:?} has no credential of its own"
        )));
    }
    gateway.reload_tenant_credentials().await?;
    audit::record(services, who, "tenant.model_credential.delete", &tenant_id).await;
    Ok(())
}

/// The hosts the tenant's agents may reach through the egress proxy.
pub async fn egress_hosts(
    services: &Services,
    who: &Requester,
    tenant_id: String,
) -> Result<Vec<String>, ServiceError> {
    who.require_owner()?;
    let lookup = tenant_id.clone();
    db::run(&services.pool, move |c| {
        if tenant::find_tenant(c, &lookup)?.is_none() {
            return Ok(None);
        }
        egress::allowed_hosts(c, &TenantId(lookup)).map(Some)
    })
    .await?
    .ok_or_else(|| ServiceError::NotFound(format!("no tenant {tenant_id:?}")))
}

/// Replaces the tenant's egress allowlist (patterns normalised, sorted,
/// without repeats); new connections of its running agents are checked
/// against it at once.
pub async fn set_egress_hosts(
    services: &Services,
    who: &Requester,
    tenant_id: String,
    raw: &[String],
) -> Result<Vec<String>, ServiceError> {
    use crate::egress::allowlist;
    who.require_owner()?;
    if raw.len() > allowlist::MAX_PATTERNS {
        return Err(ServiceError::Validation(format!(
            "allowed_hosts has {} entries; at most {} are allowed",
            raw.len(),
            allowlist::MAX_PATTERNS
        )));
    }
    let mut patterns = raw
        .iter()
        .map(|p| allowlist::normalize(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServiceError::Validation(format!("allowed_hosts: {e}")))?;
    patterns.sort();
    patterns.dedup();
    let (lookup, stored) = (tenant_id.clone(), patterns.clone());
    let found = db::run(&services.pool, move |c| {
        if tenant::find_tenant(c, &lookup)?.is_none() {
            return Ok(false);
        }
        egress::set_allowed_hosts(c, &TenantId(lookup), &stored)?;
        Ok(true)
    })
    .await?;
    if !found {
        return Err(ServiceError::NotFound(format!("no tenant {tenant_id:?}")));
    }
    audit::record(services, who, "tenant.egress.set", &tenant_id).await;
    Ok(patterns)
}
