//! What the operator and the tenant allow: the tenant's row (its budget and
//! permission ceiling) and the permission-mode check every turn and every
//! new session meets.

use super::{Requester, Services};
use crate::db::models::tenant::Tenant;
use crate::domain::session::PermissionMode;
use crate::error::ServiceError;

/// The caller's tenant row (its budget and permission ceiling), read once
/// per request.
pub async fn tenant(services: &Services, who: &Requester) -> Result<Option<Tenant>, ServiceError> {
    let tenant = who.tenant().clone();
    Ok(crate::db::run(&services.pool, move |c| {
        crate::db::models::tenant::find_tenant(c, tenant.as_str())
    })
    .await?)
}

/// The permission ceiling: the mode a session or turn would run in (the
/// turn's, else the session's, else the server default) must be allowed for
/// the server and the tenant; else a 422 naming the allowed modes.
pub fn check_permission_mode(
    services: &Services,
    tenant: Option<&Tenant>,
    session_mode: Option<PermissionMode>,
    turn_mode: Option<PermissionMode>,
) -> Result<(), ServiceError> {
    let mode = turn_mode
        .or(session_mode)
        .unwrap_or(services.settings.sessions.permission_mode);
    crate::domain::session::check_permission_mode(
        mode,
        &services.settings.sessions.allowed_permission_modes,
        tenant.and_then(|t| t.allowed_permission_modes.as_deref()),
    )
    .map_err(ServiceError::Validation)
}
