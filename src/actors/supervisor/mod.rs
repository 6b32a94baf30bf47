//! The supervisor: the only map from session ids to live actors, the cap on
//! live CLI processes (least recently used idle one evicted first), and the
//! idle timeout.

mod handlers;
pub mod messages;

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use actix::{Actor, ActorFutureExt, Addr, AsyncContext, Context, WrapFuture};

use super::session::messages::{Evict, SlotGranted, TurnGranted};
use super::session::SessionActor;
use super::Runtime;

pub struct Supervisor {
    runtime: Runtime,
    sessions: HashMap<String, Addr<SessionActor>>,
    /// Sessions that hold a live-process slot.
    holders: HashSet<String>,
    /// Holders with nothing to do, and since when (the LRU order).
    idle_since: HashMap<String, Instant>,
    /// Sessions waiting for a slot, first come first served.
    waiting: VecDeque<(String, Addr<SessionActor>)>,
    /// Holders asked to give their slot back, not yet answered.
    evicting: HashSet<String>,
    /// Running-turn permits per tenant.
    turns: HashMap<String, TenantTurns>,
}

/// One tenant's running turns and the sessions waiting to run one.
#[derive(Default)]
pub(super) struct TenantTurns {
    pub running: HashSet<String>,
    pub waiting: VecDeque<(String, Addr<SessionActor>, usize)>,
}

impl Supervisor {
    pub fn new(runtime: Runtime) -> Self {
        Supervisor {
            runtime,
            sessions: HashMap::new(),
            holders: HashSet::new(),
            idle_since: HashMap::new(),
            waiting: VecDeque::new(),
            evicting: HashSet::new(),
            turns: HashMap::new(),
        }
    }

    fn cap(&self) -> usize {
        self.runtime.settings.max_live_sessions
    }

    /// Hands free slots to waiting sessions; evicts the least recently used
    /// idle holders for the rest.
    fn balance(&mut self, ctx: &mut Context<Self>) {
        while self.holders.len() < self.cap() {
            let Some((id, addr)) = self.waiting.pop_front() else {
                return;
            };
            if addr.connected() {
                self.holders.insert(id);
                addr.do_send(SlotGranted);
            }
        }
        let wanted = self.waiting.len().saturating_sub(self.evicting.len());
        let mut evictable: Vec<(String, Instant)> = self
            .idle_since
            .iter()
            .map(|(id, since)| (id.clone(), *since))
            .collect();
        evictable.sort_by_key(|(_, since)| *since);
        for (id, _) in evictable.into_iter().take(wanted) {
            self.evict(id, ctx);
        }
    }

    /// Asks a holder for its slot back. A holder that turned busy meanwhile
    /// says no; then the next idle one is tried.
    fn evict(&mut self, session_id: String, ctx: &mut Context<Self>) {
        self.idle_since.remove(&session_id);
        let Some(addr) = self.sessions.get(&session_id).cloned() else {
            return;
        };
        self.evicting.insert(session_id.clone());
        ctx.spawn(
            addr.send(Evict)
                .into_actor(self)
                .map(move |evicted, act, ctx| {
                    if !matches!(evicted, Ok(true)) {
                        act.evicting.remove(&session_id);
                        act.balance(ctx);
                    }
                }),
        );
    }

    /// Grants a tenant's free permits to its waiting sessions, in order.
    fn grant_turns(&mut self, tenant_id: &str) {
        let Some(turns) = self.turns.get_mut(tenant_id) else {
            return;
        };
        while let Some((session_id, addr, limit)) = turns.waiting.front().cloned() {
            if turns.running.len() >= limit {
                break;
            }
            turns.waiting.pop_front();
            if addr.connected() {
                turns.running.insert(session_id);
                addr.do_send(TurnGranted);
            }
        }
    }

    /// Forgets a session's permit and place in line (it closed).
    fn drop_turns_of(&mut self, session_id: &str) {
        let tenants: Vec<String> = self.turns.keys().cloned().collect();
        for tenant in tenants {
            if let Some(turns) = self.turns.get_mut(&tenant) {
                turns.running.remove(session_id);
                turns.waiting.retain(|(id, _, _)| id != session_id);
            }
            self.grant_turns(&tenant);
        }
    }

    fn reap_idle(&mut self, ctx: &mut Context<Self>) {
        let timeout = self.runtime.settings.session_idle_timeout;
        let expired: Vec<String> = self
            .idle_since
            .iter()
            .filter(|(_, since)| since.elapsed() >= timeout)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            tracing::info!(session_id = %id, "stopping idle CLI process");
            self.evict(id, ctx);
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let every = (self.runtime.settings.session_idle_timeout / 4)
            .clamp(Duration::from_millis(250), Duration::from_secs(15));
        ctx.run_interval(every, |act, ctx| act.reap_idle(ctx));
    }
}
