//! `settings.approvals`, `settings.files` and `settings.tenancy`.

use std::time::Duration;

use super::parse::Env;
use super::ConfigError;

#[derive(Debug, Clone)]
pub struct ApprovalSettings {
    /// `APPROVAL_TIMEOUT_SECONDS`: a tool approval not answered in this time is denied.
    pub timeout: Duration,
    /// `APPROVAL_HOLD_SECONDS`: how long a sync chat waiting on an approval holds
    /// the request before answering 202 with the approval's URL.
    pub hold: Duration,
}

impl ApprovalSettings {
    pub(super) fn read(env: &Env) -> Result<ApprovalSettings, ConfigError> {
        Ok(ApprovalSettings {
            timeout: env.seconds("APPROVAL_TIMEOUT_SECONDS", 1, 86_400)?,
            hold: env.seconds("APPROVAL_HOLD_SECONDS", 0, 3600)?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct FileSettings {
    /// `MAX_UPLOAD_MB`: largest file upload, in bytes.
    pub max_upload_bytes: u64,
    /// `MAX_ATTACHMENTS_MB`: the images and documents of one message
    /// together, in bytes (decoded).
    pub max_attachment_bytes: usize,
    /// `ARCHIVE_STALL_SECONDS`: an archive download whose client takes no data
    /// for this long is abandoned, freeing the thread that writes it.
    pub archive_stall: Duration,
    /// `LEFTOVER_SWEEP_SECONDS`: how often folders a session delete left
    /// behind are tried again.
    pub leftover_sweep: Duration,
    /// The workspace snapshots taken after each turn, for forks (`SNAPSHOT_*`).
    pub snapshots: SnapshotSettings,
}

#[derive(Debug, Clone)]
pub struct SnapshotSettings {
    /// `SNAPSHOT_KEEP_TURNS`: the snapshots of a session's last this many
    /// turns are kept (0: none taken, no fork).
    pub keep_turns: u32,
    /// `SNAPSHOT_MAX_MB`: a workspace larger than this (its regular files,
    /// in bytes) gets no snapshot.
    pub max_bytes: u64,
    /// `SNAPSHOT_MAX_FILES`: a workspace with more files and folders than
    /// this gets no snapshot.
    pub max_files: u64,
}

impl FileSettings {
    pub(super) fn read(env: &Env) -> Result<FileSettings, ConfigError> {
        Ok(FileSettings {
            max_upload_bytes: env.bounded("MAX_UPLOAD_MB", 1u64, 1024 * 1024)? * 1024 * 1024,
            max_attachment_bytes: env.bounded("MAX_ATTACHMENTS_MB", 1usize, 256)? * 1024 * 1024,
            archive_stall: env.seconds("ARCHIVE_STALL_SECONDS", 1, 86_400)?,
            leftover_sweep: env.seconds("LEFTOVER_SWEEP_SECONDS", 1, 86_400)?,
            snapshots: SnapshotSettings {
                keep_turns: env.bounded("SNAPSHOT_KEEP_TURNS", 0u32, 10_000)?,
                max_bytes: env.bounded("SNAPSHOT_MAX_MB", 1u64, 1024 * 1024)? * 1024 * 1024,
                max_files: env.bounded("SNAPSHOT_MAX_FILES", 1u64, 10_000_000)?,
            },
        })
    }
}

#[derive(Debug, Clone)]
pub struct TenancySettings {
    /// `CLAUDE_MAX_COST_PER_USER`: budget (micro-USD) of tenants made from `API_KEYS`; unset = none.
    pub max_cost_per_user_micros: Option<i64>,
    /// `CLAUDE_MAX_COST_PER_REQUEST`: cap (micro-USD) of one turn, passed as `--max-budget-usd`.
    pub max_cost_per_request_micros: Option<i64>,
    /// `BUDGET_RESERVATION_USD`: held per running turn of a budgeted tenant
    /// when no per-request cap is set, micro-USD.
    pub budget_reservation_micros: i64,
    /// `MAX_SESSIONS_PER_TENANT`: default cap on a tenant's sessions.
    pub max_sessions: i64,
    /// `MAX_RUNNING_TURNS_PER_TENANT`: default cap on a tenant's concurrently running turns.
    pub max_running_turns: i64,
}

impl TenancySettings {
    pub(super) fn read(env: &Env) -> Result<TenancySettings, ConfigError> {
        Ok(TenancySettings {
            max_cost_per_user_micros: env.usd_micros("CLAUDE_MAX_COST_PER_USER")?,
            max_cost_per_request_micros: env.usd_micros("CLAUDE_MAX_COST_PER_REQUEST")?,
            budget_reservation_micros: env.usd_micros("BUDGET_RESERVATION_USD")?.unwrap_or_else(
                || panic!("BUDGET_RESERVATION_USD has no default in config/table.rs"),
            ),
            max_sessions: env.bounded("MAX_SESSIONS_PER_TENANT", 1, 1_000_000)?,
            max_running_turns: env.bounded("MAX_RUNNING_TURNS_PER_TENANT", 1, 10_000)?,
        })
    }
}
