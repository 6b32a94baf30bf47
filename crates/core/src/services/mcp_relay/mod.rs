//! The relay of remote MCP servers (`domain::mcp`): one JSON-RPC message of
//! a session's CLI, sent to the server with the server's headers (a tenant
//! secret read at each message), and its answer brought back. Two
//! transports: streamable HTTP (`http.rs`, one POST per message) and the
//! older HTTP+SSE (`sse.rs`, a long-lived event stream per CLI process).
//! The address rules are the webhooks' (`MCP_ALLOWED_HOSTS` exempts a
//! host), and the target must be on the tenant's egress allowlist; both are
//! checked at every message and the addresses pinned for the connection.

mod events;
mod http;
mod sse;

use serde_json::Value;

use super::Services;
use crate::actors::McpRelayed;
use crate::db::models::{egress, TenantId};
use crate::domain::mcp::{self, HeaderValue, Transport};
use crate::egress::allowlist;
use crate::sandbox::network::NetworkMode;

/// Longest answer (or event) read from a remote MCP server.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

pub struct Relay {
    services: Services,
    /// Open event streams of `sse` servers, by the link id the session
    /// keeps as its MCP session.
    links: sse::Links,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("mcp_relay::Relay")
    }
}

impl Relay {
    pub fn new(services: Services) -> Relay {
        Relay {
            services,
            links: sse::Links::default(),
        }
    }
}

impl crate::actors::McpRelay for Relay {
    fn send(
        &self,
        tenant_id: String,
        server: Value,
        message: Value,
        mcp_session: Option<String>,
    ) -> futures_util::future::LocalBoxFuture<'static, McpRelayed> {
        let services = self.services.clone();
        let links = self.links.clone();
        Box::pin(async move {
            let timeout = services.settings.mcp.timeout;
            let tenant = TenantId(tenant_id);
            let sending = async {
                match mcp::transport(&server) {
                    Some(Transport::Sse) => {
                        sse::send(
                            &services,
                            &links,
                            &tenant,
                            &server,
                            &message,
                            mcp_session.clone(),
                        )
                        .await
                    }
                    _ => {
                        http::send(&services, &tenant, &server, &message, mcp_session.clone()).await
                    }
                }
            };
            let sent = tokio::time::timeout(timeout, sending)
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {} s", timeout.as_secs())));
            match sent {
                Ok((response, session)) => McpRelayed {
                    response: Ok(response),
                    mcp_session: session.or(mcp_session),
                },
                Err(e) => McpRelayed {
                    response: Err(e),
                    mcp_session,
                },
            }
        })
    }

    fn close(&self, tenant_id: String, server: Value, mcp_session: String) {
        match mcp::transport(&server) {
            Some(Transport::Sse) => self.links.close(&mcp_session),
            _ => {
                let services = self.services.clone();
                actix::spawn(async move {
                    http::end_session(&services, &TenantId(tenant_id), &server, &mcp_session).await
                });
            }
        }
    }
}

/// Checks that `url` may be reached (the form and, unless the operator
/// listed the host, a public address); the addresses to connect to.
pub async fn check_url(
    services: &Services,
    url: &str,
) -> Result<(url::Url, String, Vec<std::net::SocketAddr>), String> {
    let parsed = crate::webhooks::ssrf::parse(url)
        .map_err(|_| "the URL must be http or https, without a user or password".to_owned())?;
    let host = parsed.host_str().unwrap_or_default().to_owned();
    let port = parsed.port_or_known_default().unwrap_or(443);
    let addrs = crate::webhooks::ssrf::resolve_checked(
        host.trim_start_matches('[').trim_end_matches(']'),
        port,
        &services.settings.mcp.allowed_hosts,
    )
    .await
    .map_err(|_| {
        format!(
            "the host {host} does not resolve to a public address (an operator may allow it in MCP_ALLOWED_HOSTS)"
        )
    })?;
    Ok((parsed, host, addrs))
}

/// Whether the tenant's agents may have the relay reach `host`: the relay
/// acts for the agent, so it goes only where the tenant's egress allowlist
/// lets its agents go (`AGENT_NETWORK=host` has no allowlist: there the
/// agent reaches every host itself).
pub async fn check_egress(
    services: &Services,
    tenant: &TenantId,
    host: &str,
) -> Result<(), String> {
    if services.settings.network.mode == NetworkMode::Host {
        return Ok(());
    }
    let key = allowlist::host_key(host.trim_start_matches('[').trim_end_matches(']'))
        .unwrap_or_else(|| host.to_ascii_lowercase());
    let lookup = tenant.clone();
    let patterns = crate::db::run(&services.pool, move |c| egress::allowed_hosts(c, &lookup))
        .await
        .map_err(|e| format!("cannot read the egress allowlist: {e}"))?;
    if allowlist::allows(&patterns, &key) {
        Ok(())
    } else {
        Err(format!(
            "{key} is not on the egress allowlist of tenant {tenant} (an admin adds it: PUT \
             /api/v1/admin/tenants/{tenant}/egress)",
            tenant = tenant.0
        ))
    }
}

/// The URL's host and addresses, when both the address rules and the
/// tenant's egress allowlist let the relay reach it.
pub async fn check_target(
    services: &Services,
    tenant: &TenantId,
    url: &str,
) -> Result<(url::Url, String, Vec<std::net::SocketAddr>), String> {
    let (parsed, host, addrs) = check_url(services, url).await?;
    check_egress(services, tenant, &host).await?;
    Ok((parsed, host, addrs))
}

/// A client that connects only to `addrs` for `host`: never through an
/// environment proxy, never following a redirect, so the connection goes
/// where the checks looked.
fn pinned_client(host: &str, addrs: &[std::net::SocketAddr]) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .resolve_to_addrs(host, addrs)
        .user_agent(concat!("claude-code-api/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// `request` with the server's headers, secrets read now.
async fn with_headers(
    services: &Services,
    tenant: &TenantId,
    server: &Value,
    mut request: reqwest::RequestBuilder,
) -> Result<reqwest::RequestBuilder, String> {
    for (name, value) in mcp::headers(server) {
        let value = match value {
            HeaderValue::Plain(v) => v.to_owned(),
            HeaderValue::Secret(secret) => super::secrets::resolve(services, tenant, secret)
                .await
                .map_err(|e| e.to_string())?,
        };
        request = request.header(name, value);
    }
    Ok(request)
}

/// The server's URL (checked) and a client pinned to it.
async fn connect(
    services: &Services,
    tenant: &TenantId,
    server: &Value,
) -> Result<(url::Url, reqwest::Client), String> {
    let url = server
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (url, host, addrs) = check_target(services, tenant, url).await?;
    Ok((url, pinned_client(&host, &addrs)?))
}

/// The error without its URL (which may carry a query the tenant put a
/// token in).
fn without_url(e: reqwest::Error) -> String {
    e.without_url().to_string()
}

/// Whether `value` is the JSON-RPC answer to the request `id`.
fn is_answer(value: &Value, id: &Value) -> bool {
    value.get("id") == Some(id) && (value.get("result").is_some() || value.get("error").is_some())
}
