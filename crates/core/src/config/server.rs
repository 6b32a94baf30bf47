//! `settings.server`: the HTTP edge, its limits, logs and metrics.

use std::time::Duration;

use super::parse::Env;
use super::ConfigError;

#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// `API_HOST`: address to bind.
    pub host: String,
    /// `API_PORT`: port to bind (0 picks a free one).
    pub port: u16,
    /// `API_KEYS`: comma-separated keys, each its own tenant (`team:key`: in "team").
    pub api_keys: Vec<String>,
    /// `RATE_LIMIT_REQUESTS` per `RATE_LIMIT_WINDOW`, per key.
    pub rate_limit_requests: u32,
    pub rate_limit_window: Duration,
    /// `AUTH_CACHE_SECONDS`: how long a resolved key is served from memory.
    pub auth_cache: Duration,
    /// `AUTH_FAILURE_LIMIT`: failed authentications per minute from one client
    /// address before its requests with a key get a 429 (0: no limit).
    pub auth_failure_limit: u32,
    /// `TRUSTED_PROXIES`: addresses or networks of reverse proxies whose
    /// `X-Forwarded-For` names the client (none: the socket's peer is the client).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `METRICS_ADDR`: `host:port` of a separate listener serving Prometheus
    /// `/metrics` (unset: no metrics endpoint). Keep it on a private address.
    pub metrics_addr: Option<String>,
    /// `LOG_LEVEL`: tracing filter.
    pub log_level: String,
    /// `LOG_FORMAT`: `text` or `json`.
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl ServerSettings {
    pub(super) fn read(env: &Env) -> Result<ServerSettings, ConfigError> {
        Ok(ServerSettings {
            host: env.string("API_HOST"),
            port: env.parse("API_PORT")?,
            api_keys: env.list("API_KEYS"),
            rate_limit_requests: env.bounded("RATE_LIMIT_REQUESTS", 1, 1_000_000)?,
            rate_limit_window: env.seconds("RATE_LIMIT_WINDOW", 1, 86_400)?,
            auth_cache: env.seconds("AUTH_CACHE_SECONDS", 0, 3600)?,
            auth_failure_limit: env.bounded("AUTH_FAILURE_LIMIT", 0, 1_000_000)?,
            trusted_proxies: {
                let raw = env.list("TRUSTED_PROXIES");
                crate::security::client::parse_networks(&raw)
                    .map_err(|reason| env.error("TRUSTED_PROXIES", &raw.join(","), reason))?
            },
            metrics_addr: env.get("METRICS_ADDR"),
            log_level: env.string("LOG_LEVEL"),
            log_format: match env.string("LOG_FORMAT").as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => return Err(env.error("LOG_FORMAT", other, "expected text or json")),
            },
        })
    }
}
