//! Which sessions this node holds the live lease of, as the supervisor last
//! took, renewed or gave them back. A request under a session held here
//! needs no database trip to learn where to run: it runs here.
//!
//! A holding counts only until the lease could have run out since it was
//! last taken or renewed (less a heartbeat, for the clocks): past that, the
//! database is asked, as for any session held elsewhere.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Instant;

#[derive(Debug, Default)]
pub struct HeldLeases(RwLock<Books>);

#[derive(Debug, Default)]
struct Books {
    /// `(tenant, name)` → (session id, held until).
    by_name: HashMap<(String, String), (String, Instant)>,
    /// Session id → `(tenant, name)`.
    names: HashMap<String, (String, String)>,
}

impl HeldLeases {
    /// Whether the tenant's session `name` is held here now.
    pub fn holds(&self, tenant_id: &str, name: &str) -> bool {
        let books = self.0.read().unwrap_or_else(|e| e.into_inner());
        books
            .by_name
            .get(&(tenant_id.to_owned(), name.to_owned()))
            .is_some_and(|(_, until)| *until > Instant::now())
    }

    /// A lease taken for the session, good `until`.
    pub(super) fn took(&self, session_id: &str, tenant_id: &str, name: &str, until: Instant) {
        let mut books = self.0.write().unwrap_or_else(|e| e.into_inner());
        let key = (tenant_id.to_owned(), name.to_owned());
        books
            .by_name
            .insert(key.clone(), (session_id.to_owned(), until));
        books.names.insert(session_id.to_owned(), key);
    }

    /// The leases of `session_ids` renewed, good `until`.
    pub(super) fn renewed<'a>(
        &self,
        session_ids: impl IntoIterator<Item = &'a String>,
        until: Instant,
    ) {
        let mut books = self.0.write().unwrap_or_else(|e| e.into_inner());
        for id in session_ids {
            if let Some(key) = books.names.get(id).cloned() {
                if let Some(held) = books.by_name.get_mut(&key) {
                    held.1 = until;
                }
            }
        }
    }

    /// The session's lease given back or lost.
    pub(super) fn let_go(&self, session_id: &str) {
        let mut books = self.0.write().unwrap_or_else(|e| e.into_inner());
        if let Some(key) = books.names.remove(session_id) {
            // A newer holding of the same name (another session) stays.
            if books
                .by_name
                .get(&key)
                .is_some_and(|(id, _)| id == session_id)
            {
                books.by_name.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_holding_counts_until_it_could_have_run_out_or_is_let_go() {
        let held = HeldLeases::default();
        let soon = Instant::now() + Duration::from_secs(60);
        held.took("s1", "alice", "a", soon);
        assert!(held.holds("alice", "a"));
        assert!(!held.holds("bob", "a"));
        held.renewed(&["s1".to_owned()], Instant::now());
        assert!(
            !held.holds("alice", "a"),
            "past its time it is the database's word"
        );
        held.renewed(&["s1".to_owned()], soon);
        assert!(held.holds("alice", "a"));
        // The name taken again by a new session: letting the old one go
        // keeps the new holding.
        held.took("s2", "alice", "a", soon);
        held.let_go("s1");
        assert!(held.holds("alice", "a"));
        held.let_go("s2");
        assert!(!held.holds("alice", "a"));
    }
}
