//! The agent's disk quota: what each tenant keeps on disk (its workspaces,
//! `APPROVED_DIRECTORY/<tenant>`, and its CLI state, `DATA_DIR/cli-config/<tenant>`)
//! against `AGENT_DISK_MAX_MB` or the tenant's own `disk_max_mb`.
//!
//! There is no kernel quota to lean on (the workspaces may live on any
//! filesystem), so the meter measures: `walk` counts the trees, and this
//! module keeps each tenant's last measurement, walks one tenant's trees at
//! most once at a time, and spaces the walks by their own cost. Session
//! actors measure while their CLI runs (`actors/session/disk_watch.rs`);
//! turns, uploads and `/usage` ask it before they act.

pub mod walk;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::db::DbPool;
use walk::{Measured, Root, Unmeasurable};

/// How long a tenant's quota read from the database is used (a change
/// through the admin API is applied at once, see `DiskMeter::forget_quota`).
const QUOTA_TTL: Duration = Duration::from_secs(5);
/// A tenant's trees are walked again only after this many times the last
/// walk took, so measuring costs at most a fifth of one core per tenant.
const WALK_SPACING: u32 = 4;

/// What a tenant keeps on disk, against its quota.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct DiskStatus {
    /// Allocated bytes in the tenant's workspaces and CLI state (each file
    /// once, holes not counted).
    pub used_bytes: u64,
    /// The quota: `AGENT_DISK_MAX_MB`, or the tenant's `disk_max_mb`.
    pub limit_bytes: u64,
    /// Files and folders counted.
    pub entries: u64,
    /// Set when the trees could not be measured whole (too many entries, too
    /// deep): the tenant then counts as over its quota.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unmeasurable: Option<String>,
}

impl DiskStatus {
    /// Whether the quota is reached: nothing more may be written.
    pub fn is_over(&self) -> bool {
        self.unmeasurable.is_some() || self.used_bytes >= self.limit_bytes
    }

    /// What a client is told when the quota stops it.
    pub fn explain(&self) -> String {
        match &self.unmeasurable {
            Some(why) => {
                format!("the tenant's files cannot be measured ({why}); delete some to go on")
            }
            None => format!(
                "the tenant's disk quota is used up: {} MiB kept of {} MiB; delete files to go on",
                self.used_bytes.div_ceil(MIB),
                self.limit_bytes / MIB
            ),
        }
    }
}

impl DiskStatus {
    /// The error a turn ends (or is refused) with.
    pub fn turn_error(&self) -> crate::domain::turn::TurnError {
        crate::domain::turn::TurnError::DiskQuota {
            message: self.explain(),
            used_bytes: self.used_bytes,
            limit_bytes: self.limit_bytes,
        }
    }

    /// `Err` (507 `disk-quota-exceeded`) when the quota is reached.
    pub fn check(&self) -> Result<(), crate::error::ServiceError> {
        if self.is_over() {
            Err(crate::error::ServiceError::from(self.turn_error()))
        } else {
            Ok(())
        }
    }
}

const MIB: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("cannot read the tenant's disk quota: {0}")]
    Db(#[from] crate::db::DbError),
    #[error("the measurement stopped: {0}")]
    Panicked(#[from] crate::blocking::Panicked),
}

impl From<DiskError> for crate::error::ServiceError {
    fn from(e: DiskError) -> Self {
        crate::error::ServiceError::internal(e)
    }
}

/// Each tenant's last measurement; shared by the actors and the services.
#[derive(Debug)]
pub struct DiskMeter {
    /// `APPROVED_DIRECTORY`: `<tenant>` in it is the tenant's area.
    workspaces: PathBuf,
    /// `DATA_DIR/cli-config`: `<tenant>` in it is the tenant's CLI state.
    cli_config: PathBuf,
    default_limit_bytes: u64,
    pool: DbPool,
    tenants: Mutex<HashMap<String, Arc<tokio::sync::Mutex<TenantDisk>>>>,
}

#[derive(Debug, Default)]
struct TenantDisk {
    last: Option<(Instant, Result<Measured, Unmeasurable>)>,
    walk_time: Duration,
    /// When it was read, and the quota (`None`: no such tenant).
    quota: Option<(Instant, Option<u64>)>,
}

impl DiskMeter {
    pub fn new(
        settings: &crate::config::DiskSettings,
        data_dir: &std::path::Path,
        workspaces: PathBuf,
        pool: DbPool,
    ) -> DiskMeter {
        DiskMeter {
            workspaces,
            cli_config: data_dir.join("cli-config"),
            default_limit_bytes: settings.max_mb.saturating_mul(MIB),
            pool,
            tenants: Mutex::default(),
        }
    }

    /// The quota every tenant without its own has, in bytes.
    pub fn default_limit_bytes(&self) -> u64 {
        self.default_limit_bytes
    }

    fn entry(&self, tenant: &str) -> Arc<tokio::sync::Mutex<TenantDisk>> {
        let mut tenants = self
            .tenants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tenants.entry(tenant.to_owned()).or_default().clone()
    }

    /// The tenant's usage, measured at most `max_age` ago (or as fresh as
    /// the spacing of walks allows). Callers asking at once share one walk.
    /// A name that is no tenant's (an admin may ask about any) holds
    /// nothing, is not measured and has no metrics.
    pub async fn status(&self, tenant: &str, max_age: Duration) -> Result<DiskStatus, DiskError> {
        let nothing = DiskStatus {
            used_bytes: 0,
            limit_bytes: self.default_limit_bytes,
            entries: 0,
            unmeasurable: None,
        };
        // Tenant names are single folder names: nothing else is walked.
        if !crate::security::keys::is_tenant_name(tenant) {
            return Ok(nothing);
        }
        let entry = self.entry(tenant);
        let mut state = entry.lock().await;
        let limit = match state.quota {
            Some((read, limit)) if read.elapsed() < QUOTA_TTL => limit,
            _ => {
                let id = tenant.to_owned();
                let own = crate::db::run(&self.pool, move |c| {
                    crate::db::models::tenant::disk_max_mb(c, &id)
                })
                .await?;
                let limit = own.map(|own| {
                    own.map_or(self.default_limit_bytes, |mb| {
                        u64::try_from(mb).unwrap_or(0).saturating_mul(MIB)
                    })
                });
                state.quota = Some((Instant::now(), limit));
                limit
            }
        };
        let Some(limit_bytes) = limit else {
            return Ok(nothing);
        };
        let due = match &state.last {
            None => true,
            Some((at, _)) => {
                let age = at.elapsed();
                age >= max_age && age >= state.walk_time * WALK_SPACING
            }
        };
        if due {
            let (workspaces, cli_config, name) = (
                self.workspaces.clone(),
                self.cli_config.clone(),
                tenant.to_owned(),
            );
            let started = Instant::now();
            let measured = crate::blocking::run(move || {
                walk::measure(&[
                    Root {
                        parent: &workspaces,
                        name: &name,
                    },
                    Root {
                        parent: &cli_config,
                        name: &name,
                    },
                ])
            })
            .await?;
            state.walk_time = started.elapsed();
            state.last = Some((Instant::now(), measured));
        }
        let measured = state.last.as_ref().map_or(Ok(Measured::default()), |l| l.1);
        let status = DiskStatus {
            used_bytes: measured.map_or(0, |m| m.bytes),
            entries: measured.map_or(walk::MAX_ENTRIES, |m| m.entries),
            limit_bytes,
            unmeasurable: measured.err().map(|e| e.to_string()),
        };
        crate::metrics::disk_measured(tenant, status.used_bytes, status.limit_bytes);
        Ok(status)
    }

    /// The usage to decide a write on (a turn, an upload): a measurement up
    /// to a second old when it is under the quota; measured again when it is
    /// not, so files deleted a moment ago count.
    pub async fn status_for_write(&self, tenant: &str) -> Result<DiskStatus, DiskError> {
        let status = self.status(tenant, Duration::from_secs(1)).await?;
        if status.is_over() {
            return self.status(tenant, Duration::ZERO).await;
        }
        Ok(status)
    }

    /// Files of the tenant were written or deleted through the API: the
    /// next status measures again.
    pub async fn forget_usage(&self, tenant: &str) {
        self.entry(tenant).lock().await.last = None;
    }

    /// The tenant's quota changed: the next status reads it again.
    pub async fn forget_quota(&self, tenant: &str) {
        self.entry(tenant).lock().await.quota = None;
    }
}
