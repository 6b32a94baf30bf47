//! Idempotency keys of requests that start work: scoped to the tenant, kept
//! 24 hours. A repeat with the same key and fingerprint gets the stored
//! answer without running again; another fingerprint is a validation error;
//! a repeat while the first still runs is a conflict. Only successful
//! answers are stored: after a failure the key is released.

use super::{Requester, Services};
use crate::db::models::idempotency::{self, Claim};
use crate::db::{self, DbPool};
use crate::error::ServiceError;

/// How long a key and its answer are kept.
pub const KEEP_HOURS: i64 = 24;

/// What claiming a key found.
pub enum Claimed {
    /// The first request with this key: run it, then `finish` or `release`.
    Fresh(Held),
    /// A repeat of a finished request: its stored answer.
    Replay { status: u16, body: String },
}

/// A claimed key; `finish` stores the answer, `release` forgets the claim.
pub struct Held {
    pool: DbPool,
    tenant_id: String,
    key: String,
}

/// Claims `key` of the requester's tenant for the request `fingerprint`
/// stands for (method, path and body).
pub async fn claim(
    services: &Services,
    who: &Requester,
    key: String,
    fingerprint: String,
) -> Result<Claimed, ServiceError> {
    let tenant_id = who.tenant().0.clone();
    let (t, k) = (tenant_id.clone(), key.clone());
    let owner = services.instance.id.clone();
    let expired_before = db::now() - chrono::Duration::hours(KEEP_HOURS);
    let claim = db::run(&services.pool, move |c| {
        idempotency::claim(c, &t, &k, &fingerprint, expired_before, &owner)
    })
    .await;
    let claim = match claim {
        Ok(claim) => claim,
        // Two first requests raced on the insert: the loser is a repeat in progress.
        Err(e) if e.is_unique_violation() => Claim::InProgress,
        Err(e) => return Err(e.into()),
    };
    match claim {
        Claim::Fresh => Ok(Claimed::Fresh(Held {
            pool: services.pool.clone(),
            tenant_id,
            key,
        })),
        Claim::Replay { status, body } => Ok(Claimed::Replay {
            status: u16::try_from(status).unwrap_or(200),
            body,
        }),
        Claim::InProgress => Err(ServiceError::Conflict(
            "a request with this Idempotency-Key is still being processed".into(),
        )),
        Claim::Mismatch => Err(ServiceError::Validation(
            "this Idempotency-Key was used with a different request".into(),
        )),
    }
}

impl Held {
    /// Stores the answer a repeat will get.
    pub async fn finish(self, status: u16, body: &str) {
        let body = body.to_owned();
        let status = i32::from(status);
        let result = db::run(&self.pool, move |c| {
            idempotency::finish(c, &self.tenant_id, &self.key, status, &body)
        })
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot store an idempotent response");
        }
    }

    /// Forgets the claim: the request failed and may be tried again.
    pub async fn release(self) {
        let result = db::run(&self.pool, move |c| {
            idempotency::release(c, &self.tenant_id, &self.key)
        })
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot release an idempotency key");
        }
    }
}
