//! The rules of the server, in one place: what it takes to start a turn,
//! create or delete a session, queue or cancel a job, answer an approval or
//! reach a workspace. The REST handlers, the OpenAI surface, MCP and the
//! console all call these; none of them talks to the actors or applies a
//! check on its own.
//!
//! Every function is scoped by the `Requester` it is given: another
//! tenant's object is `ServiceError::NotFound`, exactly as if it did not exist.

pub mod admin;
pub mod approvals;
pub mod attachments;
pub mod audit;
pub mod console_oidc;
pub mod console_sessions;
pub mod events;
pub mod files;
pub mod forks;
pub mod git;
pub mod idempotency;
pub mod jobs;
pub mod launch;
pub mod mcp_relay;
pub mod mcp_servers;
pub mod members;
pub mod named_session;
pub mod nodes;
pub mod overview;
pub mod ownership;
pub mod personal_keys;
pub mod pipelines;
pub mod policy;
pub mod repos;
pub mod schedules;
pub mod secrets;
pub mod sessions;
pub mod tenant_defaults;
pub mod trust_rules;
pub mod turns;
pub mod usage;
pub mod webhooks;

use std::path::PathBuf;
use std::sync::Arc;

use actix::Addr;

use crate::actors::supervisor::Supervisor;
use crate::config::Settings;
use crate::db::DbPool;
use crate::security::auth::Caller;

/// What the services need of the running server; cheap to clone.
#[derive(Clone)]
pub struct Services {
    pub settings: Arc<Settings>,
    pub pool: DbPool,
    pub supervisor: Addr<Supervisor>,
    /// Which sessions run a turn now (the supervisor's, read without asking it).
    pub running_turns: Arc<crate::actors::supervisor::running_turns::RunningTurns>,
    /// Which sessions this node holds the lease of (cluster only).
    pub held_leases: Arc<crate::actors::supervisor::held_leases::HeldLeases>,
    /// `APPROVED_DIRECTORY`, absolute.
    pub workspace_root: PathBuf,
    /// The webhook dispatcher, to send what was just queued.
    pub webhooks: actix::Recipient<crate::actors::webhooks::Wake>,
    /// The agent's confinement (who owns uploaded files).
    pub sandbox: Arc<crate::sandbox::Sandbox>,
    /// What each tenant keeps on disk, against its quota.
    pub disk: Arc<crate::disk::DiskMeter>,
    /// This server as a node of a cluster (or alone): where sessions run.
    pub node: crate::cluster::Node,
    /// This server's instance, which owns the idempotency claims it runs.
    pub instance: crate::db::models::instance::Instance,
    /// Agent templates, reloadable.
    pub templates: Arc<crate::templates::Templates>,
    /// Folders a session delete left for the sweeper.
    pub leftovers: Arc<crate::leftovers::Leftovers>,
    /// Resolved API keys, in memory.
    pub identities: Arc<crate::security::identities::Identities>,
    /// Repository credentials' key, the git mirrors, the providers' client.
    pub git: Arc<crate::git::kit::GitKit>,
}

/// Who asks, and from where: the key's tenant and role scope every call;
/// the address and request id go into the audit log.
#[derive(Debug, Clone)]
pub struct Requester {
    pub caller: Caller,
    pub client_addr: Option<String>,
    pub request_id: String,
}

impl Requester {
    pub fn tenant(&self) -> &crate::db::models::TenantId {
        &self.caller.tenant
    }
}

/// A requester is its caller, with where the request came from.
impl std::ops::Deref for Requester {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.caller
    }
}
