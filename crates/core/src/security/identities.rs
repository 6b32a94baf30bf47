//! Resolved identities in memory: a presented key's hash → what it resolves
//! to (tenant, key, role, the tenant's rate limit), or that it resolves to
//! nothing. An authenticated request then costs no database trip. Every
//! change to keys or tenants through this server drops the whole cache at
//! once, here and (through PostgreSQL's notifications) on every other node;
//! an entry older than `AUTH_CACHE_SECONDS` is read again in any case, which
//! bounds how stale it can be when a change came another way (the `keys`
//! command on SQLite).
//!
//! Bearer tokens (JWTs of trusted issuers) are remembered the same way, by
//! their hash, once verified, and never past their `exp`; a refused token is
//! not remembered (its refusal says why, and a new trust rule may take it).
//! Deleting a trust rule is a change like a revoked key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use super::auth::{lookup, Resolved};
use super::keys::hash_key;
use super::tokens::{looks_like_jwt, BearerTokens};
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
    /// A token's entry is not used from then on (its `exp`).
    until: Option<Instant>,
}

#[derive(Debug)]
pub struct Identities {
    entries: RwLock<HashMap<String, Entry>>,
    ttl: Duration,
    /// Bumped by every invalidation: a lookup that began before one is not
    /// remembered (it may have read what the change replaced).
    epoch: AtomicU64,
    tokens: BearerTokens,
}

impl Identities {
    /// `ttl` zero: nothing is remembered, every request reads the database.
    /// Fails only when no HTTP client can be made (for issuers' keys).
    pub fn new(ttl: Duration) -> Result<Identities, reqwest::Error> {
        Ok(Identities {
            entries: RwLock::new(HashMap::new()),
            ttl,
            epoch: AtomicU64::new(0),
            tokens: BearerTokens::new()?,
        })
    }

    /// The issuers' key sets and discovery documents (shared by the bearer
    /// tokens and the console's sign-in).
    pub fn key_sets(&self) -> &super::jwks::KeySets {
        self.tokens.key_sets()
    }

    /// What a presented credential resolves to: a bearer token (JWT) of a
    /// trusted issuer, or else an API key. A refused token is
    /// `ServiceError::TokenRefused` with why; an unknown key is `None`.
    pub async fn resolve_credential(
        &self,
        pool: &DbPool,
        settings: &Settings,
        presented: &str,
    ) -> Result<Option<Resolved>, ServiceError> {
        if !looks_like_jwt(presented) {
            return self.resolve(pool, settings, presented).await;
        }
        let started = Instant::now();
        let hash = hash_key(presented);
        if let Some(hit) = self.fresh(&hash) {
            crate::metrics::authenticated(started.elapsed());
            return Ok(hit);
        }
        let epoch = self.epoch.load(Ordering::SeqCst);
        let identity = tracing::Instrument::instrument(
            self.tokens.resolve(pool, settings, presented),
            tracing::debug_span!("token_verification"),
        )
        .await?;
        let left = identity
            .expires_at
            .saturating_sub(jsonwebtoken::get_current_timestamp());
        let until = Instant::now() + Duration::from_secs(left);
        self.remember(hash, Some(identity.resolved.clone()), epoch, Some(until));
        crate::metrics::authenticated(started.elapsed());
        Ok(Some(identity.resolved))
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
        let found = tracing::Instrument::instrument(
            lookup(pool, settings, hash.clone()),
            tracing::debug_span!("auth_lookup"),
        )
        .await?;
        // A key that expires is not remembered past its expiry.
        let until = found.as_ref().and_then(|(_, expires_at)| {
            let left = (*expires_at)? - crate::db::now();
            Some(Instant::now() + left.to_std().unwrap_or_default())
        });
        let resolved = found.map(|(resolved, _)| resolved);
        self.remember(hash, resolved.clone(), epoch, until);
        crate::metrics::authenticated(started.elapsed());
        Ok(resolved)
    }

    fn fresh(&self, hash: &str) -> Option<Option<Resolved>> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .get(hash)
            .filter(|entry| entry.at.elapsed() < self.ttl)
            .filter(|entry| entry.until.is_none_or(|until| Instant::now() < until))
            .map(|entry| entry.resolved.clone())
    }

    fn remember(
        &self,
        hash: String,
        resolved: Option<Resolved>,
        epoch: u64,
        until: Option<Instant>,
    ) {
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
                until,
            },
        );
    }

    /// Forgets everything: a key, a trust rule, a role or a tenant's limits
    /// changed.
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
