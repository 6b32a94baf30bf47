//! Messages a `SessionActor` accepts.

use actix::Message;

use crate::domain::turn::Turn;

/// Queues a turn; it runs after every turn queued before it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Enqueue(pub Turn);

/// The supervisor grants this session one of its tenant's running-turn permits.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TurnGranted;

/// The supervisor grants this session a live-process slot. `warm`: granted
/// without a turn asking (`WarmSession`, a free slot): start the process
/// anyway, so the first turn finds it running.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SlotGranted {
    pub warm: bool,
}

/// The supervisor wants the slot back; honoured (`true`) only when the
/// session is idle, so a turn is never cut short to make room.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Evict;

/// Stops the session: queued and running turns end with `TurnError::Closed`,
/// the process group is killed, the actor stops.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Close;

/// Internal: look at the queue again (after a failure freed the head).
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Advance;

/// Cancels a job's turn: interrupted if running, dropped if queued here,
/// and if only the database has it queued (never handed to this session),
/// cancelled there with the same events. Fails only when the database
/// cannot be read.
#[derive(Message)]
#[rtype(result = "Result<CancelReply, crate::db::DbError>")]
pub struct CancelJob {
    pub job_id: String,
}

pub enum CancelReply {
    /// Cancelled or being interrupted; the receiver fires once the cancelled
    /// turn (its events and the job's final state) is stored.
    Cancelling(tokio::sync::oneshot::Receiver<()>),
    /// Not queued here nor in the database: it already ended.
    NotQueued,
}

/// Shutdown: start no more turns; let the running one finish until
/// `deadline`, then interrupt it. Answers once the session is idle. Queued
/// jobs stay queued in the database for the next start.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain {
    pub deadline: std::time::Instant,
}

/// Subscribes to the session's live events. Answered once every event
/// emitted before the subscription is either stored or in `pending`, so
/// stored + pending + live has no gap (overlaps are removed by `seq`).
#[derive(Message)]
#[rtype(result = "Subscription")]
pub struct Subscribe;

pub struct Subscription {
    /// Every event emitted after the subscription, until the subscriber
    /// falls too far behind (then the channel closes).
    pub live: tokio::sync::mpsc::Receiver<crate::domain::event::NumberedEvent>,
    /// Events of the running turn not yet stored when it subscribed.
    pub pending: Vec<crate::domain::event::NumberedEvent>,
    /// The seq of the last event emitted when it subscribed (0: none).
    pub last_seq: i64,
}

/// Interrupts the running turn (the CLI's `interrupt`); its partial answer
/// is kept, marked interrupted, and the next queued turn starts.
#[derive(Message)]
#[rtype(result = "InterruptReply")]
pub struct Interrupt;

pub enum InterruptReply {
    /// The receiver fires once the interrupted turn is stored.
    Interrupting(tokio::sync::oneshot::Receiver<()>),
    /// No turn is running.
    Idle,
}

/// Answers one of the pending tool approvals of the live process; the reply
/// comes once the decision is stored.
#[derive(Message)]
#[rtype(result = "Result<crate::domain::approval::Resolved, super::approvals::ResolveError>")]
pub struct ResolveApproval {
    pub id: String,
    pub decision: super::approvals::Decision,
}

/// Points the session at `workspace` (canonical, already checked to be
/// inside the tenant's area). Refused while a turn runs or waits; on success
/// the live process has exited, the transcript is where the next process will
/// look for it, and the new directory is stored.
#[derive(Message)]
#[rtype(result = "Result<(), super::relocation::ChangeWorkspaceError>")]
pub struct ChangeWorkspace {
    pub workspace: std::path::PathBuf,
}

/// Numbers, stores and publishes an event that is not a turn's (the
/// server's git work on the session).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Announce(pub crate::domain::event::StreamEvent);
