//! The relay of remote MCP servers (`domain::mcp`): one JSON-RPC message of
//! a session's CLI, sent to the server's URL over MCP's streamable HTTP
//! transport with the server's headers (a tenant secret read at each
//! message), and its answer brought back. The address rules are the
//! webhooks' (`MCP_ALLOWED_HOSTS` exempts a host), checked at every message
//! and pinned for the connection.

use futures_util::StreamExt;
use serde_json::{json, Value};

use super::Services;
use crate::actors::McpRelayed;
use crate::db::models::TenantId;
use crate::domain::mcp::{self, HeaderValue};

/// Longest answer read from a remote MCP server.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
/// `Mcp-Session-Id`, as the transport names it.
const SESSION_HEADER: &str = "mcp-session-id";

pub struct Relay {
    services: Services,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("mcp_relay::Relay")
    }
}

impl Relay {
    pub fn new(services: Services) -> Relay {
        Relay { services }
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
        Box::pin(async move {
            let timeout = services.settings.mcp.timeout;
            let sent = tokio::time::timeout(
                timeout,
                send(
                    &services,
                    &TenantId(tenant_id),
                    &server,
                    &message,
                    mcp_session.clone(),
                ),
            )
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

async fn send(
    services: &Services,
    tenant: &TenantId,
    server: &Value,
    message: &Value,
    mcp_session: Option<String>,
) -> Result<(Value, Option<String>), String> {
    let url = server
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (url, host, addrs) = check_url(services, url).await?;
    // Never through an environment proxy, never following a redirect: the
    // connection goes where the check looked.
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .resolve_to_addrs(&host, &addrs)
        .user_agent(concat!("claude-code-api/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    for (name, value) in mcp::headers(server) {
        let value = match value {
            HeaderValue::Plain(v) => v.to_owned(),
            HeaderValue::Secret(secret) => super::secrets::resolve(services, tenant, secret)
                .await
                .map_err(|e| e.to_string())?,
        };
        request = request.header(name, value);
    }
    if let Some(id) = &mcp_session {
        request = request.header(SESSION_HEADER, id);
    }
    let response = request
        .body(message.to_string())
        .send()
        .await
        .map_err(|e| format!("cannot reach the MCP server: {}", without_url(e)))?;
    let status = response.status();
    let session = response
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if !status.is_success() {
        return Err(format!("the MCP server answered {status}"));
    }
    let id = message.get("id").cloned();
    // A notification or a response: accepted, nothing comes back.
    if id.is_none() || status == reqwest::StatusCode::ACCEPTED {
        return Ok((json!({"jsonrpc": "2.0", "result": {}}), session));
    }
    let is_stream = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream"));
    let answer = if is_stream {
        answer_in_stream(response, id.as_ref()).await?
    } else {
        let body = read_capped(response).await?;
        serde_json::from_slice(&body).map_err(|e| format!("the MCP server's answer: {e}"))?
    };
    Ok((answer, session))
}

/// The JSON-RPC answer to `id` among the stream's `message` events (the
/// server's own notifications and requests before it are left out).
async fn answer_in_stream(
    response: reqwest::Response,
    id: Option<&Value>,
) -> Result<Value, String> {
    let mut stream = response.bytes_stream();
    let mut buffer: Vec<u8> = Vec::new();
    let mut read = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("the MCP server's stream: {}", without_url(e)))?;
        read += chunk.len();
        if read > MAX_ANSWER_BYTES {
            return Err("the MCP server's answer is too large".into());
        }
        buffer.extend_from_slice(&chunk);
        while let Some(end) = event_end(&buffer) {
            let event: Vec<u8> = buffer.drain(..end).collect();
            let text = String::from_utf8_lossy(&event);
            let data: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if data.is_empty() {
                continue;
            }
            let Ok(value) = serde_json::from_str::<Value>(&data.join("\n")) else {
                continue;
            };
            let is_answer = value.get("id") == id
                && (value.get("result").is_some() || value.get("error").is_some());
            if is_answer {
                return Ok(value);
            }
        }
    }
    Err("the MCP server's stream ended without an answer".into())
}

/// Where the first complete event of `buffer` ends (past its blank line).
fn event_end(buffer: &[u8]) -> Option<usize> {
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    lf.into_iter().chain(crlf).min()
}

async fn read_capped(response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut stream = response.bytes_stream();
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("the MCP server's answer: {}", without_url(e)))?;
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err("the MCP server's answer is too large".into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The error without its URL (which may carry a query the tenant put a
/// token in).
fn without_url(e: reqwest::Error) -> String {
    e.without_url().to_string()
}
