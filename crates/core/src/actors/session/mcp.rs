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

/// A relayed server's MCP session (or event stream) of one CLI process.
#[derive(Debug, Clone)]
pub(super) struct McpLink {
    generation: u64,
    id: Option<String>,
    server: Value,
    handshake: Handshake,
}

/// The CLI runs more than one MCP client per server (each numbering its
/// requests from 0) over one remote session, where a request id must be
/// unique: each request goes out under an id of the session's own, and its
/// answer comes back under the CLI's.
fn renumbered(message: &Value, own: u64) -> (Value, Option<Value>) {
    let cli_id = message
        .get("id")
        .filter(|_| message.get("method").is_some())
        .cloned();
    let mut message = message.clone();
    if cli_id.is_some() {
        message["id"] = json!(own);
    }
    (message, cli_id)
}

/// The answer under the CLI's own id again.
fn with_cli_id(mut answer: Value, cli_id: Option<Value>) -> Value {
    if let (Some(id), Some(object)) = (cli_id, answer.as_object_mut()) {
        if object.contains_key("id") {
            object.insert("id".into(), id);
        }
    }
    answer
}

/// The CLI repeats MCP's handshake (`initialize`, then
/// `notifications/initialized`) at its start and again at the first turn,
/// with the same JSON-RPC ids. A remote server sees one handshake per
/// process, and its messages only once it is done: the relay sends the
/// first `initialize` and then `notifications/initialized` itself before
/// the CLI hears the answer; repeats are answered from it.
#[derive(Debug, Clone)]
enum Handshake {
    /// The first `initialize` is on its way; these CLI requests (control
    /// request id, JSON-RPC id) wait for its answer.
    InFlight(Vec<(String, Value)>),
    /// The server's answer to `initialize`.
    Done(Value),
}

impl SessionActor {
    /// A new process generation: the old one's MCP sessions are ended, so
    /// no remote server (nor event stream) is held for a process that is gone.
    pub(super) fn next_generation(&mut self) {
        self.generation += 1;
        self.end_mcp_sessions();
    }

    pub(super) fn end_mcp_sessions(&mut self) {
        let relay = self.runtime.mcp_relay.get().cloned();
        for (_, link) in self.mcp_sessions.drain() {
            if let (Some(relay), Some(id)) = (&relay, link.id) {
                relay.close(self.session.tenant_id.clone(), link.server, id);
            }
        }
    }

    pub(super) fn note_mcp(&mut self, servers: Vec<Value>, tools: Vec<String>) {
        self.mcp_seen = Some(McpSeen { servers, tools });
    }

    fn answer_mcp(&self, request_id: &str, answer: Result<Value, String>) {
        let line = match answer {
            Ok(answer) => {
                protocol::control_success_line(request_id, json!({ "mcp_response": answer }))
            }
            Err(e) => protocol::control_error_line(request_id, &e),
        };
        if let Some(live) = self.process.live() {
            live.handle.send_line(line);
        }
    }

    /// An `mcp_message` of the CLI for a relayed server: sent on by the
    /// relay, answered when the remote server answers (others may be on
    /// their way meanwhile); the handshake as `Handshake` says.
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
            self.answer_mcp(
                &request_id,
                Err(format!(
                    "no MCP server {name:?} is relayed for this session"
                )),
            );
            return;
        };
        let message = request["message"].clone();
        let generation = self.generation;
        let link = self
            .mcp_sessions
            .get_mut(&name)
            .filter(|link| link.generation == generation);
        let method = message.get("method").and_then(Value::as_str);
        tracing::debug!(
            server = %name,
            method = method.unwrap_or("(answer)"),
            id = %message.get("id").cloned().unwrap_or_default(),
            "an MCP message of the CLI"
        );
        match (method, link) {
            (Some("initialize"), Some(link)) => {
                let id = message.get("id").cloned().unwrap_or(Value::Null);
                match &mut link.handshake {
                    Handshake::InFlight(waiting) => waiting.push((request_id, id)),
                    Handshake::Done(result) => {
                        let answer = json!({"jsonrpc": "2.0", "id": id, "result": result});
                        self.answer_mcp(&request_id, Ok(answer));
                    }
                }
                return;
            }
            (Some("notifications/initialized"), _) => {
                // Sent to the server with the first answer already.
                self.answer_mcp(&request_id, Ok(json!({"jsonrpc": "2.0", "result": {}})));
                return;
            }
            (Some("initialize"), None) => {
                let link = McpLink {
                    generation,
                    id: None,
                    server: server.clone(),
                    handshake: Handshake::InFlight(Vec::new()),
                };
                self.mcp_sessions.insert(name.clone(), link);
                self.handshake(name, server, request_id, message, relay, ctx);
                return;
            }
            _ => {}
        }
        let mcp_session = self
            .mcp_sessions
            .get(&name)
            .filter(|link| link.generation == generation)
            .and_then(|link| link.id.clone());
        self.mcp_next_id += 1;
        let (message, cli_id) = renumbered(&message, self.mcp_next_id);
        let sent = relay.send(self.session.tenant_id.clone(), server, message, mcp_session);
        ctx.spawn(sent.into_actor(self).map(move |relayed, act, _| {
            // A process started since has its own conversation with the server.
            if act.generation != generation {
                return;
            }
            if let Err(e) = &relayed.response {
                tracing::warn!(server = %name, error = %e, "a relayed MCP message failed");
            }
            act.answer_mcp(
                &request_id,
                relayed.response.map(|a| with_cli_id(a, cli_id)),
            );
        }));
    }

    /// The first `initialize` of this process for `name`: sent with no
    /// MCP session (a new one), then `notifications/initialized`; the CLI
    /// and the repeats that waited hear the answer after both.
    fn handshake(
        &mut self,
        name: String,
        server: Value,
        request_id: String,
        message: Value,
        relay: std::sync::Arc<dyn crate::actors::McpRelay>,
        ctx: &mut Context<Self>,
    ) {
        let generation = self.generation;
        let tenant = self.session.tenant_id.clone();
        self.mcp_next_id += 1;
        let (message, cli_id) = renumbered(&message, self.mcp_next_id);
        let sent = async move {
            let mut first = relay
                .send(tenant.clone(), server.clone(), message, None)
                .await;
            if first
                .response
                .as_ref()
                .is_ok_and(|a| a.get("result").is_some())
            {
                let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
                let note = relay
                    .send(tenant, server, initialized, first.mcp_session.clone())
                    .await;
                if let Err(e) = note.response {
                    first.response = Err(e);
                }
            }
            first
        };
        ctx.spawn(sent.into_actor(self).map(move |relayed, act, _| {
            if act.generation != generation {
                return;
            }
            let Some(link) = act.mcp_sessions.get_mut(&name) else {
                return;
            };
            let Handshake::InFlight(waiting) = &mut link.handshake else {
                return;
            };
            let waiting = std::mem::take(waiting);
            let result = relayed
                .response
                .as_ref()
                .ok()
                .and_then(|answer| answer.get("result"))
                .cloned();
            match result {
                Some(result) => {
                    link.id = relayed.mcp_session;
                    link.handshake = Handshake::Done(result.clone());
                    for (request_id, id) in waiting {
                        let answer = json!({"jsonrpc": "2.0", "id": id, "result": result});
                        act.answer_mcp(&request_id, Ok(answer));
                    }
                }
                None => {
                    // Not initialised: the next `initialize` tries again.
                    let link = act.mcp_sessions.remove(&name);
                    let relay = act.runtime.mcp_relay.get();
                    if let (Some(link), Some(id), Some(relay)) =
                        (link, relayed.mcp_session.clone(), relay)
                    {
                        relay.close(act.session.tenant_id.clone(), link.server, id);
                    }
                    let why = match &relayed.response {
                        Ok(answer) => format!("the MCP server refused initialize: {answer}"),
                        Err(e) => e.clone(),
                    };
                    tracing::warn!(server = %name, error = %why, "a relayed MCP server did not initialise");
                    for (request_id, _) in waiting {
                        act.answer_mcp(&request_id, Err(why.clone()));
                    }
                }
            }
            act.answer_mcp(&request_id, relayed.response.map(|a| with_cli_id(a, cli_id)));
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_go_out_under_own_ids_and_answers_come_back_under_the_clis() {
        let request = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
        let (sent, cli_id) = renumbered(&request, 7);
        assert_eq!(sent["id"], 7);
        assert_eq!(sent["method"], "tools/list");
        let answer = json!({"jsonrpc": "2.0", "id": 7, "result": {"tools": []}});
        assert_eq!(with_cli_id(answer, cli_id)["id"], 1);
        // Notifications and the CLI's own answers keep what they have.
        let note = json!({"jsonrpc": "2.0", "method": "notifications/cancelled"});
        assert_eq!(renumbered(&note, 8), (note.clone(), None));
        let reply = json!({"jsonrpc": "2.0", "id": "s-1", "result": {}});
        assert_eq!(renumbered(&reply, 9), (reply.clone(), None));
    }
}
