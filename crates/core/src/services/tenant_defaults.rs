//! A tenant's defaults: what its new sessions start from, between the
//! server's defaults and the session's template (operator defaults →
//! tenant defaults → template → session → turn). Set by admins; a session
//! keeps what it was created with.

use super::{audit, Requester, Services};
use crate::db;
use crate::db::models::{tenant, tenant_defaults, TenantId};
use crate::domain::session::SessionSpec;
use crate::error::ServiceError;

/// The tenant's defaults, when set (for the server's own use).
pub async fn of(
    services: &Services,
    tenant: &TenantId,
) -> Result<Option<SessionSpec>, ServiceError> {
    let lookup = tenant.clone();
    let stored = db::run(&services.pool, move |c| tenant_defaults::get(c, &lookup)).await?;
    Ok(stored.and_then(|s| serde_json::from_str(&s).ok()))
}

/// Tenant `tenant_id`'s defaults (empty when none are set); its admins only.
pub async fn get(
    services: &Services,
    who: &Requester,
    tenant_id: String,
) -> Result<SessionSpec, ServiceError> {
    who.require_admin_of(&tenant_id)?;
    let id = TenantId(tenant_id);
    exists(services, &id).await?;
    Ok(of(services, &id).await?.unwrap_or_default())
}

/// Replaces tenant `tenant_id`'s defaults; its admins only, audited. They
/// apply to sessions created from now on.
pub async fn set(
    services: &Services,
    who: &Requester,
    tenant_id: String,
    defaults: SessionSpec,
) -> Result<SessionSpec, ServiceError> {
    who.require_admin_of(&tenant_id)?;
    let id = TenantId(tenant_id);
    exists(services, &id).await?;
    if defaults.template.is_some() || defaults.env.is_some() {
        return Err(ServiceError::Validation(
            "template and env cannot be tenant defaults".into(),
        ));
    }
    if defaults.max_turns == Some(0) {
        return Err(ServiceError::Validation(
            "max_turns must be at least 1".into(),
        ));
    }
    if let Some(agents) = &defaults.agents {
        crate::domain::agent::validate("agents", agents).map_err(ServiceError::Validation)?;
    }
    if let Some(servers) = &defaults.mcp_servers {
        super::mcp_servers::check(services, &id, servers).await?;
    }
    let text = serde_json::to_string(&defaults).map_err(ServiceError::internal)?;
    let stored = id.clone();
    db::run(&services.pool, move |c| {
        tenant_defaults::set(c, &stored, &text)
    })
    .await?;
    audit::record(services, who, "tenant.defaults.set", &id.0).await;
    Ok(defaults)
}

async fn exists(services: &Services, id: &TenantId) -> Result<(), ServiceError> {
    let lookup = id.0.clone();
    let found = db::run(&services.pool, move |c| tenant::find_tenant(c, &lookup)).await?;
    match found {
        Some(_) => Ok(()),
        None => Err(ServiceError::NotFound(format!("no tenant {:?}", id.0))),
    }
}
