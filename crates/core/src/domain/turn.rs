//! A turn as the rest of the server sees it: what goes in, the events that
//! come out while it runs, and how it ends.

use tokio::sync::{mpsc, oneshot};

pub use crate::domain::answer::{ChatResponse, ToolUse};
use crate::domain::event::NumberedEvent;
use crate::domain::session::TurnOverrides;

/// A prompt and what this turn alone changes.
pub struct TurnRequest {
    /// The text of the prompt (a message of blocks: its text blocks).
    pub message: String,
    /// Image and document blocks, read and checked when the turn is
    /// submitted (a `file` source needs the session's workspace).
    pub attachments: Vec<crate::domain::attachment::MessageBlock>,
    pub overrides: TurnOverrides,
}

impl TurnRequest {
    /// A prompt of text only.
    pub fn text(message: String, overrides: TurnOverrides) -> TurnRequest {
        TurnRequest {
            message,
            attachments: Vec::new(),
            overrides,
        }
    }

    /// A client's `message`, string or blocks.
    pub fn from_input(
        input: crate::domain::attachment::MessageInput,
        overrides: TurnOverrides,
    ) -> TurnRequest {
        let (message, attachments) = input.split();
        TurnRequest {
            message,
            attachments,
            overrides,
        }
    }
}

/// One prompt waiting in, or running at the head of, a session's queue.
#[derive(Debug)]
pub struct Turn {
    /// Set when the turn runs a job: its row follows the turn.
    pub job_id: Option<String>,
    pub message: String,
    /// Content blocks sent with the text, before it.
    pub attachments: Vec<crate::domain::attachment::Attachment>,
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
    /// When the turn reached each step on its way (see `TurnClock`).
    pub clock: TurnClock,
}

/// The moments a turn passes, for the breakdown of a turn's time: queued
/// (handed to its session), permitted (a running-turn permit of its
/// tenant), written to the CLI (after the disk and budget checks), the
/// CLI's first output, its answer, and its record stored.
#[derive(Debug, Clone, Copy)]
pub struct TurnClock {
    pub queued: std::time::Instant,
    pub permitted: Option<std::time::Instant>,
    pub written: Option<std::time::Instant>,
    pub first_output: Option<std::time::Instant>,
    pub answered: Option<std::time::Instant>,
}

impl TurnClock {
    pub fn start() -> TurnClock {
        TurnClock {
            queued: std::time::Instant::now(),
            permitted: None,
            written: None,
            first_output: None,
            answered: None,
        }
    }

    /// Each step's share, in order: (stage, time from the step before).
    /// A step not reached ends the list.
    pub fn stages(&self, stored: std::time::Instant) -> Vec<(&'static str, std::time::Duration)> {
        let steps = [
            ("permit", self.permitted),
            ("cli_write", self.written),
            ("first_output", self.first_output),
            ("answer", self.answered),
            ("store", Some(stored)),
        ];
        let mut out = Vec::new();
        let mut from = self.queued;
        for (stage, at) in steps {
            let Some(at) = at else { break };
            out.push((stage, at.saturating_duration_since(from)));
            from = at;
        }
        out
    }
}

/// What a turn without any model credential is answered.
pub const NO_MODEL_CREDENTIAL: &str = "no model credential: run `claude-code-api login`, or set ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN, or give the tenant its own (PUT /api/v1/admin/tenants/{id}/model-credential)";

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
    /// Neither the tenant nor the server has a model credential: the CLI
    /// would only be refused (and retry for minutes), so it is not asked.
    #[error("{NO_MODEL_CREDENTIAL}")]
    NoModelCredential,
    /// The tenant's agents keep as much on disk as its quota allows: the
    /// turn was stopped (or never started) until files are deleted.
    #[error("{message}")]
    DiskQuota {
        message: String,
        used_bytes: u64,
        limit_bytes: u64,
    },
}
