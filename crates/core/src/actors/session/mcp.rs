//! The session's MCP servers as its CLI sees them: the relay of remote
//! servers' messages (`domain::mcp`), and each server's status and tools
//! from the CLI's last `init`.

use actix::{ActorFutureExt, AsyncContext, Context, Handler, WrapFuture};
use serde_json::{json, Value};

use super::SessionActor;
use crate::cli::protocol;

/// What the CLI last said of its MCP servers.
#[derive(Debug, Clone, Default)]
pub struct McpSeen {
    /// `[{name, status}]`.
    pub servers: Vec<Value>,
    /// `mcp__server__tool` names.
    pub tools: Vec<String>,
}

/// The MCP servers as the CLI last reported them; `None` before its first
/// `init` (no process has run a turn yet).
#[derive(actix::Message)]
#[rtype(result = "Option<McpSeen>")]
pub struct GetMcp;

impl Handler<GetMcp> for SessionActor {
    type Result = actix::MessageResult<GetMcp>;

    fn handle(&mut self, _: GetMcp, _: &mut Context<Self>) -> Self::Result {
        actix::MessageResult(self.mcp_seen.clone())
    }
}

impl SessionActor {
    pub(super) fn note_mcp(&mut self, servers: Vec<Value>, tools: Vec<String>) {
        self.mcp_seen = Some(McpSeen { servers, tools });
    }

    /// An `mcp_message` of the CLI for a relayed server: sent on by the
    /// relay, answered when the remote server answers (others may be on
    /// their way meanwhile).
    pub(super) fn on_mcp_message(
        &mut self,
        request_id: String,
        request: Value,
        ctx: &mut Context<Self>,
    ) {
        let Some(live) = self.process.live() else {
            return;
        };
        let name = request["server_name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let server = live
            .spec
            .mcp_servers
            .get(&name)
            .filter(|entry| crate::domain::mcp::is_relayed(entry))
            .cloned();
        let (Some(server), Some(relay)) = (server, self.runtime.mcp_relay.get().cloned()) else {
            live.handle.send_line(protocol::control_error_line(
                &request_id,
                &format!("no MCP server {name:?} is relayed for this session"),
            ));
            return;
        };
        let generation = self.generation;
        let mcp_session = self
            .mcp_sessions
            .get(&name)
            .filter(|(g, _)| *g == generation)
            .map(|(_, id)| id.clone());
        let sent = relay.send(
            self.session.tenant_id.clone(),
            server,
            request["message"].clone(),
            mcp_session,
        );
        ctx.spawn(sent.into_actor(self).map(move |relayed, act, _| {
            // A process started since has its own conversation with the server.
            if act.generation != generation {
                return;
            }
            if let Some(id) = relayed.mcp_session {
                act.mcp_sessions.insert(name.clone(), (generation, id));
            }
            let line = match relayed.response {
                Ok(answer) => {
                    protocol::control_success_line(&request_id, json!({ "mcp_response": answer }))
                }
                Err(e) => {
                    tracing::warn!(server = %name, error = %e, "a relayed MCP message failed");
                    protocol::control_error_line(&request_id, &e)
                }
            };
            if let Some(live) = act.process.live() {
                live.handle.send_line(line);
            }
        }));
    }
}
