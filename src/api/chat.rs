//! Chat: one turn on a session, answered whole (`/chat`) or streamed as
//! server-sent events (`/chat/stream`). Both wait their turn in the
//! session's queue; a streaming client that leaves does not stop the turn.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse, Responder};
use actix_web_lab::sse;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use super::envelope::Envelope;
use super::sessions::load_session;
use super::AppState;
use super::{envelope, idempotency};
use crate::actors::session::messages::Enqueue;
use crate::actors::session::turn::ChatResponse;
use crate::actors::session::turn::{Turn, TurnError, TurnEvent};
use crate::actors::supervisor::messages::OpenSession;
use crate::error::{ApiError, Problem};
use crate::security::auth::Caller;
use crate::spec::{Effort, OutputFormat, PermissionMode, TurnOverrides};
use actix_web::http::StatusCode;
use utoipa::ToSchema;

/// Longest prompt accepted, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Events buffered for a streaming client before it counts as too slow.
const STREAM_BUFFER: usize = 4096;
/// Comment pings keep proxies from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// One turn: the prompt, and what this turn alone changes.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    /// The prompt; not empty, at most 1 MiB.
    #[schema(pattern = "^[^\\x00]*[^\\s\\x00][^\\x00]*$")]
    message: String,
    /// The model of this turn only.
    #[serde(default)]
    model: Option<String>,
    /// A system prompt appended for this turn only.
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    effort: Option<Effort>,
    #[serde(default)]
    permission_mode: Option<PermissionMode>,
    /// Structured output: the answer's `structured_output` follows the schema.
    #[serde(default)]
    output_format: Option<OutputFormat>,
}

/// The schema of an `output_format`, or a 422.
pub fn json_schema(format: Option<&OutputFormat>) -> Result<Option<serde_json::Value>, ApiError> {
    format
        .map(OutputFormat::json_schema)
        .transpose()
        .map_err(ApiError::Validation)
}

/// A quick 402 when the tenant's budget is already used up. The turn itself
/// reserves its share when it starts (see the session actor), which is what
/// holds under concurrency.
pub async fn check_budget(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    let tenant = caller.tenant.0.clone();
    let exceeded = crate::db::run(&state.pool, move |c| {
        crate::db::models::budget::tenant_exceeded(c, &tenant)
    })
    .await?;
    match exceeded {
        Some(e) => Err(ApiError::BudgetExceeded {
            scope: e.scope,
            spent_micros: e.spent_micros,
            limit_micros: e.limit_micros,
        }),
        None => Ok(()),
    }
}

/// The permission ceiling: the mode a session or turn would run in (the
/// turn's, else the session's, else the server default) must be allowed for
/// the server and the caller's tenant; else a 422 naming the allowed modes.
pub async fn check_permission_mode(
    state: &AppState,
    caller: &Caller,
    session_mode: Option<PermissionMode>,
    turn_mode: Option<PermissionMode>,
) -> Result<(), ApiError> {
    let mode = turn_mode
        .or(session_mode)
        .unwrap_or(state.settings.claude_permission_mode);
    let tenant = caller.tenant.0.clone();
    let tenant_modes = crate::db::run(&state.pool, move |c| {
        Ok(crate::db::models::tenant::find_tenant(c, &tenant)?
            .and_then(|t| t.allowed_permission_modes))
    })
    .await?;
    crate::spec::check_permission_mode(
        mode,
        &state.settings.allowed_permission_modes,
        tenant_modes.as_deref(),
    )
    .map_err(ApiError::Validation)
}

/// The permission mode a stored session asks for, if any.
pub fn session_mode(row: &crate::db::models::session::Session) -> Option<PermissionMode> {
    serde_json::from_str::<crate::spec::SessionSpec>(&row.spec)
        .ok()
        .and_then(|spec| spec.permission_mode)
}

/// Optional deny patterns (`DENY_PATTERNS`): a guard rail against obvious
/// misuse, not a security boundary (rephrasing gets around any list).
pub fn check_deny_patterns(
    settings: &crate::config::Settings,
    message: &str,
) -> Result<(), ApiError> {
    if settings.deny_patterns.is_empty() {
        return Ok(());
    }
    let lower = message.to_lowercase();
    match settings
        .deny_patterns
        .iter()
        .find(|p| lower.contains(p.as_str()))
    {
        Some(pattern) => Err(ApiError::Validation(format!(
            "the message contains {pattern:?}, which this server refuses (DENY_PATTERNS)"
        ))),
        None => Ok(()),
    }
}

/// A prompt must say something and stay within `MAX_MESSAGE_BYTES`.
pub fn validate_message(message: &str) -> Result<(), ApiError> {
    if message.trim().is_empty() {
        return Err(ApiError::Validation("message must not be empty".into()));
    }
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(ApiError::Validation(format!(
            "message is {} bytes; the limit is {MAX_MESSAGE_BYTES}",
            message.len()
        )));
    }
    Ok(())
}

impl ChatRequest {
    fn validate(self) -> Result<(String, TurnOverrides), ApiError> {
        validate_message(&self.message)?;
        let json_schema = json_schema(self.output_format.as_ref())?;
        Ok((
            self.message,
            TurnOverrides {
                model: self.model,
                system: self.system,
                effort: self.effort,
                permission_mode: self.permission_mode,
                json_schema,
            },
        ))
    }
}

/// Queues a turn on the caller's session.
async fn enqueue(
    req: &HttpRequest,
    state: &AppState,
    caller: &Caller,
    name: &str,
    turn: Turn,
) -> Result<(), ApiError> {
    let row = load_session(state, caller, name).await?;
    check_budget(state, caller).await?;
    check_deny_patterns(&state.settings, &turn.message)?;
    check_permission_mode(
        state,
        caller,
        session_mode(&row),
        turn.overrides.permission_mode,
    )
    .await?;
    let prompt: String = turn
        .message
        .chars()
        .take(super::audit::PROMPT_CHARS)
        .collect();
    let addr = state.supervisor.send(OpenSession(row)).await??;
    addr.send(Enqueue(turn)).await?;
    super::audit::record_prompt(state, req, caller, "chat", name, &prompt);
    Ok(())
}

/// The answer of a chat that waits on a tool approval for longer than
/// `APPROVAL_HOLD_SECS`: the turn goes on; decide the approval, then follow
/// the session's events.
#[derive(Debug, Serialize, ToSchema)]
pub struct WaitingForApproval {
    /// `waiting_for_approval`.
    status: &'static str,
    approval_id: String,
    approval_url: String,
    events_url: String,
}

/// One turn, answered whole. Waits its turn in the session's queue. With
/// `Idempotency-Key`, a repeat of the same request returns the stored
/// answer instead of running again.
#[utoipa::path(
    post,
    path = "/api/v1/sessions/{name}/chat",
    tag = "chat",
    params(
        ("name" = String, Path, description = "The session's name"),
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Replays the stored answer of an earlier request with this key"),
    ),
    request_body = ChatRequest,
    responses(
        (status = 200, description = "The answer", body = Envelope<ChatResponse>),
        (status = 202, description = "The turn waits on a tool approval", body = Envelope<WaitingForApproval>),
        (status = 402, description = "The tenant's or session's budget is used up", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No session of that name in this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The turn was cancelled, or the idempotency key was used for another request", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid field, or a refused message", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The CLI failed the turn", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The session is shutting down", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The turn timed out", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn chat(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    body: super::envelope::JsonObject<ChatRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let guard = match idempotency::begin(&state, &caller, &req, &body).await? {
        idempotency::Begin::Replay(response) => return Ok(response),
        idempotency::Begin::Run(guard) => guard,
    };
    let (status, document) = idempotency::run(guard, || async {
        let (message, overrides) = body.validate()?;
        let (reply, mut outcome) = oneshot::channel();
        let (approvals_tx, mut approvals) = mpsc::unbounded_channel();
        let turn = Turn {
            job_id: None,
            message,
            overrides,
            subscriber: None,
            reply: Some(reply),
            span: tracing::Span::current(),
            approvals: Some(approvals_tx),
        };
        enqueue(&req, &state, &caller, &name, turn).await?;
        let hold = state.settings.approval_hold;
        // The answer, unless the turn waits on one approval for longer than
        // the hold: then 202 with the approval's URL (the turn goes on).
        let mut waiting_on: Option<String> = None;
        let mut deadline = tokio::time::Instant::now();
        let result = loop {
            tokio::select! {
                result = &mut outcome => break result,
                Some(notice) = approvals.recv() => {
                    if notice.is_some() {
                        deadline = tokio::time::Instant::now() + hold;
                    }
                    waiting_on = notice;
                }
                () = tokio::time::sleep_until(deadline), if waiting_on.is_some() => {
                    let id = waiting_on.unwrap_or_default();
                    let data = WaitingForApproval {
                        status: "waiting_for_approval",
                        approval_url: format!("/api/v1/sessions/{name}/approvals/{id}"),
                        events_url: format!("/api/v1/sessions/{name}/events"),
                        approval_id: id,
                    };
                    let document = envelope::document(&req, data).to_string();
                    return Ok((StatusCode::ACCEPTED, document));
                }
            }
        };
        let response = result.map_err(|_| ApiError::from(TurnError::Closed))??;
        let document = envelope::document(&req, response).to_string();
        Ok((StatusCode::OK, document))
    })
    .await?;
    Ok(HttpResponse::build(status)
        .content_type("application/json")
        .body(document))
}

/// One turn, streamed as server-sent events: `turn_started`, `delta`
/// (`{text}`), `assistant`, `tool`, `tool_result`, `permission_request`,
/// `permission_resolved`, then `done` (the answer, as `/chat` gives it) or
/// `error` (a problem document). Each event's `id` is the session's event
/// number: resume a dropped stream on `/events` with `Last-Event-ID`.
#[utoipa::path(
    post,
    path = "/api/v1/sessions/{name}/chat/stream",
    tag = "chat",
    params(("name" = String, Path, description = "The session's name")),
    request_body = ChatRequest,
    responses(
        (status = 200, description = "The turn's events", content_type = "text/event-stream", body = String),
        (status = 402, description = "The tenant's budget is used up", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No session of that name in this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid field, or a refused message", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The session is shutting down", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn chat_stream(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    body: super::envelope::JsonObject<ChatRequest>,
) -> Result<impl Responder, ApiError> {
    let (message, overrides) = body.into_inner().validate()?;
    let (tx, rx) = mpsc::channel::<TurnEvent>(STREAM_BUFFER);
    let turn = Turn {
        job_id: None,
        message,
        overrides,
        subscriber: Some(tx),
        reply: None,
        span: tracing::Span::current(),
        approvals: None,
    };
    enqueue(&req, &state, &caller, &name, turn).await?;
    let events = ReceiverStream::new(rx).map(|event| {
        let data = sse::Data::new_json(&event.data)
            .unwrap_or_else(|_| sse::Data::new("{}"))
            .event(event.kind.clone())
            .id(event.seq.to_string());
        sse::Event::Data(data)
    });
    Ok(sse::Sse::from_infallible_stream(events).with_keep_alive(KEEP_ALIVE))
}
