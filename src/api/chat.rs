//! Chat: one turn on a session, answered whole (`/chat`) or streamed as
//! server-sent events (`/chat/stream`). Both wait their turn in the
//! session's queue; a streaming client that leaves does not stop the turn.

use crate::identity::Who;
use claude_code_api_core::error::ServiceError;

use actix_web::{web, HttpRequest, HttpResponse, Responder};
use actix_web_lab::sse;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_stream::wrappers::ReceiverStream;

use super::envelope::Envelope;
use super::event_stream::{to_sse, KEEP_ALIVE};
use super::{envelope, idempotency};
use crate::api::views::chat::WaitingForApproval;
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use actix_web::http::StatusCode;
use claude_code_api_core::domain::attachment::MessageInput;
use claude_code_api_core::domain::session::{Effort, OutputFormat, PermissionMode, TurnOverrides};
use claude_code_api_core::domain::turn::ChatResponse;
use claude_code_api_core::domain::turn::TurnRequest;
use claude_code_api_core::services::turns::{self, Answer, Reply, Submitted, Target};
use utoipa::ToSchema;

/// One turn: the prompt, and what this turn alone changes.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    /// The prompt: text (not empty, at most 1 MiB), or a list of text,
    /// image and document blocks.
    message: MessageInput,
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

impl ChatRequest {
    fn into_turn(self) -> Result<TurnRequest, ApiError> {
        let json_schema = turns::output_schema(self.output_format.as_ref())?;
        Ok(TurnRequest::from_input(
            self.message,
            TurnOverrides {
                model: self.model,
                system: self.system,
                effort: self.effort,
                permission_mode: self.permission_mode,
                json_schema,
                ..TurnOverrides::default()
            },
        ))
    }
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
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Replays the stored answer of an earlier request with this key and body (with `Idempotent-Replayed: true`), kept 24 hours"),
    ),
    request_body = ChatRequest,
    responses(
        (status = 200, description = "The answer", body = Envelope<ChatResponse>),
        (status = 202, description = "The turn waits on a tool approval", body = Envelope<WaitingForApproval>),
        (status = 402, description = "The tenant's or session's budget is used up", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No session of that name in this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The turn was cancelled, or a request with this idempotency key is still running", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body, or the message's attachments, larger than allowed (MAX_ATTACHMENTS_MB)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "An attachment whose bytes are not an image or document type the model reads, or not the type named", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid field, a refused message, or an idempotency key used with another body", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "The key's or tenant's request rate is used up, or the tenant's running turns stayed at their limit too long (`too-many-running-turns`); see `Retry-After`", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The CLI failed the turn", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The session is shutting down", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The turn timed out", body = Problem, content_type = "application/problem+json"),
        (status = 507, description = "The tenant's disk quota is reached (a running turn that reaches it ends with this problem)", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn chat(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    name: web::Path<String>,
    body: super::envelope::TurnBody<ChatRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let guard = match idempotency::begin(&state, &who, &req, &body).await? {
        idempotency::Begin::Replay(response) => return Ok(response),
        idempotency::Begin::Run(guard) => guard,
    };
    let (status, document) = idempotency::run(guard, || async {
        let request = body.into_turn()?;
        let submitted = turns::submit(
            &state.services,
            &who,
            Target::Named(&name),
            request,
            Reply::Whole,
        )
        .await?;
        let (status, document) = match turns::answer(&state.services, submitted).await? {
            Answer::Done(response) => (StatusCode::OK, envelope::document(&req, response)),
            Answer::Waiting { approval_id } => (
                StatusCode::ACCEPTED,
                envelope::document(&req, WaitingForApproval::new(&name, approval_id)),
            ),
        };
        Ok((status, document.to_string()))
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
        (status = 413, description = "The body, or the message's attachments, larger than allowed (MAX_ATTACHMENTS_MB)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "An attachment whose bytes are not an image or document type the model reads, or not the type named", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid field, or a refused message", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The session is shutting down", body = Problem, content_type = "application/problem+json"),
        (status = 507, description = "The tenant's disk quota is reached (a running turn that reaches it ends with this problem)", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn chat_stream(
    state: web::Data<AppState>,
    who: Who,
    name: web::Path<String>,
    body: super::envelope::TurnBody<ChatRequest>,
) -> Result<impl Responder, ApiError> {
    let request = body.into_inner().into_turn()?;
    let submitted = turns::submit(
        &state.services,
        &who,
        Target::Named(&name),
        request,
        Reply::Stream,
    )
    .await?;
    let Submitted::Stream(rx) = submitted else {
        return Err(ApiError::from(ServiceError::internal(
            "a stream was asked for",
        )));
    };
    let events = ReceiverStream::new(rx).map(to_sse);
    Ok(sse::Sse::from_infallible_stream(events).with_keep_alive(KEEP_ALIVE))
}
