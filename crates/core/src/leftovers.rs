//! Folders a session delete could not remove at once. The delete still
//! finishes (the session is gone); its folder is recorded in the database
//! and a sweeper on every node tries again until it is gone too. `/health`
//! shows how many are waiting, from memory.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::db::models::leftover;
use crate::db::{self, DbPool};

/// Folders one sweep tries at most.
const SWEEP_BATCH: i64 = 100;

/// The count of leftover folders, as the last sweep or delete saw it.
#[derive(Debug, Default)]
pub struct Leftovers {
    count: AtomicI64,
}

impl Leftovers {
    pub fn count(&self) -> i64 {
        self.count.load(Ordering::Relaxed)
    }

    /// One more was just recorded.
    pub fn note_recorded(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Tries every recorded folder once more: removed ones are forgotten,
    /// the others wait for the next sweep. Returns how many are left.
    pub async fn sweep(&self, pool: &DbPool) -> db::DbResult<i64> {
        let due = db::run(pool, |c| leftover::due(c, SWEEP_BATCH)).await?;
        for row in due {
            let dir = PathBuf::from(&row.path);
            let removed = crate::blocking::run(move || crate::workspace::remove(&dir))
                .await
                .map_err(|e| db::DbError::Join(e.to_string()))?;
            let path = row.path.clone();
            match removed {
                Ok(()) => {
                    tracing::info!(path = %row.path, tenant = %row.tenant_id, "removed a leftover folder");
                    db::run(pool, move |c| leftover::forget(c, &path)).await?;
                }
                Err(e) => {
                    tracing::warn!(path = %row.path, tenant = %row.tenant_id, attempts = row.attempts + 1, error = %e, "a leftover folder still cannot be removed");
                    let tenant = row.tenant_id.clone();
                    let error = e.to_string();
                    db::run(pool, move |c| leftover::record(c, &path, &tenant, &error)).await?;
                }
            }
        }
        let left = db::run(pool, leftover::count).await?;
        self.count.store(left, Ordering::Relaxed);
        Ok(left)
    }

    /// Sweeps now and every `every` after, for the life of the server.
    pub fn spawn_sweeper(self: Arc<Self>, pool: DbPool, every: Duration) {
        actix::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = self.sweep(&pool).await {
                    tracing::warn!(error = %e, "cannot sweep leftover folders");
                }
            }
        });
    }
}
