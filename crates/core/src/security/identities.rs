//! Resolved identities in memory: a presented key's hash → what it resolves
//! to (tenant, key, role, the tenant's rate limit), or that it resolves to
//! nothing. An authenticated request then costs no database trip. Every
//! change to keys or tenants through this server drops the whole cache at
//! once, here and (through PostgreSQL's notifications) on every other node;
//! an entry older than `AUTH_CACHE_SECONDS` is read again in any case, which
//! bounds how stale it can be when a change came another way (the `keys`
//! command on SQLite).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use super::auth::{lookup, Resolved};
use super::keys::hash_key;
use crate::config::Settings;
use crate::db::DbPool;
use crate::error::ServiceError;

/// Most keys remembered; past it the cache starts over (unknown keys are
/// remembered too, and a client controls how many it tries).
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug)]
struct Entry {
    resolved: Option<Resolved>,
    at: Instant,
}

#[derive(Debug)]
pub struct Identities {
    entries: RwLock<HashMap<String, Entry>>,
    ttl: Duration,
    /// Bumped by every invalidation: a lookup that began before one is not
    /// remembered (it may have read what the change replaced).
    epoch: AtomicU64,
}

impl Identities {
    /// `ttl` zero: nothing is remembered, every request reads the database.
    pub fn new(ttl: Duration) -> Identities {
        Identities {
            entries: RwLock::new(HashMap::new()),
            ttl,
            epoch: AtomicU64::new(0),
        }
    }

    /// What `key` resolves to: from memory when known and fresh, else from
    /// the database (one query), remembered.
    pub async fn resolve(
        &self,
        pool: &DbPool,
        settings: &Settings,
        key: &str,
    ) -> Result<Option<Resolved>, ServiceError> {
        let started = Instant::now();
        let hash = hash_key(key);
        if let Some(hit) = self.fresh(&hash) {
            crate::metrics::authenticated(started.elapsed());
            return Ok(hit);
        }
        let epoch = self.epoch.load(Ordering::SeqCst);
        // The database trip of a key not in memory, as a span of its own.
        let resolved = tracing::Instrument::instrument(
            lookup(pool, settings, hash.clone()),
            tracing::debug_span!("auth_lookup"),
        )
        .await?;
        self.remember(hash, resolved.clone(), epoch);
        crate::metrics::authenticated(started.elapsed());
        Ok(resolved)
    }

    fn fresh(&self, hash: &str) -> Option<Option<Resolved>> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .get(hash)
            .filter(|entry| entry.at.elapsed() < self.ttl)
            .map(|entry| entry.resolved.clone())
    }

    fn remember(&self, hash: String, resolved: Option<Resolved>, epoch: u64) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        // Checked under the lock that `forget_all` takes to bump it.
        if self.epoch.load(Ordering::SeqCst) != epoch {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(
            hash,
            Entry {
                resolved,
                at: Instant::now(),
            },
        );
    }

    /// Forgets everything: a key, a role or a tenant's limits changed.
    pub fn forget_all(&self) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        self.epoch.fetch_add(1, Ordering::SeqCst);
        entries.clear();
    }

    /// A change was just committed: forgotten here at once, and on every
    /// other node on the same PostgreSQL database when its listener hears
    /// the notification.
    pub async fn changed(&self, pool: &DbPool) {
        self.forget_all();
        if let Err(e) = crate::db::run(pool, crate::db::notify::notify_identity_change).await {
            tracing::warn!(error = %e, "other nodes keep their cached identities until they expire");
        }
    }
}
