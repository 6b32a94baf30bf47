//! Messages the `Supervisor` accepts.

use crate::db::models::lease::Lease;
use actix::{Addr, Message};

use crate::actors::session::SessionActor;
use crate::db::models::session::Session;

/// The actor of a session, started if it is not live. Fails only when the
/// database cannot be read.
#[derive(Message)]
#[rtype(result = "Result<Addr<SessionActor>, crate::db::DbError>")]
pub struct OpenSession(pub Session, pub Option<Lease>);

/// Starts the session's CLI process ahead of its first turn when a
/// live-process slot is free (never evicting anyone for it), opening its
/// actor if needed. No-op with `WARM_ON_CREATE=false`. Fire and forget.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WarmSession(pub Session, pub Option<Lease>);

/// A session's actor stopped (it had nothing left to do); forgotten unless
/// a new one took its place.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ActorStopped {
    pub session_id: String,
}

/// Stops a session's actor (if live) and waits until it has stopped.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseSession {
    pub session_id: String,
}

/// A session needs a live-process slot; granted later with `SlotGranted`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RequestSlot {
    pub session_id: String,
    pub addr: Addr<SessionActor>,
}

/// A session's process is gone; its slot is free.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReleaseSlot {
    pub session_id: String,
}

/// A session has nothing to do (or something again).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Activity {
    pub session_id: String,
    pub idle: bool,
}

/// Numbers for health and tests.
#[derive(Message)]
#[rtype(result = "SupervisorStats")]
pub struct Stats;

/// Live processes and queues, as `/health` reports them.
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct SupervisorStats {
    /// Sessions with a live actor (idle ones stop and leave).
    pub live_sessions: usize,
    /// CLI processes this server has started since it started.
    pub processes_started: u64,
    pub live_processes: usize,
    pub waiting_for_slot: usize,
    pub running_turns: usize,
    pub waiting_for_turn: usize,
}

/// Stops every session (server shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ShutdownAll;

/// Shutdown: every session stops taking turns and finishes (or, after the
/// deadline, interrupts) its running one. Answers when all are idle.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DrainAll {
    pub deadline: std::time::Instant,
}

/// A session's next turn needs one of its tenant's running-turn permits
/// (`max_running_turns`, else `MAX_RUNNING_TURNS_PER_TENANT`, as stored when
/// the request arrives); granted later with `TurnGranted`, in request order
/// within the tenant.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RequestTurn {
    pub tenant_id: String,
    pub session_id: String,
    pub addr: Addr<SessionActor>,
}

/// A tenant's limits were changed in the database: its running-turn limit
/// is read again and applied to its live sessions. Answered once applied
/// (waiting turns the new limit allows have been granted).
#[derive(Message)]
#[rtype(result = "()")]
pub struct TenantLimitsChanged {
    pub tenant_id: String,
}

/// The permit's turn ended (or it is no longer wanted).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReleaseTurn {
    pub tenant_id: String,
    pub session_id: String,
}

/// The ids of a tenant's sessions whose turn runs now (holds a permit).
#[derive(Message)]
#[rtype(result = "std::collections::HashSet<String>")]
pub struct RunningSessions {
    pub tenant_id: String,
}
