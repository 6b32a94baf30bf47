//! What a tenant has used: turns, tokens, cost and disk.

use super::{Requester, Services};
use crate::db::models::usage as usage_rows;
pub use crate::db::models::usage::Usage;
use crate::db::models::TenantId;
use crate::disk::DiskStatus;
use crate::error::ServiceError;

/// The usage and disk status of the caller's tenant, or of `other` (the
/// owner only).
pub async fn of_tenant(
    services: &Services,
    who: &Requester,
    other: Option<String>,
) -> Result<(Usage, DiskStatus), ServiceError> {
    let tenant = match other {
        Some(other) if other != who.tenant().0 => {
            who.require_owner()?;
            TenantId(other)
        }
        _ => who.tenant().clone(),
    };
    let disk = services
        .disk
        .status(tenant.as_str(), std::time::Duration::ZERO)
        .await?;
    let usage = crate::db::run(&services.pool, move |c| usage_rows::for_tenant(c, &tenant)).await?;
    Ok((usage, disk))
}
