use std::time::Instant;

use actix::{ActorFutureExt, Addr, AsyncContext, Handler, ResponseActFuture, WrapFuture};

use super::messages::*;
use super::Supervisor;
use crate::actors::session::messages::Close;
use crate::actors::session::SessionActor;
use crate::db;

impl Handler<OpenSession> for Supervisor {
    type Result = Result<Addr<SessionActor>, db::DbError>;

    fn handle(&mut self, msg: OpenSession, ctx: &mut Self::Context) -> Self::Result {
        Ok(self.open_actor(msg.0, msg.1, ctx))
    }
}

impl Handler<WarmSession> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: WarmSession, ctx: &mut Self::Context) {
        if !self.runtime.settings.sessions.warm_on_create {
            return;
        }
        let session_id = msg.0.id.clone();
        let addr = self.open_actor(msg.0, msg.1, ctx);
        self.warm(&session_id, &addr);
    }
}

impl Handler<LiveSession> for Supervisor {
    type Result = Option<Addr<SessionActor>>;

    fn handle(&mut self, msg: LiveSession, _: &mut Self::Context) -> Self::Result {
        self.live_actor(&msg.0)
    }
}

/// How long the registry must stay empty before freed memory is given back.
const RELEASE_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

impl Handler<ActorStopped> for Supervisor {
    type Result = ();

    /// Forgets a stopped actor, unless a new one already took its place.
    fn handle(&mut self, msg: ActorStopped, ctx: &mut Self::Context) {
        if self.live_actor(&msg.session_id).is_none() {
            self.sessions.remove(&msg.session_id);
            self.epochs.remove(&msg.session_id);
            // Nothing runs here for it now: any node may take it at once.
            self.release_lease(&msg.session_id, ctx);
        }
        if self.sessions.is_empty() && !self.release_scheduled {
            // Quiet for a moment after the last actor stopped: what the
            // burst allocated is free now, give it back.
            self.release_scheduled = true;
            ctx.run_later(RELEASE_AFTER, |act, _| {
                act.release_scheduled = false;
                if act.sessions.is_empty() {
                    act.sessions.shrink_to_fit();
                    crate::blocking::spawn(crate::memory::release_freed);
                }
            });
        }
    }
}

impl Handler<CloseSession> for Supervisor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: CloseSession, _: &mut Self::Context) -> Self::Result {
        let addr = self
            .sessions
            .remove(&msg.session_id)
            .and_then(|a| a.upgrade());
        self.waiting.retain(|(id, _)| *id != msg.session_id);
        Box::pin(
            async move {
                if let Some(addr) = addr {
                    let _ = addr.send(Close).await;
                }
            }
            .into_actor(self)
            .map(move |(), act, ctx| {
                act.drop_turns_of(&msg.session_id);
                // The actor released its slot while closing; make sure.
                act.holders.remove(&msg.session_id);
                act.idle_since.remove(&msg.session_id);
                act.evicting.remove(&msg.session_id);
                act.balance(ctx);
            }),
        )
    }
}

impl Handler<RequestSlot> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: RequestSlot, ctx: &mut Self::Context) {
        if self.holders.contains(&msg.session_id) {
            self.idle_since.remove(&msg.session_id);
            msg.addr
                .do_send(crate::actors::session::messages::SlotGranted { warm: false });
            return;
        }
        if !self.waiting.iter().any(|(id, _)| *id == msg.session_id) {
            self.waiting.push_back((msg.session_id, msg.addr));
        }
        self.balance(ctx);
    }
}

impl Handler<ReleaseSlot> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: ReleaseSlot, ctx: &mut Self::Context) {
        self.holders.remove(&msg.session_id);
        self.idle_since.remove(&msg.session_id);
        self.evicting.remove(&msg.session_id);
        self.balance(ctx);
    }
}

impl Handler<Activity> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: Activity, ctx: &mut Self::Context) {
        if !msg.idle {
            self.idle_since.remove(&msg.session_id);
            return;
        }
        if self.holders.contains(&msg.session_id) {
            self.idle_since.insert(msg.session_id, Instant::now());
            if !self.waiting.is_empty() {
                self.balance(ctx);
            }
        }
    }
}

impl Handler<Stats> for Supervisor {
    type Result = actix::MessageResult<Stats>;

    fn handle(&mut self, _: Stats, _: &mut Self::Context) -> Self::Result {
        actix::MessageResult(SupervisorStats {
            live_sessions: self.sessions.values().filter_map(|a| a.upgrade()).count(),
            processes_started: self
                .runtime
                .spawns
                .load(std::sync::atomic::Ordering::Relaxed),
            live_processes: self.holders.len(),
            waiting_for_slot: self.waiting.len(),
            running_turns: self.turns.values().map(|t| t.running.len()).sum(),
            waiting_for_turn: self.turns.values().map(|t| t.waiting.len()).sum(),
        })
    }
}

impl Handler<ShutdownAll> for Supervisor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: ShutdownAll, _: &mut Self::Context) -> Self::Result {
        let addrs: Vec<_> = self
            .sessions
            .drain()
            .filter_map(|(_, a)| a.upgrade())
            .collect();
        self.waiting.clear();
        Box::pin(
            async move {
                for addr in addrs {
                    let _ = addr.send(Close).await;
                }
            }
            .into_actor(self)
            .map(|(), act, _| {
                act.holders.clear();
                act.idle_since.clear();
                act.evicting.clear();
            }),
        )
    }
}

impl Handler<DrainAll> for Supervisor {
    type Result = actix::ResponseFuture<()>;

    fn handle(&mut self, msg: DrainAll, _: &mut Self::Context) -> Self::Result {
        let addrs: Vec<_> = self.sessions.values().filter_map(|a| a.upgrade()).collect();
        // In a cluster each session closes as soon as its own turns are
        // done, not when the slowest one is: its lease goes back at once and
        // another node takes it (this node takes no new lease meanwhile).
        let hand_over = self.runtime.node.is_clustered();
        Box::pin(async move {
            let drains = addrs.iter().map(|addr| async move {
                let _ = addr
                    .send(crate::actors::session::messages::Drain {
                        deadline: msg.deadline,
                    })
                    .await;
                if hand_over {
                    let _ = addr.send(Close).await;
                }
            });
            futures_util::future::join_all(drains).await;
        })
    }
}

impl Handler<RequestTurn> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: RequestTurn, ctx: &mut Self::Context) {
        let turns = self.turns_of(&msg.tenant_id);
        if turns.running.contains(&msg.session_id) {
            msg.addr
                .do_send(crate::actors::session::messages::TurnGranted);
            return;
        }
        if turns.waiting.iter().any(|(id, _, _)| *id == msg.session_id) {
            return;
        }
        // Granted once the tenant's current limit is read (see `TenantTurns`).
        let (ticket, read) = self.read_turn_limit(&msg.tenant_id);
        self.turns_of(&msg.tenant_id)
            .waiting
            .push_back((msg.session_id, msg.addr, ticket));
        ctx.spawn(read);
    }
}

impl Handler<TenantLimitsChanged> for Supervisor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: TenantLimitsChanged, _: &mut Self::Context) -> Self::Result {
        let (_, read) = self.read_turn_limit(&msg.tenant_id);
        Box::pin(read)
    }
}

impl Handler<ReleaseTurn> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: ReleaseTurn, _: &mut Self::Context) {
        if let Some(turns) = self.turns.get_mut(&msg.tenant_id) {
            turns.running.remove(&msg.session_id);
            turns.waiting.retain(|(id, _, _)| *id != msg.session_id);
        }
        self.grant_turns(&msg.tenant_id);
    }
}
