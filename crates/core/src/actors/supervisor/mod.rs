//! The supervisor: the only map from session ids to live actors, the cap on
//! live CLI processes (least recently used idle one evicted first), and the
//! idle timeout.

mod handlers;
pub mod held_leases;
pub mod messages;
pub mod running_turns;

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorFuture, ActorFutureExt, Addr, AsyncContext, Context, WeakAddr, WrapFuture,
};

use super::session::messages::{Close, Evict, SlotGranted, TurnGranted};
use super::session::upward::SupervisorLink;
use super::session::SessionActor;
use super::Runtime;
use crate::db::models::lease::Lease;

pub struct Supervisor {
    runtime: Runtime,
    /// Weak: an actor stops once it has nothing to do and nobody holds its
    /// address (see `SessionActor`); a request that got it from here holds
    /// it, so what it sends is never lost to a stopping actor.
    sessions: HashMap<String, WeakAddr<SessionActor>>,
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
    /// Freed memory is handed back once the last actor stopped (see
    /// `memory`); set while that is scheduled.
    release_scheduled: bool,
    /// In a cluster: the lease epoch each live actor writes under.
    epochs: HashMap<String, i64>,
    /// In a cluster: when this node last renewed its leases.
    leases_renewed: Instant,
    renewing: bool,
}

/// One tenant's running turns, the sessions waiting to run one, and its
/// limit as last read from the database.
pub(super) struct TenantTurns {
    pub running: HashSet<String>,
    /// Sessions in request order, each with the ticket of the limit read its
    /// request started: it is granted only once that read (or a later one)
    /// is applied, so a changed limit holds from the next request on.
    pub waiting: VecDeque<(String, Addr<SessionActor>, u64)>,
    /// Permits: the tenant's `max_running_turns`, else the server's.
    pub limit: usize,
    /// Tickets of limit reads started and of the newest one applied; an
    /// older read that answers late is ignored.
    pub reads_started: u64,
    pub reads_applied: u64,
}

impl TenantTurns {
    fn new(limit: usize) -> TenantTurns {
        TenantTurns {
            running: HashSet::new(),
            waiting: VecDeque::new(),
            limit,
            reads_started: 0,
            reads_applied: 0,
        }
    }
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
            release_scheduled: false,
            epochs: HashMap::new(),
            leases_renewed: Instant::now(),
            renewing: false,
        }
    }

    fn cap(&self) -> usize {
        self.runtime.settings.sessions.max_live
    }

    /// The session's actor, if it is live.
    fn live_actor(&self, session_id: &str) -> Option<Addr<SessionActor>> {
        self.sessions.get(session_id).and_then(WeakAddr::upgrade)
    }

    /// The session's actor, started (and registered) if it is not live.
    /// A stopped actor is gone before `upgrade` fails, and it stops only
    /// once its writes are applied, so the new one (which reads where the
    /// session's events stand when it starts) never overlaps it.
    ///
    /// In a cluster the caller took the session's `lease` first; a live
    /// actor writing under an older epoch lost the session meanwhile (and
    /// can no longer write): it is closed and a new one started.
    fn open_actor(
        &mut self,
        session: crate::db::models::session::Session,
        lease: Option<Lease>,
        ctx: &mut Context<Self>,
    ) -> Addr<SessionActor> {
        if let Some(addr) = self.live_actor(&session.id) {
            let stale = matches!(
                (&lease, self.epochs.get(&session.id)),
                (Some(lease), Some(epoch)) if lease.epoch != *epoch
            );
            if !stale {
                return addr;
            }
            addr.do_send(Close);
            self.forget(&session.id);
        }
        let id = session.id.clone();
        if let Some(lease) = &lease {
            self.epochs.insert(id.clone(), lease.epoch);
            // Taken a moment ago.
            let until = Instant::now() + self.runtime.node.lease_surely_held();
            self.runtime
                .held_leases
                .took(&id, &session.tenant_id, &session.name, until);
        }
        let me = ctx.address();
        let link = SupervisorLink {
            stopped: me.clone().recipient(),
            request_slot: me.clone().recipient(),
            release_slot: me.clone().recipient(),
            activity: me.clone().recipient(),
            request_turn: me.clone().recipient(),
            release_turn: me.recipient(),
        };
        let addr = SessionActor::new(self.runtime.clone(), link, session, lease).start();
        self.sessions.insert(id, addr.downgrade());
        addr
    }

    /// Drops a session from every book (its actor is closing).
    fn forget(&mut self, session_id: &str) {
        self.runtime.held_leases.let_go(session_id);
        self.sessions.remove(session_id);
        self.epochs.remove(session_id);
        self.waiting.retain(|(id, _)| id != session_id);
        self.holders.remove(session_id);
        self.idle_since.remove(session_id);
        self.evicting.remove(session_id);
        self.drop_turns_of(session_id);
    }

    /// Gives a session's lease back (cluster only).
    fn release_lease(&mut self, session_id: &str, ctx: &mut Context<Self>) {
        self.runtime.held_leases.let_go(session_id);
        if !self.runtime.node.is_clustered() {
            return;
        }
        let pool = self.runtime.pool.clone();
        let (session, me) = (
            session_id.to_owned(),
            self.runtime.node.instance_id().to_owned(),
        );
        ctx.spawn(
            async move {
                let released = crate::db::run(&pool, move |c| {
                    crate::db::models::lease::release(c, &session, &me)
                })
                .await;
                if let Err(e) = released {
                    tracing::warn!(error = %e, "cannot release a session lease");
                }
            }
            .into_actor(self),
        );
    }

    /// Renews the leases of every live actor in one statement. An actor
    /// whose lease another node took is closed (its writes already fail);
    /// when renewing has failed for longer than a lease minus a heartbeat,
    /// every actor is closed, so no CLI runs here once the leases run out.
    fn renew_leases(&mut self, ctx: &mut Context<Self>) {
        let node = self.runtime.node.clone();
        if !node.is_clustered() || self.renewing {
            return;
        }
        let held: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, a)| a.upgrade().is_some())
            .map(|(id, _)| id.clone())
            .collect();
        let overdue = self.leases_renewed.elapsed() + node.heartbeat() >= node.lease_ttl();
        if held.is_empty() {
            self.leases_renewed = Instant::now();
            return;
        }
        self.renewing = true;
        // Counted from the asking, whenever the answer comes.
        let good_until = Instant::now() + node.lease_surely_held();
        let pool = self.runtime.pool.clone();
        let asked = held.clone();
        ctx.spawn(
            async move {
                let me = node.instance_id().to_owned();
                let ttl = node.lease_ttl_secs();
                crate::db::run(&pool, move |c| {
                    crate::db::models::lease::renew(c, &me, &asked, ttl)
                })
                .await
            }
            .into_actor(self)
            .map(move |renewed, act, _| {
                act.renewing = false;
                let lost: Vec<String> = match renewed {
                    Ok(kept) => {
                        act.leases_renewed = Instant::now();
                        act.runtime.held_leases.renewed(&kept, good_until);
                        let kept: HashSet<String> = kept.into_iter().collect();
                        held.into_iter().filter(|id| !kept.contains(id)).collect()
                    }
                    Err(e) if overdue => {
                        tracing::error!(error = %e, "cannot renew session leases; stopping every session here before they run out");
                        held
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot renew session leases");
                        Vec::new()
                    }
                };
                for id in lost {
                    tracing::warn!(session_id = %id, "another node holds this session now; stopping it here");
                    if let Some(addr) = act.live_actor(&id) {
                        addr.do_send(Close);
                    }
                    act.forget(&id);
                }
            }),
        );
    }

    /// Gives a free slot to an idle session without a process, so its
    /// process starts ahead of its first turn; never evicts anyone for it.
    fn warm(&mut self, session_id: &str, addr: &Addr<SessionActor>) {
        let free = self.holders.len() < self.cap() && self.waiting.is_empty();
        if free && !self.holders.contains(session_id) {
            self.holders.insert(session_id.to_owned());
            addr.do_send(SlotGranted { warm: true });
        }
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
                addr.do_send(SlotGranted { warm: false });
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
        let Some(addr) = self.live_actor(&session_id) else {
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

    /// The tenant's permits, made on first use with the server's limit.
    fn turns_of(&mut self, tenant_id: &str) -> &mut TenantTurns {
        let default = self.share(self.runtime.settings.tenancy.max_running_turns);
        self.turns
            .entry(tenant_id.to_owned())
            .or_insert_with(|| TenantTurns::new(default))
    }

    /// This node's permits of a tenant's running-turn limit: all of them
    /// alone, its share in a cluster (see `Node::share`).
    fn share(&self, limit: i64) -> usize {
        let limit = u64::try_from(limit).unwrap_or(1);
        let share = if self.runtime.node.is_clustered() {
            self.runtime.node.share(limit)
        } else {
            limit
        };
        usize::try_from(share).unwrap_or(1).max(1)
    }

    /// Reads the tenant's running-turn limit from the database, then applies
    /// it (unless a later read already was) and grants what it allows. The
    /// database is the only source, so a change made by the admin API or by
    /// the `tenants` command (another process) both apply. Returns the read's
    /// ticket and the future that applies it.
    fn read_turn_limit(
        &mut self,
        tenant_id: &str,
    ) -> (u64, impl ActorFuture<Self, Output = ()> + 'static) {
        let turns = self.turns_of(tenant_id);
        turns.reads_started += 1;
        let ticket = turns.reads_started;
        let pool = self.runtime.pool.clone();
        let tenant = tenant_id.to_owned();
        let lookup = tenant.clone();
        let read = async move {
            crate::db::run(&pool, move |c| {
                crate::db::models::tenant::max_running_turns(c, &lookup)
            })
            .await
        }
        .into_actor(self)
        .map(move |read, act, _| {
            let default = act.runtime.settings.tenancy.max_running_turns;
            let limit = read.as_ref().ok().map(|own| act.share(own.unwrap_or(default)));
            let turns = act.turns_of(&tenant);
            if ticket <= turns.reads_applied {
                return;
            }
            turns.reads_applied = ticket;
            match read {
                Ok(_) => turns.limit = limit.unwrap_or(turns.limit),
                // Waiting turns go on under the limit last read.
                Err(e) => {
                    tracing::warn!(tenant = %tenant, error = %e, "cannot read the tenant's turn limit")
                }
            }
            act.grant_turns(&tenant);
        });
        (ticket, read)
    }

    /// Grants a tenant's free permits to its waiting sessions, in order. A
    /// lowered limit grants nothing until enough running turns have ended.
    fn grant_turns(&mut self, tenant_id: &str) {
        let Some(turns) = self.turns.get_mut(tenant_id) else {
            self.runtime.running_turns.publish(tenant_id, None);
            return;
        };
        while let Some((session_id, addr, ticket)) = turns.waiting.front().cloned() {
            if turns.running.len() >= turns.limit || ticket > turns.reads_applied {
                break;
            }
            turns.waiting.pop_front();
            if addr.connected() {
                turns.running.insert(session_id);
                addr.do_send(TurnGranted);
            }
        }
        self.runtime
            .running_turns
            .publish(tenant_id, Some(&turns.running));
        // A tenant with nothing running, waiting or being read is forgotten;
        // its next request reads its limit afresh.
        let idle = turns.running.is_empty()
            && turns.waiting.is_empty()
            && turns.reads_started == turns.reads_applied;
        if idle {
            self.turns.remove(tenant_id);
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
        let timeout = self.runtime.settings.sessions.idle_timeout;
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
        let every = (self.runtime.settings.sessions.idle_timeout / 4)
            .clamp(Duration::from_millis(250), Duration::from_secs(15));
        ctx.run_interval(every, |act, ctx| act.reap_idle(ctx));
        if self.runtime.node.is_clustered() {
            let beat = self.runtime.node.heartbeat();
            ctx.run_interval(beat, |act, ctx| act.renew_leases(ctx));
        }
    }
}
