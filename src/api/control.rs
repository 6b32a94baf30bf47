//! Live control of a session: its event stream (with replay from
//! `Last-Event-ID`), interrupting the running turn, and tool approvals.

use crate::identity::Who;
use claude_code_api_core::error::ServiceError;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse, Responder};
use actix_web_lab::sse;
use futures_util::{stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio_stream::wrappers::ReceiverStream;
use utoipa::{IntoParams, ToSchema};

use super::envelope::{self, Envelope};
use super::event_stream::{to_sse, KEEP_ALIVE};
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use claude_code_api_core::actors::session::approvals::Decision;
use claude_code_api_core::actors::session::messages::Subscription;
use claude_code_api_core::db::models::event;
use claude_code_api_core::domain::approval::{ApprovalView, Resolved};
use claude_code_api_core::domain::event::NumberedEvent;
use claude_code_api_core::services::{approvals, sessions, turns, Requester};

/// Stored events read per query while replaying.
const REPLAY_PAGE: i64 = 500;

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
    if let Some(events) = from_storage(&state, &who, &name, after).await? {
        return Ok(sse::Sse::from_infallible_stream(events).with_keep_alive(KEEP_ALIVE));
    }
    let (
        session,
        Subscription {
            live,
            pending,
            last_seq,
        },
    ) = sessions::subscribe(&state.services, &who, &name).await?;
    // Without a position the client starts live.
    let requested = after.unwrap_or(last_seq).max(0);
    // A position past the last event (a session deleted and made again under
    // the same name, a typo) is not this session's numbering: the client is
    // told the head and goes live from there, instead of waiting for an id
    // that may never come.
    let ahead = requested > last_seq;
    let after = requested.min(last_seq);
    let mut reset = ahead;
    let mut first_page = Vec::new();
    if after < last_seq {
        // The first page now: it decides whether a reset comes first.
        let (session_id, tenant) = (session.id.clone(), who.tenant().clone());
        let (rows, oldest) = claude_code_api_core::db::run(&state.services.pool, move |c| {
            let rows = event::list_after(c, &tenant, &session_id, after, last_seq, REPLAY_PAGE)?;
            Ok((rows, event::min_seq(c, &session_id)?))
        })
        .await?;
        // Events between the client's position and the oldest one kept
        // were purged (retention): it must reload the history.
        let first = rows
            .first()
            .map(|e| e.seq)
            .or(pending.first().map(|e| e.seq))
            .or(oldest);
        reset = first.is_none_or(|first| first > after + 1);
        first_page = rows;
    }
    let head = reset.then(|| Ok(reset_event(&session.name, last_seq, ahead)));
    let replay = Replay {
        pool: state.services.pool.clone(),
        tenant: who.tenant().clone(),
        session_id: session.id.clone(),
        sent: after,
        upto: last_seq,
        more: first_page.len() as i64 == REPLAY_PAGE,
        page: first_page
            .iter()
            .filter_map(claude_code_api_core::actors::session::hub::to_stream_event)
            .collect(),
        pending: Some(pending),
    };
    // Every event up to `last_seq` is stored or pending; later ones come live.
    let live = ReceiverStream::new(live)
        .filter(move |e| std::future::ready(e.seq > last_seq))
        .map(|e| Ok(to_sse(e)));
    let events = stream::iter(head)
        .chain(replay.stream().map(|e| e.map(to_sse)))
        .chain(live)
        // A replay that cannot go on ends the stream rather than leave a
        // gap: the client resumes with `Last-Event-ID`.
        .take_while(|e| std::future::ready(e.is_ok()))
        .filter_map(|e| std::future::ready(e.ok()))
        .boxed_local();
    Ok(sse::Sse::from_infallible_stream(events).with_keep_alive(KEEP_ALIVE))
}

/// The `reset` event: the client's position is not in this session's
/// stored numbering. Ahead of the last event, nothing is replayed: the head
/// is where a reconnect resumes.
fn reset_event(session_name: &str, last_seq: i64, ahead: bool) -> sse::Event {
    let reason = if ahead {
        "the requested id is past the session's last event; reload the history"
    } else {
        "events after the requested id are no longer stored; reload the history"
    };
    let data = sse::Data::new_json(json!({
        "reason": reason,
        "history_url": format!("/api/v1/sessions/{session_name}/history"),
        "last_event_id": last_seq,
    }))
    .unwrap_or_else(|_| sse::Data::new("{}"))
    .event("reset");
    sse::Event::Data(if ahead {
        data.id(last_seq.to_string())
    } else {
        data
    })
}

type EventStream = futures_util::stream::LocalBoxStream<'static, sse::Event>;

/// In a cluster, the stream of a session another node runs: served here
/// from storage, woken by the database's notifications of new events
/// (`db::notify`), polling once a second when none come. `None` when the
/// session runs here or nowhere (this node subscribes to its own actor).
async fn from_storage(
    state: &AppState,
    who: &Requester,
    name: &str,
    after: Option<i64>,
) -> Result<Option<EventStream>, ApiError> {
    let node = &state.services.node;
    if !node.is_clustered() {
        return Ok(None);
    }
    let session = sessions::load(&state.services, who, name).await?;
    // Listening before reading: no wake-up falls between the two.
    let wake = node.event_wakeups();
    let (id, me) = (session.id.clone(), node.instance_id().to_owned());
    let (tenant, name) = (who.tenant().0.clone(), session.name.clone());
    let elsewhere = claude_code_api_core::db::run(&state.services.pool, move |c| {
        let runs_elsewhere =
            claude_code_api_core::db::models::lease::owner_of_named(c, &tenant, &name, &me)?
                .is_some();
        let stored = (event::max_seq(c, &id)?, event::min_seq(c, &id)?);
        Ok(runs_elsewhere.then_some(stored))
    })
    .await?;
    let Some((last_seq, oldest)) = elsewhere else {
        return Ok(None);
    };
    let requested = after.unwrap_or(last_seq).max(0);
    let ahead = requested > last_seq;
    let start = requested.min(last_seq);
    let purged = start < last_seq && oldest.is_none_or(|first| first > start + 1);
    let head = (ahead || purged).then(|| reset_event(&session.name, last_seq, ahead));
    let tail = Tail {
        pool: state.services.pool.clone(),
        tenant: who.tenant().clone(),
        session_id: session.id,
        sent: start,
        wake,
        page: std::collections::VecDeque::new(),
    };
    Ok(Some(
        stream::iter(head)
            .chain(tail.stream().map(to_sse))
            .boxed_local(),
    ))
}

/// How often a stream served from storage looks for new events when no
/// notification woke it (the listener is down, or a wake-up was missed).
const TAIL_POLL: Duration = Duration::from_secs(1);

/// A session's stored events from `sent` on, read as they are stored.
struct Tail {
    pool: claude_code_api_core::db::DbPool,
    tenant: claude_code_api_core::db::models::TenantId,
    session_id: String,
    sent: i64,
    wake: tokio::sync::broadcast::Receiver<String>,
    page: std::collections::VecDeque<NumberedEvent>,
}

impl Tail {
    fn stream(self) -> impl futures_util::Stream<Item = NumberedEvent> {
        stream::unfold(self, |mut tail| async move {
            let event = tail.next().await?;
            Some((event, tail))
        })
    }

    /// The next stored event; `None` once the session is gone (deleted) or
    /// storage cannot be read (the client resumes with `Last-Event-ID`).
    async fn next(&mut self) -> Option<NumberedEvent> {
        loop {
            if let Some(event) = self.page.pop_front() {
                self.sent = event.seq;
                return Some(event);
            }
            let (tenant, session_id, after) =
                (self.tenant.clone(), self.session_id.clone(), self.sent);
            let rows = claude_code_api_core::db::run(&self.pool, move |c| {
                let rows =
                    event::list_after(c, &tenant, &session_id, after, i64::MAX, REPLAY_PAGE)?;
                let exists = !rows.is_empty()
                    || claude_code_api_core::db::models::session::find_by_id(c, &session_id)?
                        .is_some();
                Ok((rows, exists))
            })
            .await;
            match rows {
                Ok((rows, _)) if !rows.is_empty() => {
                    self.page = rows
                        .iter()
                        .filter_map(claude_code_api_core::actors::session::hub::to_stream_event)
                        .collect();
                    continue;
                }
                Ok((_, false)) => return None,
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "cannot read stored events to stream");
                    return None;
                }
            }
            self.woken().await;
        }
    }

    /// Waits for a notification about this session, or `TAIL_POLL`.
    async fn woken(&mut self) {
        let poll = tokio::time::sleep(TAIL_POLL);
        tokio::pin!(poll);
        loop {
            tokio::select! {
                heard = self.wake.recv() => match heard {
                    Ok(id) if id == self.session_id => return,
                    Ok(_) => {}
                    // Missed some: one of them may have been ours.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        poll.as_mut().await;
                        return;
                    }
                },
                () = &mut poll => return,
            }
        }
    }
}

/// The stored events a client missed, read a page at a time as it takes
/// them (a slow client never makes the server hold them all), then the
/// ones not yet stored when it subscribed.
struct Replay {
    pool: claude_code_api_core::db::DbPool,
    tenant: claude_code_api_core::db::models::TenantId,
    session_id: String,
    /// The last seq handed out.
    sent: i64,
    /// The last seq to replay (later ones come live).
    upto: i64,
    /// Whether storage may hold more after `page`.
    more: bool,
    page: std::collections::VecDeque<NumberedEvent>,
    pending: Option<Vec<NumberedEvent>>,
}

impl Replay {
    fn stream(self) -> impl futures_util::Stream<Item = Result<NumberedEvent, ()>> {
        stream::unfold(Some(self), |replay| async move {
            let mut replay = replay?;
            match replay.next().await {
                Ok(Some(event)) => Some((Ok(event), Some(replay))),
                Ok(None) => None,
                Err(()) => Some((Err(()), None)),
            }
        })
    }

    async fn next(&mut self) -> Result<Option<NumberedEvent>, ()> {
        loop {
            if let Some(event) = self.page.pop_front() {
                // Pending events may have been stored meanwhile: once each.
                if event.seq > self.sent {
                    self.sent = event.seq;
                    return Ok(Some(event));
                }
                continue;
            }
            if self.more {
                let (tenant, session_id) = (self.tenant.clone(), self.session_id.clone());
                let (after, upto) = (self.sent, self.upto);
                let rows = claude_code_api_core::db::run(&self.pool, move |c| {
                    event::list_after(c, &tenant, &session_id, after, upto, REPLAY_PAGE)
                })
                .await
                .map_err(|e| tracing::error!(error = %e, "cannot read stored events to replay"))?;
                self.more = rows.len() as i64 == REPLAY_PAGE;
                self.page = rows
                    .iter()
                    .filter_map(claude_code_api_core::actors::session::hub::to_stream_event)
                    .collect();
                continue;
            }
            match self.pending.take() {
                Some(pending) => self.page = pending.into(),
                None => return Ok(None),
            }
        }
    }
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
/// out in `openapi.rs` (`decide_approval`), which states the rules of
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
