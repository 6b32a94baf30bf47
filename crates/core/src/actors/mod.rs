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
    /// Runs a job's git step (set once the services exist: they run it).
    pub job_git: Arc<std::sync::OnceLock<Arc<dyn JobGitRunner>>>,
    /// Sends a relayed MCP server's messages on (set with the services:
    /// they hold the tenant's secrets).
    pub mcp_relay: Arc<std::sync::OnceLock<Arc<dyn McpRelay>>>,
    /// What runs now, published by the supervisor for reads.
    pub running_turns: Arc<supervisor::running_turns::RunningTurns>,
    /// The sessions whose lease this node holds, published for requests.
    pub held_leases: Arc<supervisor::held_leases::HeldLeases>,
}

/// Sends one JSON-RPC message of a session's CLI to a remote MCP server
/// (`domain::mcp`), with the server's headers, and brings back its answer.
pub trait McpRelay: Send + Sync + std::fmt::Debug {
    fn send(
        &self,
        tenant_id: String,
        server: serde_json::Value,
        message: serde_json::Value,
        mcp_session: Option<String>,
    ) -> futures_util::future::LocalBoxFuture<'static, McpRelayed>;

    /// Ends an MCP session of a CLI process that is gone (its event stream
    /// closed, or the server told).
    fn close(&self, tenant_id: String, server: serde_json::Value, mcp_session: String);
}

/// A relayed message's answer (`Err`: why there is none), and the MCP
/// session id the remote server gave, to send with later messages.
#[derive(Debug, Clone)]
pub struct McpRelayed {
    pub response: Result<serde_json::Value, String>,
    pub mcp_session: Option<String>,
}

/// Runs the git step of a job whose turn ended well: commit, push, pull
/// request in the session's worktree. The session's queue waits for it.
pub trait JobGitRunner: Send + Sync + std::fmt::Debug {
    fn run(
        &self,
        tenant_id: String,
        session_name: String,
        job_message: String,
        options: crate::domain::job_git::JobGit,
    ) -> futures_util::future::LocalBoxFuture<'static, JobGitOutcome>;
}

/// What a job's git step did: its `git` object, why it failed (the job then
/// fails), and the events it makes (`git_commit`, `git_push`,
/// `pull_request_opened`), published with the turn's.
#[derive(Debug, Clone)]
pub struct JobGitOutcome {
    pub git: serde_json::Value,
    pub failure: Option<String>,
    pub events: Vec<crate::domain::event::StreamEvent>,
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
        crate::workspace::open_tree(
            &self.settings.storage.approved_directory,
            tenant_id,
            workspace,
        )
    }

    /// Where pid files of live CLI processes are kept.
    pub fn pid_dir(&self) -> PathBuf {
        self.settings.storage.data_dir.join("run")
    }
}
