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
//! - `tools.rs`: each tool and resource as a REST call
//! - `forward.rs`: how that call reaches the REST API as the caller

mod access;
mod forward;
mod owners;
mod problem;
mod server;
mod tools;

use std::sync::Arc;

use actix_web::dev::HttpServiceFactory;
use actix_web::web;
use rmcp_actix_web::transport::{CancellationToken, LocalSessionManager, StreamableHttpService};

use access::Access;
use forward::Forward;
use server::Server;

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
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap_or_default();
        let shutdown = CancellationToken::new();
        let transport = StreamableHttpService::builder()
            .service_factory(Arc::new(move || Ok(Server::new(client.clone()))))
            .session_manager(sessions.clone())
            .stateful_mode(true)
            .max_request_body_bytes(super::JSON_LIMIT)
            // The SDK's Host allow-list (loopback only by default) defends
            // keyless local servers against DNS rebinding; here every request
            // needs an API key, which a rebinding page cannot send, and the
            // server is reached under whatever name it is deployed at.
            .allowed_hosts(Vec::new())
            .cancellation_token(shutdown.clone())
            // Tools call the REST API with the key of the request that carried them.
            .on_request_fn(|req, extensions| {
                if let Some(forward) = Forward::from_request(req) {
                    extensions.insert(forward);
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
            crate::security::rate_limit::middleware,
        ))
        .service(mcp.transport.clone().scope())
}
