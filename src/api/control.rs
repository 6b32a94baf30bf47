//! Live control of a session: its event stream (with replay from
//! `Last-Event-ID`), interrupting the running turn, and tool approvals.

use crate::identity::Who;
use claude_code_api_core::error::ServiceError;

use actix_web::{web, HttpRequest, HttpResponse, Responder};
use actix_web_lab::sse;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::envelope::{self, Envelope};
use super::event_stream::{to_sse, KEEP_ALIVE};
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use claude_code_api_core::actors::session::approvals::Decision;
use claude_code_api_core::domain::approval::{ApprovalView, Resolved};
use claude_code_api_core::services::events::{self, FeedItem, Reset};
use claude_code_api_core::services::{approvals, turns};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Replay every stored event after this seq (as `Last-Event-ID`).
    #[param(minimum = 0)]
    after: Option<i64>,
}

/// An event id as clients send it back: the digits of a seq (at most 18, so
/// it fits an `i64`).
const EVENT_ID_PATTERN: &str = "^[0-9]{1,18}$";

fn parse_event_id(value: &str) -> Option<i64> {
    let ok = (1..=18).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| value.parse().ok()).flatten()
}

/// `GET /sessions/{name}/events`: replay after `Last-Event-ID` / `?after=`,
/// then live. Subscribes first, then replays from the database, then drops
/// live events already replayed: no gap, no duplicate.
#[utoipa::path(
    get,
    path = "/api/v1/sessions/{name}/events",
    tag = "control",
    description = "Server-sent events of everything that happens on the session, chats and jobs \
        alike: `turn_started`, `assistant`, `delta`, `tool`, `tool_result`, \
        `permission_request`, `permission_resolved`, `done`, `error`, `turn_interrupted`, \
        `job_status`. Each `id` is the session's event number. With `Last-Event-ID` (or \
        `?after=`) the stored events after it are replayed first, then the stream goes live; \
        if they were purged, or the id is past the session's last event, the first event is \
        `reset` (`{reason, history_url, last_event_id}`, the session's last event id).",
    params(
        ("name" = String, Path, description = "The session's name"),
        ("Last-Event-ID" = Option<String>, Header, pattern = "^[0-9]{1,18}$", description = "Replay the stored events after this id (an event's `id`)"),
        EventsQuery,
    ),
    responses(
        (status = 200, description = "The session's events", content_type = "text/event-stream", body = String),
        (status = 404, description = "No session of that name in this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A `Last-Event-ID` that is not an event id, or a negative `after`", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn session_events(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    name: web::Path<String>,
    query: web::Query<EventsQuery>,
) -> Result<impl Responder, ApiError> {
    let after = match req.headers().get("Last-Event-ID") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| parse_event_id(v.trim()))
                .ok_or_else(|| {
                    ApiError::from(ServiceError::Validation(format!(
                        "Last-Event-ID must be an event id ({EVENT_ID_PATTERN})"
                    )))
                })?,
        ),
        None => query.after,
    };
    if query.after.is_some_and(|n| n < 0) {
        return Err(ApiError::from(ServiceError::Validation(
            "after must be 0 or more".into(),
        )));
    }
    let feed = events::feed(&state.services, &who, &name, after).await?;
    let stream = feed.map(|item| match item {
        FeedItem::Event(event) => to_sse(event),
        FeedItem::Reset(reset) => reset_event(&reset),
    });
    Ok(sse::Sse::from_infallible_stream(stream).with_keep_alive(KEEP_ALIVE))
}

/// The `reset` event: the client's position is not in this session's
/// stored numbering. Ahead of the last event it carries the head's id,
/// where a reconnect resumes.
fn reset_event(reset: &Reset) -> sse::Event {
    let data = sse::Data::new_json(json!({
        "reason": reset.reason,
        "history_url": format!("/api/v1/sessions/{}/history", reset.session_name),
        "last_event_id": reset.last_event_id,
    }))
    .unwrap_or_else(|_| sse::Data::new("{}"))
    .event("reset");
    sse::Event::Data(if reset.ahead {
        data.id(reset.last_event_id.to_string())
    } else {
        data
    })
}

/// What an interrupt did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Interrupted {
    /// Always `true`: a turn was running and was told to stop.
    interrupted: bool,
    /// The partial answer was stored (marked interrupted) within the wait.
    stored: bool,
}

/// `POST /sessions/{name}/interrupt`: stops the running turn; 409 when none runs.
#[utoipa::path(
    post,
    path = "/api/v1/sessions/{name}/interrupt",
    tag = "control",
    params(("name" = String, Path, description = "The session's name")),
    responses(
        (status = 200, description = "The running turn was stopped", body = Envelope<Interrupted>),
        (status = 404, description = "No session of that name in this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No turn is running", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn interrupt_session(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let stored = turns::interrupt(&state.services, &who, &name).await?;
    Ok(envelope::ok(
        &req,
        Interrupted {
            interrupted: true,
            stored,
        },
    ))
}

/// `GET /sessions/{name}/approvals`: the pending ones, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/sessions/{name}/approvals",
    tag = "control",
    params(("name" = String, Path, description = "The session's name")),
    responses(
        (status = 200, description = "The pending approvals", body = Envelope<Vec<ApprovalView>>),
        (status = 404, description = "No session of that name in this tenant", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list_approvals(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (rows, session) = approvals::pending(&state.services, &who, &name).await?;
    let items: Vec<ApprovalView> = rows.iter().map(|r| r.view(&session.name)).collect();
    Ok(envelope::ok(&req, items))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DecisionKind {
    Allow,
    Deny,
}

/// `session`: allow this tool for the rest of the CLI process.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Remember {
    Session,
}

/// The answer to a tool approval. Its schema in the document is written
/// out below (`decide_approval_schemas`), which states the rules of
/// `validate` that a derived schema cannot.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideApproval {
    decision: DecisionKind,
    /// With `allow`: the tool's input to use instead (an object).
    // Not serialized: only the body's NUL check serializes this type, and a
    // tool's input may hold any JSON (it stays JSON-escaped on its way to the
    // CLI and the database).
    #[serde(default, skip_serializing)]
    #[schema(value_type = Option<Object>)]
    updated_input: Option<Value>,
    /// With `deny`: told to the agent.
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    remember: Option<Remember>,
}

/// The schemas of `DecideApproval`, stated for the document: `allow` may change the input and be
/// remembered; `deny` may only carry a message.
pub fn decide_approval_schemas() -> (Value, Value) {
    let message =
        json!({"type": ["string", "null"], "description": "With `deny`: told to the agent"});
    let allow = json!({
        "type": "object",
        "description": "Runs the tool, with `updated_input` if given.",
        "required": ["decision"],
        "properties": {
            "decision": {"type": "string", "const": "allow"},
            "updated_input": {"type": ["object", "null"], "description": "The tool's input to use instead"},
            "message": message,
            "remember": {"type": ["string", "null"], "enum": ["session", null], "description": "`session`: allow this tool for the rest of the CLI process"},
        },
        "additionalProperties": false,
    });
    let deny = json!({
        "type": "object",
        "description": "Refuses the tool call; `message` is told to the agent.",
        "required": ["decision"],
        "properties": {
            "decision": {"type": "string", "const": "deny"},
            "updated_input": {"type": "null"},
            "message": message,
            "remember": {"type": "null"},
        },
        "additionalProperties": false,
    });
    (allow, deny)
}

impl DecideApproval {
    fn validate(self) -> Result<Decision, ApiError> {
        if let Some(input) = &self.updated_input {
            if !input.is_object() {
                return Err(ApiError::from(ServiceError::Validation(
                    "updated_input must be a JSON object (the tool's input)".into(),
                )));
            }
        }
        let allow = matches!(self.decision, DecisionKind::Allow);
        if !allow && (self.updated_input.is_some() || self.remember.is_some()) {
            return Err(ApiError::from(ServiceError::Validation(
                "updated_input and remember only go with decision \"allow\"".into(),
            )));
        }
        Ok(Decision {
            allow,
            updated_input: self.updated_input,
            message: self.message,
            remember_session: self.remember.is_some(),
        })
    }
}

/// `POST /sessions/{name}/approvals/{id}`: answers a pending approval.
#[utoipa::path(
    post,
    path = "/api/v1/sessions/{name}/approvals/{id}",
    tag = "control",
    params(
        ("name" = String, Path, description = "The session's name"),
        ("id" = String, Path, description = "The approval's id"),
    ),
    request_body = DecideApproval,
    responses(
        (status = 200, description = "The decision, as the CLI received it", body = Envelope<Resolved>),
        (status = 404, description = "No such session or approval in this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The approval is no longer pending", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid decision", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn decide_approval(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    path: web::Path<(String, String)>,
    body: super::envelope::JsonObject<DecideApproval>,
) -> Result<HttpResponse, ApiError> {
    let (name, id) = path.into_inner();
    let decision = body.into_inner().validate()?;
    let resolved = approvals::decide(&state.services, &who, &name, &id, decision).await?;
    Ok(envelope::ok(&req, resolved))
}
