//! A turn as the rest of the server sees it: what goes in, the events that
//! come out while it runs, and how it ends.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::domain::event::NumberedEvent;
use crate::domain::session::TurnOverrides;

/// A prompt and what this turn alone changes.
pub struct TurnRequest {
    pub message: String,
    pub overrides: TurnOverrides,
}

/// One prompt waiting in, or running at the head of, a session's queue.
#[derive(Debug)]
pub struct Turn {
    /// Set when the turn runs a job: its row follows the turn.
    pub job_id: Option<String>,
    pub message: String,
    pub overrides: TurnOverrides,
    /// Live events for a streaming client; dropped if it falls behind.
    pub subscriber: Option<mpsc::Sender<NumberedEvent>>,
    /// The outcome, for a waiting client.
    pub reply: Option<oneshot::Sender<Result<ChatResponse, TurnError>>>,
    /// The span it was queued in (the request's, with its request id): the
    /// turn's log lines are recorded inside it.
    pub span: tracing::Span,
    /// Told `Some(id)` for each tool approval this turn starts waiting on and
    /// `None` when one is settled (a sync client answers 202 with the
    /// approval's URL rather than hold the request past the hold).
    pub approvals: Option<mpsc::UnboundedSender<Option<String>>>,
}

/// A tool call the agent made during a turn.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ToolUse {
    pub name: String,
    #[schema(value_type = Object)]
    pub input: Value,
}

/// The answer to a chat turn (also the payload of the `done` event).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ChatResponse {
    /// The session's name, as clients address it.
    pub session_id: String,
    /// The CLI's own conversation id.
    pub cli_session_id: Option<String>,
    /// The answer's text; with `output_format`, the structured result as JSON text.
    pub content: String,
    /// With `output_format`: the object the answer returned, following its schema.
    #[schema(value_type = Option<Object>)]
    pub structured_output: Option<Value>,
    /// USD, for display; `cost_micros` is exact.
    pub cost: f64,
    pub cost_micros: i64,
    pub duration_ms: i64,
    pub num_turns: i64,
    pub tools_used: Vec<ToolUse>,
    pub is_error: bool,
    pub stop_reason: Option<String>,
    /// The model's token counts, as the CLI reported them.
    #[schema(value_type = Object)]
    pub usage: Value,
    /// Cut short by `POST /sessions/{name}/interrupt`: `content` is the
    /// partial answer, kept in history marked interrupted.
    pub interrupted: bool,
}

/// Why a turn did not produce an answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TurnError {
    /// The CLI ended the turn with an error (API failure, bad resume, …).
    #[error("{message}")]
    Cli {
        message: String,
        response: Option<Box<ChatResponse>>,
    },
    /// The CLI process could not start or died mid-turn.
    #[error("{0}")]
    Process(String),
    /// No output for `CLAUDE_TIMEOUT_SECONDS`.
    #[error("the CLI produced no output for {0} seconds; the turn was stopped and the process restarted")]
    Timeout(u64),
    /// The session was deleted or the server is stopping.
    #[error("the session was closed or the server is shutting down before the turn finished")]
    Closed,
    /// A budget (tenant or session) is used up; amounts in micro-USD.
    #[error("the {scope} budget is used up")]
    OverBudget {
        scope: &'static str,
        spent_micros: i64,
        limit_micros: i64,
    },
    /// The tenant's running-turn permits stayed taken too long for a chat.
    #[error("this tenant already runs its maximum of turns at once; retry shortly")]
    Busy,
    /// Stopped on request (job cancel).
    #[error("the turn was cancelled")]
    Cancelled,
    /// The tenant's agents keep as much on disk as its quota allows: the
    /// turn was stopped (or never started) until files are deleted.
    #[error("{message}")]
    DiskQuota {
        message: String,
        used_bytes: u64,
        limit_bytes: u64,
    },
}
