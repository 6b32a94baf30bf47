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

use access::Access;
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
