//! A tenant's MCP servers on a session or a job: checked when given, and
//! shown as the session's CLI sees them.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::{Requester, Services};
use crate::actors::session::mcp::GetMcp;
use crate::db::models::TenantId;
use crate::domain::mcp;
use crate::error::ServiceError;

/// Checks servers a tenant gives: their form, that the secrets they name
/// exist, and that remote ones are on a host the server may reach.
pub async fn check(
    services: &Services,
    tenant: &TenantId,
    servers: &BTreeMap<String, Value>,
) -> Result<(), ServiceError> {
    mcp::validate(servers).map_err(ServiceError::Validation)?;
    for name in mcp::secret_names(servers) {
        if !super::secrets::exists(services, tenant, &name).await? {
            return Err(ServiceError::Validation(format!(
                "mcp_servers: the secret {name:?} does not exist (PUT /api/v1/secrets/{name})"
            )));
        }
    }
    for (name, entry) in servers.iter().filter(|(_, e)| mcp::is_relayed(e)) {
        let url = entry.get("url").and_then(Value::as_str).unwrap_or_default();
        super::mcp_relay::check_target(services, tenant, url)
            .await
            .map_err(|e| ServiceError::Validation(format!("mcp_servers.{name}.url: {e}")))?;
    }
    Ok(())
}

/// One MCP server of a session, as its CLI last reported it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct McpServerStatus {
    pub name: String,
    /// `http` or `sse` (reached through the server), or `stdio` (in the sandbox).
    #[serde(rename = "type")]
    pub kind: String,
    /// The CLI's word (`connected`, `failed`, `pending`, …), or
    /// `not_started` before the session's CLI has run a turn.
    pub status: String,
    /// Its tools, as the model is offered them (`mcp__NAME__tool`).
    pub tools: Vec<String>,
}

/// The session's MCP servers, each with its status and tools.
pub async fn status(
    services: &Services,
    who: &Requester,
    name: &str,
) -> Result<Vec<McpServerStatus>, ServiceError> {
    let session = super::named_session::load(services, who, name).await?;
    let spec: crate::domain::session::SessionSpec =
        serde_json::from_str(&session.spec).unwrap_or_default();
    let actor = super::ownership::actor(services, &session).await?;
    let seen = actor.send(GetMcp).await?;
    Ok(spec
        .mcp_servers
        .unwrap_or_default()
        .into_iter()
        .map(|(server, entry)| {
            let kind = match mcp::transport(&entry) {
                Some(mcp::Transport::Http) => "http",
                Some(mcp::Transport::Sse) => "sse",
                _ => "stdio",
            };
            let status = seen
                .as_ref()
                .and_then(|s| {
                    s.servers
                        .iter()
                        .find(|v| v["name"].as_str() == Some(server.as_str()))
                })
                .and_then(|v| v["status"].as_str())
                .unwrap_or("not_started")
                .to_owned();
            let prefix = format!("mcp__{server}__");
            let tools = seen
                .iter()
                .flat_map(|s| s.tools.iter())
                .filter(|t| t.starts_with(&prefix))
                .cloned()
                .collect();
            McpServerStatus {
                name: server,
                kind: kind.to_owned(),
                status,
                tools,
            }
        })
        .collect())
}
