//! A scriptable mock of the Anthropic Messages API, for running the real Claude Code CLI
//! offline (`ANTHROPIC_BASE_URL=<base_url>`).
//!
//! The reply is chosen from directives in the newest human text of a request:
//!
//! | directive                          | reply                                                  |
//! |------------------------------------|--------------------------------------------------------|
//! | (none)                             | text `Mock reply to: <prompt, first 200 chars>`        |
//! | `[[write PATH]]CONTENT[[/write]]`  | tool_use `Write {file_path, content}`                  |
//! | `[[bash]]COMMAND[[/bash]]`         | tool_use `Bash {command, description: "mock bash"}`    |
//! | `[[read PATH]]`                    | tool_use `Read {file_path}`                            |
//! | `[[tool NAME]]JSON[[/tool]]`       | tool_use `NAME` with JSON as its input                 |
//! | `[[structured]]JSON[[/structured]]` | tool_use `StructuredOutput` with JSON as its input    |
//! | `[[slow N MS]]`                    | text in N deltas ` chunk0`, ` chunk1`, … MS ms apart   |
//! | `[[pause MS]]` (with a tool)       | text ` thinking`, MS ms later ` then acting` and tools |
//! | `[[error STATUS]]`                 | HTTP STATUS with an Anthropic-style error body         |
//! | `[[big BYTES]]`                    | one text block of BYTES `x`                            |
//! | `[[hang]]`                         | never answers (until the mock is dropped)              |
//! | `[[recall]]`                       | text `Prompts so far: p1 \| p2 \| …`                    |
//! | `Create F that prints W, then run it` | tool_use `Write` of F, then `Bash` `python3 F`      |
//! | `Describe these changes as a pull request…` | tool_use `StructuredOutput` `{title, body}`   |
//!
//! Every request, to any path, is recorded as its method and raw target (`targets()`);
//! paths the mock does not serve get the API's 404.
//!
//! Every request must carry an accepted credential (default: the API key `test-key`;
//! `accept_only` changes it), else it gets the API's 401; `credentials()` shows what each
//! request carried. `POST /v1/oauth/token` refreshes a login as the real token endpoint
//! does, answering `refreshed-N` access tokens.
//!
//! Several tool directives in one prompt give several tool_use blocks in one response.
//! A request whose newest user message holds a `tool_result` gets the text
//! `Tool result: <content, first 500 chars>`. Requests without `tools` are the CLI's side
//! calls (session title, …) and get a short fixed text.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpResponse, HttpServer};
use serde_json::{json, Value};

/// Request bodies carry the whole conversation (tool results included), so allow big ones.
const MAX_BODY: usize = 256 * 1024 * 1024;
/// Size of the text deltas a `[[big]]` reply is streamed in.
const BIG_DELTA: usize = 64 * 1024;
/// Answer of side calls; valid JSON so the title generator is happy with it too.
const SIDE_CALL_TEXT: &str = r#"{"title": "Mock session"}"#;

pub struct MockModel {
    pub base_url: String,
    state: Arc<State>,
    handle: Option<ServerHandle>,
    thread: Option<JoinHandle<()>>,
}

impl MockModel {
    /// Binds 127.0.0.1 on a free port and serves from a thread with its own actix System.
    pub fn start() -> MockModel {
        let listener = TcpListener::bind("127.0.0.1:0").expect("mock model: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("mock model: local_addr");
        let state = Arc::new(State::default());
        let server_state = state.clone();
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("mock-model".into())
            .spawn(move || {
                actix_rt::System::new().block_on(async move {
                    let server = HttpServer::new(move || {
                        let recorder = server_state.clone();
                        App::new()
                            .wrap_fn(move |req, srv| {
                                let target = req
                                    .uri()
                                    .path_and_query()
                                    .map_or_else(|| req.path().to_owned(), |p| p.to_string());
                                lock(&recorder.targets).push(Target {
                                    method: req.method().to_string(),
                                    target,
                                });
                                actix_web::dev::Service::call(srv, req)
                            })
                            .app_data(web::Data::from(server_state.clone()))
                            .app_data(web::PayloadConfig::new(MAX_BODY))
                            .route("/v1/messages", web::post().to(messages))
                            .route("/v1/oauth/token", web::post().to(oauth_token))
                            .route("/v1/messages/count_tokens", web::post().to(count_tokens))
                            .default_service(web::to(|| async {
                                error_response(404, "mock: no such endpoint")
                            }))
                    })
                    .workers(2)
                    // The test harness owns the signals; a dropped mock must not linger.
                    .disable_signals()
                    .shutdown_timeout(0)
                    .listen(listener)
                    .expect("mock model: listen")
                    .run();
                    let _ = tx.send(server.handle());
                    let _ = server.await;
                });
            })
            .expect("mock model: spawn thread");
        let handle = rx.recv().expect("mock model: server did not start");
        MockModel {
            base_url: format!("http://{addr}"),
            state,
            handle: Some(handle),
            thread: Some(thread),
        }
    }

    /// Bodies of the main-loop `POST /v1/messages` requests (those with `tools`), in order.
    pub fn requests(&self) -> Vec<Value> {
        self.all_requests()
            .into_iter()
            .filter(|r| !is_side_call(r))
            .collect()
    }

    /// Bodies of every `POST /v1/messages` request, side calls included, in order.
    pub fn all_requests(&self) -> Vec<Value> {
        lock(&self.state.requests).clone()
    }

    /// The method and raw target (path and query, as sent) of every request, in order.
    pub fn targets(&self) -> Vec<Target> {
        lock(&self.state.targets).clone()
    }

    /// From now on, only this credential is accepted.
    pub fn accept_only(&self, credential: Credential) {
        *lock(&self.state.accepted) = Some(credential);
    }

    /// What each request to the Messages API carried, in order.
    pub fn credentials(&self) -> Vec<Seen> {
        lock(&self.state.seen).clone()
    }

    /// Bodies of the token refreshes asked for, in order.
    pub fn refreshes(&self) -> Vec<Value> {
        lock(&self.state.refreshes).clone()
    }
}

/// A credential the mock accepts.
#[derive(Debug, Clone, PartialEq)]
pub enum Credential {
    /// `x-api-key`.
    ApiKey(String),
    /// `Authorization: Bearer`.
    Bearer(String),
}

/// One request as it reached the mock.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub method: String,
    /// The path and query, exactly as sent.
    pub target: String,
}

/// The credential headers of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub api_key: Option<String>,
    pub authorization: Option<String>,
    pub beta: Option<String>,
}

impl Seen {
    fn matches(&self, credential: &Credential) -> bool {
        match credential {
            Credential::ApiKey(key) => self.api_key.as_deref() == Some(key),
            Credential::Bearer(token) => {
                self.authorization.as_deref() == Some(&format!("Bearer {token}"))
            }
        }
    }
}

impl Drop for MockModel {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            // The stop command is sent eagerly; the returned future only awaits completion,
            // which the join below does too. Non-graceful so `[[hang]]` requests are dropped.
            drop(handle.stop(false));
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<Value>>,
    /// `None`: the API key `test-key`.
    accepted: Mutex<Option<Credential>>,
    seen: Mutex<Vec<Seen>>,
    refreshes: Mutex<Vec<Value>>,
    targets: Mutex<Vec<Target>>,
    msg_ids: AtomicU64,
    tool_ids: AtomicU64,
}

impl State {
    fn next_msg_id(&self) -> String {
        format!(
            "msg_mock_{}",
            self.msg_ids.fetch_add(1, Ordering::SeqCst) + 1
        )
    }

    fn next_tool_id(&self) -> String {
        format!(
            "toolu_mock_{}",
            self.tool_ids.fetch_add(1, Ordering::SeqCst) + 1
        )
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking test thread must not hide the requests from the others.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------
// HTTP handlers

async fn messages(
    http: actix_web::HttpRequest,
    state: web::Data<State>,
    body: Bytes,
) -> HttpResponse {
    let header = |name: &str| {
        http.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let seen = Seen {
        api_key: header("x-api-key"),
        authorization: header("authorization"),
        beta: header("anthropic-beta"),
    };
    lock(&state.seen).push(seen.clone());
    let accepted = lock(&state.accepted)
        .clone()
        .unwrap_or_else(|| Credential::ApiKey("test-key".into()));
    if !seen.matches(&accepted) {
        return error_response(401, "mock: invalid x-api-key or bearer token");
    }
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error_response(400, &format!("mock: invalid JSON body: {e}")),
    };
    lock(&state.requests).push(req.clone());

    let reply = choose_reply(&req, &state);
    let content = match reply {
        // Parks only this request's future; the worker keeps serving others.
        Reply::Hang => std::future::pending().await,
        Reply::Error(status) => return error_response(status, "mock error"),
        Reply::Message(m) => m,
    };

    let model = req["model"].as_str().unwrap_or("mock-model").to_string();
    let message = MockMessage {
        id: state.next_msg_id(),
        model,
        input_tokens: 10 + req["messages"].as_array().map_or(0, Vec::len) as u64,
        content,
    };
    if req["stream"].as_bool().unwrap_or(false) {
        HttpResponse::Ok()
            .content_type("text/event-stream")
            .insert_header(("cache-control", "no-cache"))
            .insert_header(("request-id", format!("req_{}", message.id)))
            .streaming(sse_stream(message.sse_events()))
    } else {
        let total_delay = message.content.delay
            * u32::try_from(message.content.delta_count()).unwrap_or(u32::MAX);
        if !total_delay.is_zero() {
            actix_rt::time::sleep(total_delay).await;
        }
        HttpResponse::Ok()
            .insert_header(("request-id", format!("req_{}", message.id)))
            .json(message.to_json())
    }
}

/// The OAuth token endpoint: each refresh gets a new `refreshed-N` access token.
async fn oauth_token(state: web::Data<State>, body: Bytes) -> HttpResponse {
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let n = {
        let mut refreshes = lock(&state.refreshes);
        refreshes.push(req.clone());
        refreshes.len()
    };
    if req["grant_type"] != "refresh_token" || !req["refresh_token"].is_string() {
        return HttpResponse::BadRequest().json(json!({"error": "invalid_grant"}));
    }
    HttpResponse::Ok().json(json!({
        "access_token": format!("refreshed-{n}"),
        "refresh_token": format!("refresh-{n}"),
        "expires_in": 3600,
        "scope": req["scope"],
        "token_type": "Bearer",
    }))
}

async fn count_tokens(body: Bytes) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "input_tokens": 10 + body.len() / 4 }))
}

fn error_response(status: u16, message: &str) -> HttpResponse {
    let error_type = match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    };
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(code)
        .insert_header(("request-id", format!("req_mock_error_{status}")))
        .json(json!({"type": "error", "error": {"type": error_type, "message": message}}))
}

/// Turns (delay, chunk) pairs into a body stream, sleeping before each delayed chunk.
fn sse_stream(
    events: VecDeque<(Duration, String)>,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    futures_util::stream::unfold(events, |mut events| async move {
        let (delay, chunk) = events.pop_front()?;
        if !delay.is_zero() {
            actix_rt::time::sleep(delay).await;
        }
        Some((Ok(Bytes::from(chunk)), events))
    })
}

// ---------------------------------------------------------------------------------------
// Choosing the reply

enum Reply {
    Message(Content),
    Error(u16),
    Hang,
}

/// The content of a reply; `delay` separates consecutive text deltas.
struct Content {
    blocks: Vec<Block>,
    stop_reason: &'static str,
    delay: Duration,
}

enum Block {
    Text(Vec<String>),
    ToolUse {
        id: String,
        name: std::borrow::Cow<'static, str>,
        input: Value,
    },
}

impl Content {
    fn text(deltas: Vec<String>) -> Content {
        Content {
            blocks: vec![Block::Text(deltas)],
            stop_reason: "end_turn",
            delay: Duration::ZERO,
        }
    }

    fn delta_count(&self) -> usize {
        self.blocks
            .iter()
            .map(|b| match b {
                Block::Text(d) => d.len(),
                Block::ToolUse { .. } => 1,
            })
            .sum()
    }
}

fn is_side_call(req: &Value) -> bool {
    req["tools"].as_array().is_none_or(|t| t.is_empty())
}

fn choose_reply(req: &Value, state: &State) -> Reply {
    if is_side_call(req) {
        return Reply::Message(Content::text(vec![SIDE_CALL_TEXT.to_string()]));
    }
    let messages = req["messages"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let newest_user = messages.iter().rev().find(|m| m["role"] == "user");
    let prompt = messages
        .iter()
        .rev()
        .filter(|m| m["role"] == "user")
        .map(newest_human_texts)
        .find(|t| !t.is_empty())
        .and_then(|t| t.last().cloned())
        .unwrap_or_default();
    if let Some(result) = newest_user.and_then(tool_result_text) {
        if let Some(next) = create_and_run_step(&prompt, messages, state) {
            return next;
        }
        let text = format!("Tool result: {}", truncate(&result, 500));
        return Reply::Message(Content::text(split_text(&text, 3)));
    }
    if let Some(first) = create_and_run_step(&prompt, messages, state) {
        return first;
    }
    reply_to_prompt(&prompt, messages, state)
}

/// The README's first chat, `Create FILE that prints WORD, then run it`, played as a
/// model would: a `Write` of the file, then a `Bash` run of it, then a closing text
/// (given by the caller from the tool result). `None` for other prompts and once the
/// run is done.
fn create_and_run_step(prompt: &str, messages: &[Value], state: &State) -> Option<Reply> {
    let rest = prompt.trim().strip_prefix("Create ")?;
    let (file, rest) = rest.split_once(" that prints ")?;
    let word = rest.strip_suffix(", then run it")?;
    let last_tool = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "assistant")
        .and_then(|m| m["content"].as_array())
        .and_then(|blocks| blocks.iter().rev().find(|b| b["type"] == "tool_use"))
        .and_then(|b| b["name"].as_str());
    let newest_is_result = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(tool_result_text)
        .is_some();
    let (name, input) = match (newest_is_result, last_tool) {
        (false, _) => (
            "Write",
            json!({"file_path": file, "content": format!("print({word:?})\n")}),
        ),
        (true, Some("Write")) => (
            "Bash",
            json!({"command": format!("python3 {file}"), "description": "Run the script"}),
        ),
        _ => return None,
    };
    Some(Reply::Message(Content {
        blocks: vec![Block::ToolUse {
            id: state.next_tool_id(),
            name: name.into(),
            input,
        }],
        stop_reason: "tool_use",
        delay: Duration::ZERO,
    }))
}

/// How the server asks the agent for a pull request's title and body.
const PULL_REQUEST_PROMPT: &str = "Describe these changes as a pull request";

fn reply_to_prompt(prompt: &str, messages: &[Value], state: &State) -> Reply {
    let tags = parse_tags(prompt);
    let mut tools = Vec::new();
    for tag in &tags {
        match tag.name {
            "error" => return Reply::Error(tag.arg.trim().parse().unwrap_or(500)),
            "hang" => return Reply::Hang,
            "write" => tools.push(Block::ToolUse {
                id: state.next_tool_id(),
                name: "Write".into(),
                input: json!({"file_path": tag.arg.trim(), "content": tag.body(prompt, "write")}),
            }),
            "bash" => tools.push(Block::ToolUse {
                id: state.next_tool_id(),
                name: "Bash".into(),
                input: json!({"command": tag.body(prompt, "bash"), "description": "mock bash"}),
            }),
            // The tool the CLI offers with `--json-schema`; the CLI ends the
            // turn once it has been called.
            "structured" => tools.push(Block::ToolUse {
                id: state.next_tool_id(),
                name: "StructuredOutput".into(),
                input: serde_json::from_str(tag.body(prompt, "structured")).unwrap_or(Value::Null),
            }),
            // Any tool by name (an MCP server's `mcp__server__tool`).
            "tool" => tools.push(Block::ToolUse {
                id: state.next_tool_id(),
                name: tag.arg.trim().to_owned().into(),
                input: serde_json::from_str(tag.body(prompt, "tool")).unwrap_or(json!({})),
            }),
            "read" => tools.push(Block::ToolUse {
                id: state.next_tool_id(),
                name: "Read".into(),
                input: json!({"file_path": tag.arg.trim()}),
            }),
            _ => {}
        }
    }
    // The server's own request for a pull request's title and body.
    if tools.is_empty() && prompt.starts_with(PULL_REQUEST_PROMPT) {
        tools.push(Block::ToolUse {
            id: state.next_tool_id(),
            name: "StructuredOutput".into(),
            input: json!({
                "title": "Mock title of the pull request",
                "body": "Mock description of the pull request.",
            }),
        });
    }
    if !tools.is_empty() {
        let pause = tags
            .iter()
            .find(|t| t.name == "pause")
            .and_then(|t| t.arg.trim().parse::<u64>().ok());
        let (blocks, delay) = match pause {
            // The second delta comes after the pause; the tools follow it.
            Some(ms) => {
                let mut blocks = vec![Block::Text(vec![" thinking".into(), " then acting".into()])];
                blocks.extend(tools);
                (blocks, Duration::from_millis(ms))
            }
            None => (tools, Duration::ZERO),
        };
        return Reply::Message(Content {
            blocks,
            stop_reason: "tool_use",
            delay,
        });
    }
    for tag in &tags {
        match tag.name {
            "slow" => {
                let mut args = tag.arg.split_whitespace().map(|a| a.parse::<u64>().ok());
                let n = args.next().flatten().unwrap_or(10);
                let ms = args.next().flatten().unwrap_or(100);
                let mut content = Content::text((0..n).map(|i| format!(" chunk{i}")).collect());
                content.delay = Duration::from_millis(ms);
                return Reply::Message(content);
            }
            "big" => {
                let bytes = tag.arg.trim().parse::<usize>().unwrap_or(1 << 20);
                let deltas = (0..bytes)
                    .step_by(BIG_DELTA)
                    .map(|start| "x".repeat(BIG_DELTA.min(bytes - start)))
                    .collect();
                return Reply::Message(Content::text(deltas));
            }
            "recall" => {
                let prompts: Vec<String> = messages
                    .iter()
                    .filter(|m| m["role"] == "user")
                    .flat_map(human_texts)
                    .collect();
                let text = format!("Prompts so far: {}", prompts.join(" | "));
                return Reply::Message(Content::text(split_text(&text, 3)));
            }
            _ => {}
        }
    }
    let text = format!("Mock reply to: {}", truncate(prompt, 200));
    Reply::Message(Content::text(split_text(&text, 3)))
}

/// The text blocks of a user message (a string content counts as one block).
fn texts(message: &Value) -> Vec<&str> {
    match &message["content"] {
        Value::String(s) => vec![s.as_str()],
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .collect(),
        _ => Vec::new(),
    }
}

fn is_interruption(text: &str) -> bool {
    text.trim_start()
        .starts_with("[Request interrupted by user")
}

/// Text a human wrote, as opposed to the CLI's `<system-reminder>`s and interruption markers.
fn is_human(text: &str) -> bool {
    let t = text.trim_start();
    !t.is_empty() && !t.starts_with("<system-reminder>") && !is_interruption(t)
}

fn human_texts(message: &Value) -> Vec<String> {
    texts(message)
        .into_iter()
        .filter(|t| is_human(t))
        .map(|t| t.trim().to_string())
        .collect()
}

/// The human texts after the last interruption marker: the CLI merges consecutive user
/// messages, so an interrupted prompt, the marker and the next prompt arrive as one message.
/// The same happens after a failed API call (the failed prompt, then the new one), so the
/// reply follows the last of these texts.
fn newest_human_texts(message: &Value) -> Vec<String> {
    let texts = texts(message);
    let start = texts
        .iter()
        .rposition(|t| is_interruption(t))
        .map_or(0, |i| i + 1);
    texts[start..]
        .iter()
        .filter(|t| is_human(t))
        .map(|t| t.trim().to_string())
        .collect()
}

/// The text of the tool_result blocks in a user message, if it has any.
fn tool_result_text(message: &Value) -> Option<String> {
    let blocks = message["content"].as_array()?;
    let results: Vec<String> = blocks
        .iter()
        .filter(|b| b["type"] == "tool_result")
        .map(|b| match &b["content"] {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        })
        .collect();
    (!results.is_empty()).then(|| results.join("\n"))
}

/// A `[[name arg]]` directive found in a prompt.
struct Tag<'a> {
    name: &'a str,
    arg: &'a str,
    /// Byte offset just past the closing `]]`.
    end: usize,
}

impl Tag<'_> {
    /// The text between this tag and its `[[/name]]` (or the end of the prompt).
    fn body<'p>(&self, prompt: &'p str, name: &str) -> &'p str {
        let rest = &prompt[self.end..];
        let close = format!("[[/{name}]]");
        rest.find(&close).map_or(rest, |i| &rest[..i])
    }
}

fn parse_tags(prompt: &str) -> Vec<Tag<'_>> {
    let mut tags = Vec::new();
    let mut pos = 0;
    while let Some(open) = prompt[pos..].find("[[").map(|i| pos + i) {
        let Some(close) = prompt[open..].find("]]").map(|i| open + i) else {
            break;
        };
        let inner = &prompt[open + 2..close];
        let (name, arg) = inner.split_once(' ').unwrap_or((inner, ""));
        tags.push(Tag {
            name,
            arg,
            end: close + 2,
        });
        pos = close + 2;
        // Skip over bodies so that text inside a write/bash body is not read as directives.
        if matches!(name, "write" | "bash" | "structured" | "tool") {
            let close_tag = format!("[[/{name}]]");
            pos = prompt[pos..]
                .find(&close_tag)
                .map_or(prompt.len(), |i| pos + i + close_tag.len());
        }
    }
    tags
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

/// Splits text into at most `parts` deltas on char boundaries.
fn split_text(text: &str, parts: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(parts.max(1)).max(1);
    let deltas: Vec<String> = chars.chunks(size).map(|c| c.iter().collect()).collect();
    if deltas.is_empty() {
        vec![String::new()]
    } else {
        deltas
    }
}

// ---------------------------------------------------------------------------------------
// Rendering the reply

struct MockMessage {
    id: String,
    model: String,
    input_tokens: u64,
    content: Content,
}

impl MockMessage {
    fn output_tokens(&self) -> u64 {
        let chars: usize = self
            .content
            .blocks
            .iter()
            .map(|b| match b {
                Block::Text(d) => d.iter().map(String::len).sum(),
                Block::ToolUse { input, .. } => input.to_string().len(),
            })
            .sum();
        // Capped so that `[[big]]` replies don't blow through `--max-budget-usd` limits.
        5 + (chars as u64 / 4).min(2000)
    }

    fn to_json(&self) -> Value {
        let content: Vec<Value> = self
            .content
            .blocks
            .iter()
            .map(|b| match b {
                Block::Text(d) => json!({"type": "text", "text": d.concat()}),
                Block::ToolUse { id, name, input } => {
                    json!({"type": "tool_use", "id": id, "name": name, "input": input})
                }
            })
            .collect();
        json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": self.content.stop_reason,
            "stop_sequence": null,
            "usage": self.usage(self.output_tokens()),
        })
    }

    fn usage(&self, output_tokens: u64) -> Value {
        json!({
            "input_tokens": self.input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        })
    }

    /// The SSE events of the real API, each with the delay to wait before sending it.
    fn sse_events(&self) -> VecDeque<(Duration, String)> {
        let mut events = VecDeque::new();
        let mut push = |delay: Duration, data: Value| {
            let name = data["type"].as_str().unwrap_or("unknown").to_string();
            events.push_back((delay, format!("event: {name}\ndata: {data}\n\n")));
        };
        push(
            Duration::ZERO,
            json!({"type": "message_start", "message": {
                "id": self.id, "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": self.usage(1),
            }}),
        );
        push(Duration::ZERO, json!({"type": "ping"}));
        let mut first_delta = true;
        for (index, block) in self.content.blocks.iter().enumerate() {
            match block {
                Block::Text(deltas) => {
                    push(
                        Duration::ZERO,
                        json!({"type": "content_block_start", "index": index,
                               "content_block": {"type": "text", "text": ""}}),
                    );
                    for delta in deltas {
                        let delay = if first_delta {
                            Duration::ZERO
                        } else {
                            self.content.delay
                        };
                        first_delta = false;
                        push(
                            delay,
                            json!({"type": "content_block_delta", "index": index,
                                   "delta": {"type": "text_delta", "text": delta}}),
                        );
                    }
                }
                Block::ToolUse { id, name, input } => {
                    push(
                        Duration::ZERO,
                        json!({"type": "content_block_start", "index": index,
                               "content_block": {"type": "tool_use", "id": id, "name": name,
                                                 "input": {}}}),
                    );
                    // Two fragments, as the real API never sends the input JSON whole.
                    for part in split_text(&input.to_string(), 2) {
                        push(
                            Duration::ZERO,
                            json!({"type": "content_block_delta", "index": index,
                                   "delta": {"type": "input_json_delta", "partial_json": part}}),
                        );
                    }
                }
            }
            push(
                Duration::ZERO,
                json!({"type": "content_block_stop", "index": index}),
            );
        }
        push(
            Duration::ZERO,
            json!({"type": "message_delta",
                   "delta": {"stop_reason": self.content.stop_reason, "stop_sequence": null},
                   "usage": {"output_tokens": self.output_tokens()}}),
        );
        push(Duration::ZERO, json!({"type": "message_stop"}));
        events
    }
}
