//! The actors: one `SessionActor` per live session (its CLI process and its
//! FIFO of turns) and the `Supervisor` (registry, live-process cap, idling).

pub mod session;
pub mod supervisor;
pub mod webhooks;

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::Settings;
use crate::db::DbPool;

/// What every actor needs from the server, shared read-only.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub settings: Arc<Settings>,
    pub pool: DbPool,
    pub cli_path: PathBuf,
    /// Hands each CLI process its model token.
    pub gateway: crate::gateway::ModelGateway,
    /// Confines each CLI process.
    pub sandbox: Arc<crate::sandbox::Sandbox>,
    /// What each tenant keeps on disk, against its quota.
    pub disk: Arc<crate::disk::DiskMeter>,
    /// This server's instance: what its turns hold is released if it dies.
    pub instance: crate::db::models::instance::Instance,
    /// Told when a job's webhook was queued, so it goes out at once.
    pub webhooks: Option<actix::Recipient<webhooks::Wake>>,
    /// This server as a node of a cluster (or alone).
    pub node: crate::cluster::Node,
    /// CLI processes started by this server (for health and tests).
    pub spawns: Arc<std::sync::atomic::AtomicU64>,
}

impl Runtime {
    /// Counts a started CLI process.
    pub fn note_spawn(&self) {
        self.spawns
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Per-tenant CLI state: transcripts and settings never mix across tenants.
    pub fn cli_config_dir(&self, tenant_id: &str) -> PathBuf {
        self.settings
            .storage
            .data_dir
            .join("cli-config")
            .join(tenant_id)
    }

    /// The tenant's CLI state folder, opened (made when missing). The
    /// agent writes inside it but cannot move the folder itself.
    pub fn cli_config_tree(&self, tenant_id: &str) -> std::io::Result<crate::sandbox::Tree> {
        crate::sandbox::Tree::open_or_create(&self.cli_config_dir(tenant_id))
    }

    /// A session's working folder, opened from the tenant's area down one
    /// folder at a time without following a link: a folder the agent
    /// swapped for a link is refused, never followed.
    pub fn workspace_tree(
        &self,
        tenant_id: &str,
        workspace: &std::path::Path,
    ) -> std::io::Result<crate::sandbox::Tree> {
        let area = self.settings.storage.approved_directory.join(tenant_id);
        let rel = crate::sandbox::tree::relative_beneath(&area, workspace).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "{} is not a folder of the tenant's area",
                    workspace.display()
                ),
            )
        })?;
        crate::sandbox::Tree::open(&area)?.subtree(&rel, None)
    }

    /// Where pid files of live CLI processes are kept.
    pub fn pid_dir(&self) -> PathBuf {
        self.settings.storage.data_dir.join("run")
    }
}
