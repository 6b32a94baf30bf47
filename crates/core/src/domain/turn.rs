//! A turn as the rest of the server sees it: what goes in, the events that
//! come out while it runs, and how it ends.

use tokio::sync::{mpsc, oneshot};

pub use crate::domain::answer::{ChatResponse, ToolUse};
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
