//! Which sessions have a turn running, per tenant, as the supervisor last
//! changed it. Session documents read it on every list and get: from here
//! that costs a read lock, not a message to the supervisor and a wait for
//! its answer.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

#[derive(Debug, Default)]
pub struct RunningTurns(RwLock<HashMap<String, HashSet<String>>>);

impl RunningTurns {
    /// The ids of the tenant's sessions whose turn holds a permit now.
    pub fn of(&self, tenant_id: &str) -> HashSet<String> {
        let by_tenant = self.0.read().unwrap_or_else(|e| e.into_inner());
        by_tenant.get(tenant_id).cloned().unwrap_or_default()
    }

    /// The supervisor's word on a tenant's running turns.
    pub(super) fn publish(&self, tenant_id: &str, running: Option<&HashSet<String>>) {
        let mut by_tenant = self.0.write().unwrap_or_else(|e| e.into_inner());
        match running.filter(|r| !r.is_empty()) {
            Some(running) => {
                by_tenant.insert(tenant_id.to_owned(), running.clone());
            }
            None => {
                by_tenant.remove(tenant_id);
            }
        }
    }
}
