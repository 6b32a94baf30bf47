//! claude-code-api: a self-hosted, multi-tenant REST + SSE server that turns
//! the Claude Code CLI into a remote service. This crate is the HTTP edge
//! (the REST API, SSE, MCP, the OpenAI surface, the web console, the model
//! gateway's listener) and the binary; the rest is `claude_code_api_core`.

pub mod admin_cli;
pub mod api;
pub mod app;
pub mod console;
pub mod error;
pub mod gateway_listener;
pub mod identity;
pub mod net;
pub mod state;
