//! MCP's streamable HTTP transport: each message is a POST; the answer is a
//! JSON body or the matching event of an event stream. The server's
//! `Mcp-Session-Id` is kept by the session and sent back.

use futures_util::StreamExt;
use serde_json::{json, Value};

use super::{connect, events, is_answer, with_headers, without_url, MAX_ANSWER_BYTES};
use crate::db::models::TenantId;
use crate::services::Services;

/// `Mcp-Session-Id`, as the transport names it.
const SESSION_HEADER: &str = "mcp-session-id";

pub(super) async fn send(
    services: &Services,
    tenant: &TenantId,
    server: &Value,
    message: &Value,
    mcp_session: Option<String>,
) -> Result<(Value, Option<String>), String> {
    let (url, client) = connect(services, tenant, server).await?;
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    request = with_headers(services, tenant, server, request).await?;
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
    // A notification or a response: accepted, nothing comes back.
    let Some(id) = message.get("id") else {
        return Ok((json!({"jsonrpc": "2.0", "result": {}}), session));
    };
    if status == reqwest::StatusCode::ACCEPTED {
        return Ok((json!({"jsonrpc": "2.0", "result": {}}), session));
    }
    let is_stream = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream"));
    let answer = if is_stream {
        answer_in_stream(response, id).await?
    } else {
        let body = read_capped(response).await?;
        serde_json::from_slice(&body).map_err(|e| format!("the MCP server's answer: {e}"))?
    };
    Ok((answer, session))
}

/// Ends the server's MCP session (the transport's DELETE), when the CLI
/// process that held it is gone; a server that keeps none may refuse.
pub(super) async fn end_session(
    services: &Services,
    tenant: &TenantId,
    server: &Value,
    mcp_session: &str,
) {
    let ended = async {
        let (url, client) = connect(services, tenant, server).await?;
        let request = with_headers(services, tenant, server, client.delete(url)).await?;
        request
            .header(SESSION_HEADER, mcp_session)
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .await
            .map_err(without_url)
    };
    if let Err(e) = ended.await {
        tracing::debug!(error = %e, "an MCP session was not ended");
    }
}

/// The JSON-RPC answer to `id` among the stream's `message` events (the
/// server's own notifications and requests before it are left out).
async fn answer_in_stream(response: reqwest::Response, id: &Value) -> Result<Value, String> {
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
        while let Some(event) = events::next(&mut buffer) {
            let Ok(value) = serde_json::from_str::<Value>(&event.data) else {
                continue;
            };
            if is_answer(&value, id) {
                return Ok(value);
            }
        }
    }
    Err("the MCP server's stream ended without an answer".into())
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
