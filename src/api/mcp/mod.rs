//! MCP server at `/mcp`: the streamable HTTP transport of the Model Context
//! Protocol (2025-06-18), JSON-RPC over `POST`, one JSON response per
//! request (no server-initiated stream: `GET` is a 405), sessions named by
//! the `Mcp-Session-Id` header. Authenticated with the API keys like every
//! route; an MCP session belongs to the tenant that initialized it.
//!
//! Methods: `initialize`, `ping`, `tools/list`, `tools/call`,
//! `resources/list`, `resources/read`, `resources/templates/list`.
//! Tools and resources are in `tools.rs`.

mod tools;

use std::collections::HashMap;
use std::sync::Mutex;

use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::middleware::RequestId;
use crate::error::ApiError;
use crate::security::auth::Caller;

/// Protocol versions this server speaks, newest first.
const VERSIONS: &[&str] = &["2025-06-18", "2025-03-26", "2024-11-05"];
const SESSION_HEADER: &str = "mcp-session-id";
/// Most MCP sessions kept; the oldest is forgotten beyond it.
const MAX_SESSIONS: usize = 10_000;

/// Live MCP sessions: id → (tenant, order of creation). One per server,
/// shared by every worker.
/// Session id → (tenant, creation number), and the last number given.
type Registry = (HashMap<String, (String, u64)>, u64);

#[derive(Default)]
pub struct McpSessions {
    inner: Mutex<Registry>,
    client: std::sync::OnceLock<reqwest::Client>,
}

impl McpSessions {
    fn create(&self, tenant: &str) -> String {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (map, counter) = &mut *guard;
        *counter += 1;
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, (_, n))| *n)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(id.clone(), (tenant.to_owned(), *counter));
        id
    }

    /// Whether `id` is a live session of `tenant`.
    fn owned_by(&self, id: &str, tenant: &str) -> bool {
        let guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        guard.0.get(id).is_some_and(|(t, _)| t == tenant)
    }

    fn remove(&self, id: &str, tenant: &str) -> bool {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if guard.0.get(id).is_some_and(|(t, _)| t == tenant) {
            guard.0.remove(id);
            true
        } else {
            false
        }
    }

    fn client(&self) -> &reqwest::Client {
        self.client.get_or_init(|| {
            reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap_or_default()
        })
    }
}

fn rpc_result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

fn rpc_error(id: &Value, code: i64, message: impl Into<String>) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message.into()}})
}

/// The caller's session id header, checked against the tenant.
fn session_of(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// What a tool or resource call needs to reach the REST API as the caller.
struct Forward {
    base: String,
    auth: String,
    request_id: String,
}

impl Forward {
    fn from_request(req: &HttpRequest) -> Forward {
        let local = req.app_config().local_addr();
        let auth = req
            .headers()
            .get("authorization")
            .or_else(|| req.headers().get("x-api-key"))
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                if req.headers().contains_key("authorization") {
                    v.to_owned()
                } else {
                    format!("Bearer {v}")
                }
            })
            .unwrap_or_default();
        let request_id = req
            .extensions()
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        Forward {
            base: format!("http://{local}"),
            auth,
            request_id,
        }
    }

    /// Runs the call; the status and the JSON body.
    async fn run(
        &self,
        client: &reqwest::Client,
        call: tools::Call,
    ) -> Result<(u16, Value), String> {
        let mut url = url::Url::parse(&self.base).map_err(|e| e.to_string())?;
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|_| "bad base URL".to_owned())?;
            path.extend(["api", "v1"]);
            for s in &call.segments {
                path.push(s);
            }
        }
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(call.query.iter());
        }
        let mut request = client
            .request(call.method, url)
            .header("authorization", &self.auth)
            .header("x-request-id", &self.request_id);
        if let Some(body) = call.body {
            request = request.json(&body);
        }
        let res = request.send().await.map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        let text = res.text().await.map_err(|e| e.to_string())?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, body))
    }
}

/// `POST /mcp`: one JSON-RPC message.
pub async fn post_mcp(
    req: HttpRequest,
    caller: Caller,
    sessions: web::Data<McpSessions>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let message = body.into_inner();
    if message.is_array() {
        return Err(ApiError::Validation(
            "JSON-RPC batches are not supported (MCP 2025-06-18)".into(),
        ));
    }
    let Some(method) = message.get("method").and_then(Value::as_str) else {
        // A response or something else from the client: nothing to answer.
        return Ok(HttpResponse::Accepted().finish());
    };
    let Some(id) = message.get("id").cloned() else {
        // A notification (`notifications/initialized`, …).
        return Ok(HttpResponse::Accepted().finish());
    };
    let params = message
        .get("params")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let tenant = caller.tenant.as_str().to_owned();

    if method == "initialize" {
        let asked = params
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or(VERSIONS[0]);
        let version = VERSIONS
            .iter()
            .find(|v| **v == asked)
            .copied()
            .unwrap_or(VERSIONS[0]);
        let session = sessions.create(&tenant);
        let result = json!({
            "protocolVersion": version,
            "capabilities": {"tools": {"listChanged": false}, "resources": {"listChanged": false}},
            "serverInfo": {"name": "claude-code-api", "title": "Claude Code API", "version": env!("CARGO_PKG_VERSION")},
            "instructions": "Sessions are named Claude Code agents, each with its own workspace. \
                             create_session, then chat; create_job for long tasks.",
        });
        return Ok(HttpResponse::Ok()
            .insert_header((SESSION_HEADER, session))
            .json(rpc_result(&id, result)));
    }

    // Every other request belongs to a session this tenant initialized.
    let Some(session) = session_of(&req) else {
        return Ok(HttpResponse::BadRequest().json(rpc_error(
            &id,
            -32600,
            "Mcp-Session-Id header required: call initialize first",
        )));
    };
    if !sessions.owned_by(&session, &tenant) {
        return Ok(HttpResponse::NotFound().json(rpc_error(
            &id,
            -32600,
            "unknown or expired MCP session: initialize again",
        )));
    }
    let forward = Forward::from_request(&req);
    let client = sessions.client();
    let reply = match method {
        "ping" => rpc_result(&id, json!({})),
        "tools/list" => rpc_result(&id, tools::definitions()),
        "tools/call" => call_tool(&forward, client, &id, &params).await,
        "resources/list" => {
            let call = tools::resource_call("cca://sessions").map_err(ApiError::internal)?;
            let sessions = match forward.run(client, call).await {
                Ok((200, body)) => body["data"].as_array().cloned().unwrap_or_default(),
                _ => vec![],
            };
            rpc_result(&id, tools::resource_list(&sessions))
        }
        "resources/templates/list" => rpc_result(
            &id,
            json!({"resourceTemplates": [{"uriTemplate": "cca://sessions/{name}", "name": "session",
                    "description": "A session by name", "mimeType": "application/json"}]}),
        ),
        "resources/read" => read_resource(&forward, client, &id, &params).await,
        other => rpc_error(&id, -32601, format!("method not found: {other}")),
    };
    Ok(HttpResponse::Ok().json(reply))
}

async fn call_tool(
    forward: &Forward,
    client: &reqwest::Client,
    id: &Value,
    params: &Map<String, Value>,
) -> Value {
    let Some(name) = params.get("name").and_then(Value::as_str) else {
        return rpc_error(id, -32602, "params.name is required");
    };
    let args = params
        .get("arguments")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let call = match tools::call(name, &args) {
        Ok(call) => call,
        Err(why) if why.starts_with("unknown tool") => return rpc_error(id, -32602, why),
        Err(why) => {
            return rpc_result(
                id,
                json!({"content": [{"type": "text", "text": why}], "isError": true}),
            )
        }
    };
    match forward.run(client, call).await {
        Ok((status, body)) => {
            let ok = (200..300).contains(&status);
            // Success: the envelope's data; failure: the problem document.
            let data = if ok {
                match body.get("data") {
                    Some(data) => {
                        let mut data = json!({"data": data});
                        if let Some(p) = body.get("pagination") {
                            data["pagination"] = p.clone();
                        }
                        data
                    }
                    None => json!({"status": status}),
                }
            } else {
                json!({"error": body})
            };
            json!({
                "jsonrpc": "2.0",
                "id": id,
                "result": {
                    "content": [{"type": "text", "text": data.to_string()}],
                    "structuredContent": data,
                    "isError": !ok,
                },
            })
        }
        Err(e) => rpc_error(id, -32603, format!("internal call failed: {e}")),
    }
}

async fn read_resource(
    forward: &Forward,
    client: &reqwest::Client,
    id: &Value,
    params: &Map<String, Value>,
) -> Value {
    let Some(uri) = params.get("uri").and_then(Value::as_str) else {
        return rpc_error(id, -32602, "params.uri is required");
    };
    let call = match tools::resource_call(uri) {
        Ok(call) => call,
        Err(why) => return rpc_error(id, -32002, why),
    };
    match forward.run(client, call).await {
        Ok((200, body)) => rpc_result(
            id,
            json!({"contents": [{"uri": uri, "mimeType": "application/json",
                                 "text": body["data"].to_string()}]}),
        ),
        Ok((404, _)) => rpc_error(id, -32002, format!("resource not found: {uri}")),
        Ok((status, body)) => rpc_error(id, -32603, format!("{status}: {body}")),
        Err(e) => rpc_error(id, -32603, format!("internal call failed: {e}")),
    }
}

/// `GET /mcp`: this server opens no server-to-client stream.
pub async fn get_mcp(_caller: Caller) -> HttpResponse {
    HttpResponse::build(StatusCode::METHOD_NOT_ALLOWED)
        .insert_header(("allow", "POST, DELETE"))
        .finish()
}

/// `DELETE /mcp`: ends the caller's MCP session.
pub async fn delete_mcp(
    req: HttpRequest,
    caller: Caller,
    sessions: web::Data<McpSessions>,
) -> HttpResponse {
    match session_of(&req) {
        Some(id) if sessions.remove(&id, caller.tenant.as_str()) => {
            HttpResponse::NoContent().finish()
        }
        Some(_) => HttpResponse::NotFound().finish(),
        None => HttpResponse::BadRequest().finish(),
    }
}
