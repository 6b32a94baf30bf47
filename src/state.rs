//! What every handler shares: the services, and what only the HTTP edge
//! needs (rate limits, sign-in failures, the gateway). Built once by `app`.

/// Largest JSON body accepted, chunked or not.
pub const JSON_LIMIT: usize = 2 * 1024 * 1024;

/// Shared by every handler: the services, and what only the HTTP surface needs.
pub struct AppState {
    pub services: claude_code_api_core::services::Services,
    /// Detected at start by `claude --version`; `None` when it cannot run.
    pub cli_version: Option<String>,
    /// Per-key request budgets.
    pub rate_limits: claude_code_api_core::security::rate_limit::RateLimits,
    /// Failed authentications per client address.
    pub auth_failures: claude_code_api_core::security::auth_failures::AuthFailures,
    /// The model gateway: its credential source, tenants' own credentials.
    pub gateway: claude_code_api_core::gateway::ModelGateway,
}

/// Where the web console lives.
pub const CONSOLE_BASE: &str = "/console";

/// Where the REST API lives; its routes are `api_v1_routes`.
pub const API_V1: &str = "/api/v1";
