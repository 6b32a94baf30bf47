//! Which tenant opened each MCP session. Session ids come back from clients,
//! so the map is bounded: per tenant (one tenant cannot push out another's
//! sessions) and in total; the oldest binding goes first.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Most MCP sessions one tenant keeps open.
const MAX_PER_TENANT: usize = 100;
/// Most MCP sessions kept in all.
const MAX_TOTAL: usize = 10_000;

/// Session id → owning tenant, shared by every worker.
pub struct SessionOwners {
    inner: Mutex<Bindings>,
    per_tenant: usize,
    total: usize,
}

#[derive(Default)]
struct Bindings {
    /// Session id → (tenant, creation number).
    by_id: HashMap<String, (String, u64)>,
    /// Creation number → session id: the oldest first.
    order: BTreeMap<u64, String>,
    /// Sessions held by each tenant.
    counts: HashMap<String, usize>,
    next: u64,
}

impl Bindings {
    fn remove(&mut self, id: &str) -> bool {
        let Some((tenant, n)) = self.by_id.remove(id) else {
            return false;
        };
        self.order.remove(&n);
        if let Some(count) = self.counts.get_mut(&tenant) {
            *count -= 1;
            if *count == 0 {
                self.counts.remove(&tenant);
            }
        }
        true
    }

    /// The oldest session, of `tenant` when given.
    fn oldest(&self, tenant: Option<&str>) -> Option<String> {
        self.order
            .values()
            .find(|id| tenant.is_none_or(|t| self.by_id.get(*id).is_some_and(|(o, _)| o == t)))
            .cloned()
    }
}

impl Default for SessionOwners {
    fn default() -> Self {
        SessionOwners::with_limits(MAX_PER_TENANT, MAX_TOTAL)
    }
}

impl SessionOwners {
    pub fn with_limits(per_tenant: usize, total: usize) -> SessionOwners {
        SessionOwners {
            inner: Mutex::new(Bindings::default()),
            per_tenant: per_tenant.max(1),
            total: total.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bindings> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that `tenant` opened session `id`; returns the sessions
    /// forgotten to stay within bounds, which the caller must close.
    pub fn bind(&self, id: &str, tenant: &str) -> Vec<String> {
        let mut b = self.lock();
        b.remove(id);
        let mut evicted = Vec::new();
        while b.counts.get(tenant).copied().unwrap_or(0) >= self.per_tenant {
            let Some(oldest) = b.oldest(Some(tenant)) else {
                break;
            };
            b.remove(&oldest);
            evicted.push(oldest);
        }
        while b.by_id.len() >= self.total {
            let Some(oldest) = b.oldest(None) else {
                break;
            };
            b.remove(&oldest);
            evicted.push(oldest);
        }
        b.next += 1;
        let n = b.next;
        b.by_id.insert(id.to_owned(), (tenant.to_owned(), n));
        b.order.insert(n, id.to_owned());
        *b.counts.entry(tenant.to_owned()).or_default() += 1;
        evicted
    }

    /// Whether `id` is a session `tenant` opened (and not yet forgotten).
    pub fn is_owner(&self, id: &str, tenant: &str) -> bool {
        self.lock().by_id.get(id).is_some_and(|(t, _)| t == tenant)
    }

    /// Forgets session `id`; whether it was known.
    pub fn forget(&self, id: &str) -> bool {
        self.lock().remove(id)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_belongs_to_the_tenant_that_opened_it() {
        let owners = SessionOwners::default();
        assert!(owners.bind("s1", "alice").is_empty());
        assert!(owners.is_owner("s1", "alice"));
        assert!(!owners.is_owner("s1", "bob"));
        assert!(!owners.is_owner("s2", "alice"));
        assert!(owners.forget("s1"));
        assert!(!owners.is_owner("s1", "alice"));
        assert!(!owners.forget("s1"));
        assert_eq!(owners.len(), 0);
    }

    #[test]
    fn a_tenant_over_its_bound_loses_its_own_oldest_session() {
        let owners = SessionOwners::with_limits(2, 100);
        owners.bind("b1", "bob");
        owners.bind("a1", "alice");
        owners.bind("a2", "alice");
        assert_eq!(owners.bind("a3", "alice"), ["a1"]);
        assert!(
            owners.is_owner("b1", "bob"),
            "another tenant keeps its session"
        );
        assert!(owners.is_owner("a2", "alice") && owners.is_owner("a3", "alice"));
        assert_eq!(owners.len(), 3);
    }

    #[test]
    fn the_total_bound_drops_the_oldest_session() {
        let owners = SessionOwners::with_limits(10, 2);
        owners.bind("a1", "alice");
        owners.bind("b1", "bob");
        assert_eq!(owners.bind("c1", "carol"), ["a1"]);
        assert_eq!(owners.len(), 2);
        // Binding an id again moves it, it does not count twice.
        assert!(owners.bind("b1", "bob").is_empty());
        assert_eq!(owners.bind("d1", "dave"), ["c1"]);
        assert!(owners.is_owner("b1", "bob"));
    }
}
