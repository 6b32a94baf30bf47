//! Messages the `Supervisor` accepts from the services. What a session
//! actor sends it is `actors::session::upward`.

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

/// The session's actor when it is live on this node (by session id); no
/// lease is taken for it.
#[derive(Message)]
#[rtype(result = "Option<Addr<SessionActor>>")]
pub struct LiveSession(pub String);

/// Stops a session's actor (if live) and waits until it has stopped.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseSession {
    pub session_id: String,
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

/// A tenant's limits were changed in the database: its running-turn limit
/// is read again and applied to its live sessions. Answered once applied
/// (waiting turns the new limit allows have been granted).
#[derive(Message)]
#[rtype(result = "()")]
pub struct TenantLimitsChanged {
    pub tenant_id: String,
}

pub use crate::actors::session::upward::{
    Activity, ActorStopped, ReleaseSlot, ReleaseTurn, RequestSlot, RequestTurn,
};
