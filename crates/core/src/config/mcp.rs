//! `settings.mcp`: the remote MCP servers sessions reach through the
//! server (`services::mcp_relay`).

use std::time::Duration;

use super::parse::Env;
use super::ConfigError;

#[derive(Debug, Clone)]
pub struct McpSettings {
    /// `MCP_ALLOWED_HOSTS`: hosts exempt from the refusal of internal and
    /// special-purpose addresses.
    pub allowed_hosts: Vec<String>,
    /// `MCP_TIMEOUT_SECONDS`: one relayed message's time limit.
    pub timeout: Duration,
}

impl McpSettings {
    pub(super) fn read(env: &Env) -> Result<McpSettings, ConfigError> {
        Ok(McpSettings {
            allowed_hosts: env.list("MCP_ALLOWED_HOSTS"),
            timeout: env.seconds("MCP_TIMEOUT_SECONDS", 1, 3600)?,
        })
    }
}
