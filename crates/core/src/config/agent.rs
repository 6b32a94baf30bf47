//! `settings.sandbox`, `settings.network` and `settings.disk`: how each
//! agent (CLI process) is confined. The first two are the sandbox module's
//! own types, read here.

use std::time::Duration;

use super::parse::Env;
use super::ConfigError;
use crate::sandbox::network::{NetworkMode, NetworkSettings};
use crate::sandbox::{Limits, Mode, SandboxSettings};

pub(super) fn sandbox(env: &Env) -> Result<SandboxSettings, ConfigError> {
    Ok(SandboxSettings {
        mode: env.parse::<Mode>("AGENT_SANDBOX")?,
        agent_uid: env.bounded("AGENT_UID", 1, u32::MAX - 1)?,
        agent_gid: env.bounded("AGENT_GID", 1, u32::MAX - 1)?,
        agent_uid_count: env.bounded("AGENT_UID_COUNT", 1, 1 << 24)?,
        seccomp: env.parse("AGENT_SECCOMP")?,
        tmp_max_mb: env.bounded("AGENT_TMP_MAX_MB", 1, 1 << 20)?,
        limits: Limits {
            memory_max_mb: env.bounded("AGENT_MEMORY_MAX_MB", 64, 1 << 20)?,
            pids_max: env.bounded("AGENT_PIDS_MAX", 16, 1 << 22)?,
            cpu_max: env.bounded_opt("AGENT_CPU_MAX", 0.05, 1024.0)?,
        },
    })
}

pub(super) fn network(env: &Env) -> Result<NetworkSettings, ConfigError> {
    Ok(NetworkSettings {
        mode: env.parse::<NetworkMode>("AGENT_NETWORK")?,
        relay_program: None,
        egress: crate::egress::EgressSettings {
            private_hosts: env.list("AGENT_EGRESS_PRIVATE_HOSTS"),
            max_connections: env.bounded("AGENT_EGRESS_MAX_CONNECTIONS", 1, 4096)?,
            idle_timeout: Duration::from_secs(env.bounded(
                "AGENT_EGRESS_IDLE_TIMEOUT_SECONDS",
                1,
                86_400,
            )?),
        },
    })
}

/// What a tenant's agents may keep on disk.
#[derive(Debug, Clone)]
pub struct DiskSettings {
    /// `AGENT_DISK_MAX_MB`: a tenant's workspaces and CLI state, MiB, unless
    /// the tenant has its own.
    pub max_mb: u64,
}

impl DiskSettings {
    pub(super) fn read(env: &Env) -> Result<DiskSettings, ConfigError> {
        Ok(DiskSettings {
            max_mb: env.bounded("AGENT_DISK_MAX_MB", 1, 1 << 30)?,
        })
    }
}
