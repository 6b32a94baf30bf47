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

/// Where the live lease of the tenant's session `name` is held, when that
/// is another node: `Some(its advertise URL)` (`None` inside when it
/// registered none).
pub async fn owner_elsewhere(
    services: &Services,
    tenant: &str,
    name: &str,
) -> Result<Option<Option<String>>, ServiceError> {
    // Held here: no need to ask where.
    if services.held_leases.holds(tenant, name) {
        return Ok(None);
    }
    let (tenant, name) = (tenant.to_owned(), name.to_owned());
    let me = services.node.instance_id().to_owned();
    Ok(crate::db::run(&services.pool, move |c| {
        crate::db::models::lease::owner_of_named(c, &tenant, &name, &me)
    })
    .await?)
}

/// This node's session figures (live actors and processes, queues), or
/// `None` when its supervisor does not answer.
pub async fn session_stats(
    supervisor: &actix::Addr<crate::actors::supervisor::Supervisor>,
) -> Option<crate::actors::supervisor::messages::SupervisorStats> {
    supervisor
        .send(crate::actors::supervisor::messages::Stats)
        .await
        .ok()
}
