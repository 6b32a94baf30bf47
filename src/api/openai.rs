//! OpenAI-compatible surface: `POST /v1/chat/completions` (whole, or
//! streamed as `chat.completion.chunk` events ending with `data: [DONE]`) and
//! `GET /v1/models`, so existing OpenAI clients can talk to a session.
//!
//! A completion is one turn on a session of the caller's tenant, queued
//! through the same path as `/chat` (`services::turns::submit`): the
//! `X-Session` header, else the `user` field, names the session (created on
//! first use, default `openai`); the last user message is the prompt (the
//! session keeps its own context, so earlier messages are not replayed);
//! `model` is the turn's model unless it is the advertised alias.

use crate::identity::Who;
use actix_web::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use claude_code_api_core::error::ServiceError;
use futures_util::stream;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use utoipa::ToSchema;

use super::schema_parts::{object, SSE_FRAMING};
use crate::api::views::openai::DEFAULT_SESSION;
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use claude_code_api_core::domain::attachment::{BlockSource, MessageBlock};
use claude_code_api_core::domain::event::{NumberedEvent, StreamEvent};
use claude_code_api_core::domain::session::TurnOverrides;
use claude_code_api_core::domain::turn::TurnError;
use claude_code_api_core::domain::turn::TurnRequest;
use claude_code_api_core::services::sessions::validate_name;
use claude_code_api_core::services::turns::{self, Reply, Submitted, Target};

/// The model id `/v1/models` advertises: the session's own model.
pub const DEFAULT_MODEL: &str = "claude-code";

/// The fields of an OpenAI chat completion request this server uses; the
/// rest (temperature, tools, …) are accepted and ignored, as the agent's
/// own settings govern them.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct CompletionRequest {
    /// The turn's model; `claude-code` (or none) keeps the session's own.
    #[serde(default)]
    model: Option<String>,
    /// Only the last `user` message is sent: the session keeps the context.
    /// At least one `user` message; each has text (a string, or `text` parts).
    messages: Vec<Message>,
    /// Stream `chat.completion.chunk` events, ending with `data: [DONE]`.
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    /// The session's name (created on first use) unless `X-Session` names one.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")]
    user: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct StreamOptions {
    /// A last chunk with `usage` and no choices.
    #[serde(default)]
    include_usage: bool,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct Message {
    /// `system`, `user`, `assistant`, …
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

/// A string, or an array of parts of which the `text` ones count.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct ContentPart {
    /// `text` and `image_url` parts are read (of the last user message);
    /// others are ignored.
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    /// An `image_url` part's image, as a `data:` URL (the server fetches
    /// nothing).
    #[serde(default)]
    image_url: Option<ImageUrl>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct ImageUrl {
    /// `data:image/png;base64,…` (PNG, JPEG, GIF or WebP).
    #[schema(
        pattern = "^data:image/(png|jpeg|gif|webp);base64,([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
    )]
    url: String,
    /// Accepted and ignored.
    #[serde(default)]
    detail: Option<String>,
}

/// The image parts of a message as attachment blocks; a URL that is not
/// a base64 `data:` URL is a 422.
fn images_of(content: &Content) -> Result<Vec<MessageBlock>, ApiError> {
    let Content::Parts(parts) = content else {
        return Ok(Vec::new());
    };
    parts
        .iter()
        .filter(|p| p.kind == "image_url")
        .map(|p| {
            let url = p.image_url.as_ref().map(|i| i.url.as_str()).unwrap_or("");
            let (media_type, data) = url
                .strip_prefix("data:")
                .and_then(|rest| rest.split_once(";base64,"))
                .ok_or_else(|| {
                    ApiError::from(ServiceError::Validation(
                        "image_url.url must be a data: URL with base64 content (the server fetches nothing)"
                            .into(),
                    ))
                })?;
            Ok(MessageBlock::Image {
                source: BlockSource::Base64 {
                    media_type: media_type.to_owned(),
                    data: data.to_owned(),
                },
            })
        })
        .collect()
}

/// An OpenAI `chat.completion`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatCompletion {
    id: String,
    /// `chat.completion`.
    object: &'static str,
    created: i64,
    model: String,
    system_fingerprint: Option<String>,
    choices: Vec<Choice>,
    usage: CompletionUsage,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Choice {
    index: u32,
    message: AssistantMessage,
    #[schema(value_type = Option<Object>)]
    logprobs: Option<Value>,
    /// `stop`.
    finish_reason: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssistantMessage {
    /// `assistant`.
    role: &'static str,
    content: String,
    refusal: Option<String>,
}

/// Token counts in OpenAI's terms.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompletionUsage {
    prompt_tokens: i64,
    completion_tokens: i64,
    total_tokens: i64,
}

/// `GET /v1/models`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    /// `list`.
    object: &'static str,
    data: Vec<Model>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Model {
    id: String,
    /// `model`.
    object: &'static str,
    created: i64,
    owned_by: &'static str,
}

/// The text of a message: a string, or the text parts of a content array.
fn text_of(content: &Content) -> Option<String> {
    match content {
        Content::Text(s) => Some(s.clone()),
        Content::Parts(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter(|p| p.kind == "text")
                .filter_map(|p| p.text.as_deref())
                .collect();
            (!texts.is_empty()).then(|| texts.join("\n"))
        }
    }
}

impl CompletionRequest {
    /// The prompt (last user message) and the turn's overrides.
    fn prompt(&self) -> Result<TurnRequest, ApiError> {
        let has_text = |m: &&Message| {
            m.content
                .as_ref()
                .and_then(text_of)
                .is_some_and(|t| !t.trim().is_empty())
        };
        if let Some(i) = self
            .messages
            .iter()
            .position(|m| m.role == "user" && !has_text(&m))
        {
            return Err(ApiError::from(ServiceError::Validation(format!(
                "messages[{i}]: a user message must have text content"
            ))));
        }
        let last = self
            .messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .ok_or_else(|| {
                ApiError::from(ServiceError::Validation(
                    "messages must contain a user message".into(),
                ))
            })?;
        let message = last.content.as_ref().and_then(text_of).ok_or_else(|| {
            ApiError::from(ServiceError::Validation(
                "the last user message must have text content".into(),
            ))
        })?;
        let model = self
            .model
            .clone()
            .filter(|m| !m.is_empty() && m != DEFAULT_MODEL);
        let attachments = match &last.content {
            Some(content) => images_of(content)?,
            None => Vec::new(),
        };
        Ok(TurnRequest {
            message,
            attachments,
            overrides: TurnOverrides {
                model,
                ..TurnOverrides::default()
            },
        })
    }
}

/// The session a request names: `X-Session`, else `user`, else the default.
fn session_name(req: &HttpRequest, body: &CompletionRequest) -> Result<String, ApiError> {
    let name = match req.headers().get("x-session") {
        Some(v) => v
            .to_str()
            .map_err(|_| {
                ApiError::from(ServiceError::Validation(
                    "X-Session must be plain text".into(),
                ))
            })?
            .trim()
            .to_owned(),
        None => body
            .user
            .clone()
            .unwrap_or_else(|| DEFAULT_SESSION.to_owned()),
    };
    validate_name(&name)?;
    // `user` must be a name even when the header chose the session.
    if let Some(user) = &body.user {
        validate_name(user)?;
    }
    Ok(name)
}

/// OpenAI usage from the turn's token counts.
fn usage(tokens: &Value) -> CompletionUsage {
    let n = |k: &str| tokens[k].as_i64().unwrap_or(0);
    let prompt =
        n("input_tokens") + n("cache_creation_input_tokens") + n("cache_read_input_tokens");
    let completion = n("output_tokens");
    CompletionUsage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
    }
}

fn completion_id() -> String {
    format!("chatcmpl-{}", uuid::Uuid::new_v4().simple())
}

/// An OpenAI chat completion: one turn on the session named by `X-Session`
/// or `user` (default `openai`), created on first use. Errors are problem
/// documents, as everywhere in this server.
#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    tag = "openai",
    params(("X-Session" = Option<String>, Header, pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$", description = "The session to talk to (before `user`)")),
    request_body = CompletionRequest,
    responses(
        (status = 200, description = "The completion; with `stream: true`, an event stream of `chat.completion.chunk` objects ending with `data: [DONE]`",
            content(
                (ChatCompletion = "application/json"),
                (String = "text/event-stream"),
            ),
        ),
        (status = 402, description = "The tenant's or session's budget is used up", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The tenant is at its session limit", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body, or the message's attachments, larger than allowed (MAX_ATTACHMENTS_MB)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "An attachment whose bytes are not an image or document type the model reads, or not the type named", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No user message with text, or a bad session name", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "The key's or tenant's request rate is used up, or the tenant's running turns stayed at their limit too long (`too-many-running-turns`); see `Retry-After`", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The CLI failed the turn", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The turn timed out", body = Problem, content_type = "application/problem+json"),
        (status = 507, description = "The tenant's disk quota is reached (a running turn that reaches it ends with this problem)", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn chat_completions(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    body: super::envelope::TurnBody<CompletionRequest, false>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let name = session_name(&req, &body)?;
    let request = body.prompt()?;
    let model = body.model.clone().unwrap_or_else(|| DEFAULT_MODEL.into());
    let id = completion_id();
    let created = chrono::Utc::now().timestamp();
    // The same path as `/chat`: every check, the queue, the audit entry.
    let target = Target::OpenOrCreate(&name);
    if body.stream.unwrap_or(false) {
        let submitted =
            turns::submit(&state.services, &who, target, request, Reply::Stream).await?;
        let Submitted::Stream(rx) = submitted else {
            return Err(ApiError::from(ServiceError::internal(
                "a stream was asked for",
            )));
        };
        let include_usage = body.stream_options.is_some_and(|o| o.include_usage);
        let chunks = Chunks {
            id,
            created,
            model,
            include_usage,
            started: false,
        };
        let mut res = HttpResponse::Ok().streaming(chunk_stream(rx, chunks));
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        res.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return Ok(res);
    }
    let submitted = turns::submit(&state.services, &who, target, request, Reply::Whole).await?;
    let Submitted::Whole { outcome, .. } = submitted else {
        return Err(ApiError::from(ServiceError::internal(
            "a whole answer was asked for",
        )));
    };
    // No 202 here: OpenAI clients know no such answer; the turn waits.
    let response = outcome
        .await
        .map_err(|_| ApiError::from(TurnError::Closed))??;
    Ok(HttpResponse::Ok().json(ChatCompletion {
        id,
        object: "chat.completion",
        created,
        model,
        system_fingerprint: None,
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content: response.content,
                refusal: None,
            },
            logprobs: None,
            finish_reason: "stop",
        }],
        usage: usage(&response.usage),
    }))
}

/// What every chunk of one streamed completion shares.
struct Chunks {
    id: String,
    created: i64,
    model: String,
    include_usage: bool,
    started: bool,
}

impl Chunks {
    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": null,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        })
    }

    /// The chunks one turn event becomes, and whether the stream ends.
    fn on_event(&mut self, event: NumberedEvent) -> (Vec<Value>, bool) {
        let mut out = Vec::new();
        let mut role = || {
            let first = !self.started;
            self.started = true;
            first
        };
        match event.event {
            StreamEvent::Delta(delta) => {
                let text = delta.text;
                let delta = if role() {
                    json!({"role": "assistant", "content": text})
                } else {
                    json!({"content": text})
                };
                out.push(self.chunk(delta, None));
                (out, false)
            }
            StreamEvent::Done(answer) => {
                if role() {
                    // No token streamed (e.g. a tool-only answer): send the text whole.
                    let text = &answer.content;
                    out.push(self.chunk(json!({"role": "assistant", "content": text}), None));
                }
                out.push(self.chunk(json!({}), Some("stop")));
                if self.include_usage {
                    let usage = usage(&answer.usage);
                    let mut last = self.chunk(json!({}), None);
                    last["choices"] = json!([]);
                    last["usage"] = json!(usage);
                    out.push(last);
                }
                (out, true)
            }
            StreamEvent::Error(failed) => {
                // The OpenAI stream error shape; clients raise it.
                out.push(json!({"error": {
                    "message": failed.problem.detail,
                    "type": failed.problem.kind,
                    "code": failed.problem.status,
                }}));
                (out, true)
            }
            _ => (out, false),
        }
    }
}

fn sse_data(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

/// Turn events → OpenAI chunks, then `data: [DONE]`.
fn chunk_stream(
    rx: mpsc::Receiver<NumberedEvent>,
    chunks: Chunks,
) -> impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> {
    stream::unfold(Some((rx, chunks)), |state| async move {
        let (mut rx, mut chunks) = state?;
        loop {
            let Some(event) = rx.recv().await else {
                return Some((Ok(Bytes::from_static(b"data: [DONE]\n\n")), None));
            };
            let (out, end) = chunks.on_event(event);
            if out.is_empty() && !end {
                continue;
            }
            let mut bytes: Vec<u8> = out.iter().flat_map(|v| sse_data(v).to_vec()).collect();
            if end {
                bytes.extend_from_slice(b"data: [DONE]\n\n");
                return Some((Ok(Bytes::from(bytes)), None));
            }
            return Some((Ok(Bytes::from(bytes)), Some((rx, chunks))));
        }
    })
}

/// `GET /v1/models`: the alias for "the session's model", and the server's
/// default model when one is configured.
#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "openai",
    responses((status = 200, description = "The models a completion may name", body = ModelList)),
)]
pub async fn list_models(state: web::Data<AppState>, _caller: Who) -> HttpResponse {
    let mut ids = vec![DEFAULT_MODEL.to_owned()];
    if let Some(model) = &state.services.settings.sessions.model {
        ids.push(model.clone());
    }
    let data = ids
        .into_iter()
        .map(|id| Model {
            id,
            object: "model",
            created: 0,
            owned_by: "claude-code-api",
        })
        .collect();
    HttpResponse::Ok().json(ModelList {
        object: "list",
        data,
    })
}

/// The OpenAI stream: unnamed events whose data is a `chat.completion.chunk`
/// or an `{error}`, then the literal `[DONE]` (not JSON).
pub fn completion_events() -> Value {
    let chunk = object(
        &["id", "object", "created", "model", "choices"],
        json!({
            "id": {"type": "string"},
            "object": {"type": "string", "const": "chat.completion.chunk"},
            "created": {"type": "integer"},
            "model": {"type": "string"},
            "system_fingerprint": {"type": ["string", "null"]},
            "choices": {"type": "array", "items": object(
                &["index", "delta", "finish_reason"],
                json!({
                    "index": {"type": "integer"},
                    "delta": {"type": "object", "properties": {
                        "role": {"type": "string", "const": "assistant"},
                        "content": {"type": "string"},
                    }, "additionalProperties": false},
                    "logprobs": {"type": "null"},
                    "finish_reason": {"enum": ["stop", null]},
                }),
            )},
            "usage": {"$ref": "#/components/schemas/CompletionUsage"},
        }),
    );
    let error = object(
        &["error"],
        json!({"error": object(&["message", "type", "code"], json!({
            "message": {"type": "string"},
            "type": {"type": "string"},
            "code": {"type": "integer"},
        }))}),
    );
    json!({
        "description": format!(
            "{SSE_FRAMING} Events have no name (`message`); each `data` is a \
             `chat.completion.chunk`, or `{{error}}` when the turn fails; the last is the \
             literal `[DONE]`, which is not JSON."
        ),
        "type": "object",
        "required": ["event", "data"],
        "properties": {"event": {"type": "string", "const": "message"}, "retry": {"type": "integer"}},
        "if": {"properties": {"data": {"type": "string", "const": "[DONE]"}}},
        "else": {"properties": {"data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"oneOf": [chunk, error]},
        }}},
    })
}

/// What this surface checks of a completion's messages, which derived schemas
/// cannot say: there is a user message, and every user message has text.
pub fn message_rules(schemas: &mut Value) {
    let text = json!({"type": "string", "pattern": "^[^\\x00]*[^\\s\\x00][^\\x00]*$"});
    schemas["Message"]["if"] = json!({"properties": {"role": {"type": "string", "const": "user"}}});
    schemas["Message"]["then"] = json!({
        "required": ["content"],
        "properties": {"content": {"anyOf": [
            text,
            {"type": "array", "contains": {
                "type": "object",
                "required": ["type", "text"],
                "properties": {"type": {"type": "string", "const": "text"}, "text": text},
            }},
        ]}},
    });
    schemas["CompletionRequest"]["properties"]["messages"]["contains"] = json!({
        "type": "object",
        "required": ["role"],
        "properties": {"role": {"type": "string", "const": "user"}},
    });
}
