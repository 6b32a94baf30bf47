//! The supervisor: the only map from session ids to live actors, the cap on
//! live CLI processes (least recently used idle one evicted first), and the
//! idle timeout.

mod handlers;
pub mod messages;

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use actix::{Actor, ActorFutureExt, Addr, AsyncContext, Context, WrapFuture};

use super::session::messages::{Evict, SlotGranted};
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
