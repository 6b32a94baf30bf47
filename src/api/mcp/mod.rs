//! MCP server at `/mcp`: the Model Context Protocol's streamable HTTP
//! transport, spoken by the official Rust SDK (`rmcp`) and mounted in
//! actix-web by `rmcp-actix-web`, in stateful mode (sessions named by the
//! `Mcp-Session-Id` header; requests of the sessionless protocol revision
//! are served one by one).
//!
//! - `access.rs`: API key and session ownership, before the SDK sees a request
//! - `owners.rs`: the bounded map of which tenant opened each session
//! - `problem.rs`: the SDK's transport errors as problem documents
//! - `server.rs`: the SDK handler (tools, resources)
//! - `tools.rs`: each tool and resource as a call to the services

mod access;
mod owners;
mod problem;
mod server;
mod tools;

use std::sync::Arc;

use actix_web::dev::HttpServiceFactory;
use actix_web::web;
use rmcp_actix_web::transport::{CancellationToken, LocalSessionManager, StreamableHttpService};

use super::schema_parts::problem;
use access::Access;
use serde_json::{json, Value};
use server::{McpContext, Server};

/// The MCP endpoint's state, made once and shared by every worker: the SDK
/// transport (with its sessions) and the session owners.
#[derive(Clone)]
pub struct McpServer {
    transport: StreamableHttpService<Server, LocalSessionManager>,
    access: web::Data<Access>,
    shutdown: CancellationToken,
}

impl McpServer {
    pub fn new() -> McpServer {
        let sessions = Arc::new(LocalSessionManager::default());
        let shutdown = CancellationToken::new();
        let transport = StreamableHttpService::builder()
            .service_factory(Arc::new(|| Ok(Server)))
            .session_manager(sessions.clone())
            .stateful_mode(true)
            .max_request_body_bytes(crate::state::JSON_LIMIT)
            // The SDK's Host allow-list (loopback only by default) defends
            // keyless local servers against DNS rebinding; here every request
            // needs an API key, which a rebinding page cannot send, and the
            // server is reached under whatever name it is deployed at.
            .allowed_hosts(Vec::new())
            .cancellation_token(shutdown.clone())
            // Tools act as the caller of the request that carried them (the
            // gate put it there).
            .on_request_fn(|req, extensions| {
                if let Some(caller) = McpContext::of(req) {
                    extensions.insert(caller);
                }
            })
            .build();
        McpServer {
            transport,
            access: web::Data::new(Access::new(sessions)),
            shutdown,
        }
    }

    /// Ends every MCP session and open stream (server shutdown).
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }
}

impl Default for McpServer {
    fn default() -> Self {
        McpServer::new()
    }
}

/// What `scope` serves, as `(method, path)` (its OpenAPI entry is written
/// out in `openapi.rs`).
pub const ROUTES: &[(&str, &str)] = &[("post", "/mcp"), ("get", "/mcp"), ("delete", "/mcp")];

/// `/mcp` (POST, GET, DELETE), behind the access gate.
pub fn scope(mcp: &McpServer) -> impl HttpServiceFactory {
    web::scope("/mcp")
        .app_data(mcp.access.clone())
        .wrap(actix_web::middleware::from_fn(access::gate))
        // Outermost: every MCP request counts, a refused key included.
        .wrap(actix_web::middleware::from_fn(
            crate::api::limits::middleware,
        ))
        .service(mcp.transport.clone().scope())
}

/// `/mcp` is served by the MCP SDK's transport, not by a handler of ours,
/// so its operations are written out here.
pub fn path_item() -> Value {
    let session = |required: bool| {
        json!({
            "name": "Mcp-Session-Id", "in": "header", "required": required,
            "description": "The MCP session, from the `initialize` response; it belongs to the \
                tenant that made it. Every request but `initialize` needs it (400 without).",
            "schema": {"type": "string", "pattern": "^[!-~]+$"},
        })
    };
    let rpc = json!({
        "description": "A JSON-RPC 2.0 message: a request or notification (`method`), or a \
            response to one of the server's requests (`result` or `error`)",
        "type": "object",
        "required": ["jsonrpc"],
        "properties": {
            "jsonrpc": {"type": "string", "const": "2.0"},
            "id": {"type": ["string", "integer"]},
            "method": {"type": "string"},
            "params": {"type": "object"},
            "result": {"type": "object"},
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "integer"}, "message": {"type": "string"}, "data": {}},
            },
        },
        "oneOf": [
            {"required": ["method"], "not": {"anyOf": [{"required": ["result"]}, {"required": ["error"]}]}},
            {"required": ["id", "result"], "not": {"anyOf": [{"required": ["method"]}, {"required": ["error"]}]}},
            {"required": ["id", "error"], "not": {"anyOf": [{"required": ["method"]}, {"required": ["result"]}]}},
        ],
    });
    let not_found = problem("Unknown session, or another tenant's");
    json!({
        "post": {
            "tags": ["mcp"],
            "operationId": "mcp_post",
            "summary": "Model Context Protocol, streamable HTTP transport",
            "description": "JSON-RPC messages of the MCP protocol: `initialize`, `tools/list`, \
                `tools/call`, `resources/list`, `resources/read`, … The answer is an \
                event stream; an `Accept` header, when sent, must allow it and JSON. The \
                tools act on the caller's tenant with the caller's key. A request other than \
                `initialize` needs `Mcp-Session-Id` (400 without), which OpenAPI cannot tie \
                to the body's `method`.",
            "parameters": [session(false)],
            "requestBody": {"required": true, "content": {"application/json": {"schema": rpc}}},
            "responses": {
                "200": {
                    "description": "The JSON-RPC response, as an event stream",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                "202": {"description": "A notification or response was accepted"},
                "400": problem("No session id on a request other than `initialize`"),
                "404": not_found,
                "406": problem("The `Accept` header excludes JSON or event streams"),
                "413": problem("The body is larger than 2 MiB"),
                "415": problem("The body is not a JSON-RPC message"),
            },
        },
        "get": {
            "tags": ["mcp"],
            "operationId": "mcp_get",
            "summary": "The session's stream of server messages",
            "parameters": [session(true)],
            "responses": {
                "200": {
                    "description": "Server-sent events",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                "400": problem("No `Mcp-Session-Id`"),
                "404": not_found,
                "406": problem("The `Accept` header excludes event streams"),
            },
        },
        "delete": {
            "tags": ["mcp"],
            "operationId": "mcp_delete",
            "summary": "Ends the MCP session",
            "parameters": [session(true)],
            "responses": {
                "202": {"description": "Ended"},
                "400": problem("No `Mcp-Session-Id`"),
                "404": not_found,
            },
        },
    })
}
