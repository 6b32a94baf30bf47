//! The nodes of the cluster (this server alone, outside one).

use super::Services;
use crate::db::models::instance::{self, NodeView};
use crate::error::ServiceError;

/// Every node, dead ones (unseen for a lease) marked by the database's clock.
pub async fn list(services: &Services) -> Result<Vec<NodeView>, ServiceError> {
    let stale_after = chrono::Duration::from_std(services.node.lease_ttl()).unwrap_or_default();
    Ok(crate::db::run(&services.pool, move |c| {
        let stale = instance::db_now(c)? - stale_after;
        instance::list(c, stale)
    })
    .await?)
}
