//! What a session actor tells its supervisor. The actor holds these as
//! `Recipient`s (`SupervisorLink`), never the supervisor's address, so the
//! session module does not depend on the supervisor's.

use actix::{Addr, Message, Recipient};

use super::SessionActor;

/// A session's actor stopped (it had nothing left to do); forgotten unless
/// a new one took its place.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ActorStopped {
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

/// The permit's turn ended (or it is no longer wanted).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReleaseTurn {
    pub tenant_id: String,
    pub session_id: String,
}

/// The supervisor, as a session actor reaches it.
#[derive(Clone)]
pub struct SupervisorLink {
    pub stopped: Recipient<ActorStopped>,
    pub request_slot: Recipient<RequestSlot>,
    pub release_slot: Recipient<ReleaseSlot>,
    pub activity: Recipient<Activity>,
    pub request_turn: Recipient<RequestTurn>,
    pub release_turn: Recipient<ReleaseTurn>,
}
