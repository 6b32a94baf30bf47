//! One actor per live session. It owns the session's CLI process and feeds
//! it one turn at a time from a FIFO queue: a message sent while a turn runs
//! waits its turn (the CLI would merge it into the running one otherwise).
//!
//! Its state: where the process is (`Process`), where the head turn is
//! (`Head`: its permit, then its run), and whether it still takes turns
//! (`Intake`). The concerns live in their own files: `lifecycle` (the
//! process and its slot), `cli_events` (what the CLI says), `queue` (the
//! queue and the running turn), `approvals`, `watchdog`, `disk_watch` (the
//! tenant's disk quota), `cancel`, `workspace`, `snapshot` (the
//! workspace at each turn's end, for forks), `transcript` (the CLI's
//! transcript mirrored into the database, and rebuilt from it); `handlers`
//! only dispatch messages.
//!
//! An actor lives while it has something to do (a process, a turn, a
//! subscriber, a write in flight) or someone holds its address; then its
//! timers stop and, once the last address is dropped, so does the actor
//! (the supervisor only keeps a weak one). A message for the session starts
//! a fresh actor; the conversation resumes from the CLI's transcript.

pub mod approvals;
mod cancel;
mod cli_events;
mod disk_watch;
mod handlers;
pub mod hub;
mod job_git;
mod lifecycle;
pub mod mcp;
pub mod messages;
mod priming;
mod queue;
pub mod relocation;
mod running;
mod snapshot;
mod transcript;
pub mod upward;
mod watchdog;
mod writer;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, SpawnHandle, WrapFuture,
};

use self::approvals::LiveApproval;
use self::hub::Hub;
use self::running::Running;
use self::writer::Writer;
use super::Runtime;
use crate::cli::process::CliProcess;
use crate::db::models::session::Session;
use crate::domain::session::SessionSpec;
use crate::domain::turn::Turn;
use crate::spec::LaunchSpec;
use upward::{ActorStopped, SupervisorLink};

/// How often a running turn's events are written ahead of its end, so a
/// reconnecting client can replay them.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// A running turn with this many unwritten events is flushed at once.
const FLUSH_AT: usize = 64;

pub struct SessionActor {
    runtime: Runtime,
    supervisor: SupervisorLink,
    session: SessionState,
    process: Process,
    /// Bumped for every process started or let go: output of an older
    /// process is ignored.
    generation: u64,
    queue: VecDeque<Turn>,
    /// The turn at the head of the queue: its permit, then its run.
    head: Head,
    intake: Intake,
    /// Event numbering and live subscribers of the session's stream.
    hub: Hub,
    /// Tool approvals the CLI waits on, by approval id.
    approvals: HashMap<String, LiveApproval>,
    control_counter: u64,
    /// Control requests sent to the CLI and not yet answered, by id.
    pending_control: HashMap<String, PendingControl>,
    writer: Writer,
    /// The transcript mirror's writes: in order among themselves, apart
    /// from the turn's, so an answer never waits for them.
    transcripts: Writer,
    /// The queue length last added to the `cca_turns_queued` gauge.
    reported_queue: i64,
    /// Set while the actor has something to do: its timers, and an address
    /// of itself that keeps it from stopping.
    awake: Option<Awake>,
    /// A disk measurement for the watchdog is under way.
    disk_check_running: bool,
    /// The CLI session id of a priming exchange: its transcript frames are
    /// not the conversation's and are not stored.
    primed_away: Option<String>,
    /// The MCP session of each relayed server, for the current process.
    mcp_sessions: HashMap<String, mcp::McpLink>,
    /// The last id of a request relayed to an MCP server (`mcp.rs`).
    mcp_next_id: u64,
    /// What the CLI last said of its MCP servers.
    mcp_seen: Option<mcp::McpSeen>,
}

/// Where the session's CLI process is.
enum Process {
    /// No process, no live-process slot.
    Cold,
    /// A slot was asked of the supervisor.
    WaitingForSlot,
    /// The slot is held, no process runs: one is about to start, or the
    /// retired one is on its way out.
    Slot,
    /// The slot is held; the process starts once its transcript file is
    /// ready (rebuilt from the database when it is missing).
    Preparing,
    /// Started; `initialize` not answered yet, so no turn is written.
    Starting(LiveProcess),
    /// Takes turns.
    Ready(LiveProcess),
}

impl Process {
    fn live(&self) -> Option<&LiveProcess> {
        match self {
            Process::Starting(live) | Process::Ready(live) => Some(live),
            _ => None,
        }
    }

    fn live_mut(&mut self) -> Option<&mut LiveProcess> {
        match self {
            Process::Starting(live) | Process::Ready(live) => Some(live),
            _ => None,
        }
    }
}

/// Whether the actor takes turns.
enum Intake {
    Open,
    /// Shutdown: no new turns; the waiters are told once idle.
    Draining(Draining),
    /// `Close`: the actor is going away.
    Closed,
}

struct Draining {
    deadline: Instant,
    waiters: Vec<tokio::sync::oneshot::Sender<()>>,
}

struct Awake {
    _me: Addr<SessionActor>,
    timers: [SpawnHandle; 3],
}

/// What the actor knows of its session row.
struct SessionState {
    id: String,
    tenant_id: String,
    name: String,
    workspace: PathBuf,
    spec: SessionSpec,
    cli_session_id: String,
    /// Turns that counted so far (the row's `turns`): the next one's number
    /// follows.
    turns: i64,
    /// Whether the row holds `cli_session_id` already (the first process
    /// is started with the session's own id, stored once the CLI reports it).
    cli_session_stored: bool,
}

/// The head turn: waiting for one of its tenant's running-turn permits,
/// then running, then done and its permit about to go back.
enum Head {
    /// No permit held or asked for.
    Waiting,
    /// A permit was asked of the supervisor at this moment.
    AskedForPermit(Instant),
    /// The permit is held; the turn starts once the process is ready.
    Permitted,
    /// The turn runs, on the permit.
    Running(Box<Running>),
    /// The turn ended; its permit goes back before the next turn lines up.
    Finished,
}

impl Head {
    fn running(&self) -> Option<&Running> {
        match self {
            Head::Running(running) => Some(running),
            _ => None,
        }
    }

    fn running_mut(&mut self) -> Option<&mut Running> {
        match self {
            Head::Running(running) => Some(running),
            _ => None,
        }
    }

    /// The running turn, leaving its permit to be given back.
    fn take_running(&mut self) -> Option<Running> {
        match std::mem::replace(self, Head::Finished) {
            Head::Running(running) => Some(*running),
            other => {
                *self = other;
                None
            }
        }
    }
}

struct LiveProcess {
    handle: CliProcess,
    /// The process's model token: it stops working when the process is gone.
    model_grant: crate::gateway::ProcessGrant,
    spec: LaunchSpec,
    started: Instant,
    /// The CLI reports cost cumulatively per process; turns are charged the delta.
    reported_cost_micros: i64,
    /// Where the priming exchange of a new process stands (see `priming`).
    priming: priming::Priming,
}

enum PendingControl {
    Initialize,
    Interrupt,
    /// The last step of priming (see `priming`).
    PrimeContext,
}

impl SessionActor {
    /// `lease`: in a cluster, the session's lease this node took; every
    /// write of the actor checks it is still held.
    pub fn new(
        runtime: Runtime,
        supervisor: SupervisorLink,
        row: Session,
        lease: Option<crate::db::models::lease::Lease>,
    ) -> SessionActor {
        let spec = serde_json::from_str(&row.spec).unwrap_or_else(|e| {
            tracing::warn!(session_id = %row.id, error = %e, "unreadable session spec; using defaults");
            SessionSpec::default()
        });
        let writer = Writer::start(
            runtime.pool.clone(),
            row.name.clone(),
            runtime.settings.sessions.store_retry,
            lease.clone(),
        );
        // A node that lost the session's lease adds nothing to its transcript.
        let transcripts = Writer::start(
            runtime.pool.clone(),
            row.name.clone(),
            runtime.settings.sessions.store_retry,
            lease,
        );
        let hub = Hub::new(row.id.clone());
        SessionActor {
            runtime,
            supervisor,
            session: SessionState {
                turns: row.turns,
                cli_session_stored: row.cli_session_id.is_some(),
                cli_session_id: row.cli_session_id.unwrap_or_else(|| row.id.clone()),
                id: row.id,
                tenant_id: row.tenant_id,
                name: row.name,
                workspace: PathBuf::from(row.workspace),
                spec,
            },
            process: Process::Cold,
            generation: 0,
            head: Head::Waiting,
            queue: VecDeque::new(),
            intake: Intake::Open,
            hub,
            approvals: HashMap::new(),
            control_counter: 0,
            pending_control: HashMap::new(),
            writer,
            transcripts,
            reported_queue: 0,
            awake: None,
            disk_check_running: false,
            primed_away: None,
            mcp_sessions: HashMap::new(),
            mcp_next_id: 0,
            mcp_seen: None,
        }
    }

    /// Where the actor's log lines go: the running turn's span (carrying
    /// its request id and the session), else the next queued turn's, else
    /// one naming the session.
    pub(super) fn span(&self) -> tracing::Span {
        if let Some(running) = self.head.running() {
            return running.span().clone();
        }
        let parent = self
            .queue
            .front()
            .map_or_else(tracing::Span::none, |t| t.span.clone());
        tracing::info_span!(parent: &parent, "session", session = %self.session.name)
    }

    /// Keeps the `cca_turns_queued` gauge in step with this queue.
    pub(super) fn report_queue(&mut self) {
        let len = i64::try_from(self.queue.len()).unwrap_or(i64::MAX);
        crate::metrics::turns_queued_changed(len - self.reported_queue);
        self.reported_queue = len;
    }

    fn is_idle(&self) -> bool {
        self.head.running().is_none() && self.queue.is_empty()
    }

    /// Whether anything keeps the actor (and its timers) going.
    fn has_work(&self) -> bool {
        !self.is_idle()
            || !matches!(self.process, Process::Cold)
            || !matches!(self.head, Head::Waiting)
            || !self.approvals.is_empty()
            || matches!(self.intake, Intake::Draining(_))
            || !self.writer.is_idle()
            || !self.transcripts.is_idle()
            || self.hub.has_subscribers()
    }

    /// Starts the timers (watchdog, early flush) and holds the actor alive;
    /// called by every message that may give it something to do.
    fn wake(&mut self, ctx: &mut Context<Self>) {
        if self.awake.is_some() {
            return;
        }
        let timeout = self.runtime.settings.sessions.timeout;
        let every = (timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
        let watchdog = ctx.run_interval(every, |act, ctx| {
            act.check_watchdog(ctx);
            act.sleep_when_done(ctx);
        });
        let flush = ctx.run_interval(FLUSH_EVERY, |act, _| act.flush_events());
        let disk = ctx.run_interval(disk_watch::CHECK_EVERY, |act, ctx| act.check_disk(ctx));
        self.awake = Some(Awake {
            _me: ctx.address(),
            timers: [watchdog, flush, disk],
        });
    }

    /// Stops the timers once nothing is left to do; the actor then stops
    /// when nobody else holds its address.
    fn sleep_when_done(&mut self, ctx: &mut Context<Self>) {
        if self.has_work() {
            return;
        }
        if let Some(awake) = self.awake.take() {
            for timer in awake.timers {
                ctx.cancel_future(timer);
            }
        }
    }
}

impl Actor for SessionActor {
    type Context = Context<Self>;

    /// Reads where the session's events stand before handling anything.
    /// An earlier actor of the session is gone by now, its writes applied
    /// (see `Supervisor::open_actor`).
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.wake(ctx);
        // Approvals asked by a process of an earlier actor can no longer be answered.
        let session_id = self.session.id.clone();
        self.writer.write(
            move |c| crate::db::models::approval::cancel_stale(c, &session_id).map(|_| false),
            None,
        );
        let session_id = self.session.id.clone();
        let read = self
            .writer
            .call(move |c| crate::db::models::event::max_seq(c, &session_id));
        ctx.wait(read.into_actor(self).map(|read, act, ctx| match read {
            Ok(max_seq) => act.hub.start_after(max_seq),
            Err(e) => {
                tracing::error!(session = %act.session.name, error = %e, "cannot read the session's events; stopping its actor");
                act.intake = Intake::Closed;
                ctx.stop();
            }
        }));
    }

    /// Stops only with nothing left to do (or when closed): the timers keep
    /// an actor with work alive, so this is a last check.
    fn stopping(&mut self, ctx: &mut Context<Self>) -> actix::Running {
        if !matches!(self.intake, Intake::Closed) && self.has_work() {
            self.wake(ctx);
            return actix::Running::Continue;
        }
        self.wind_down();
        actix::Running::Stop
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.end_mcp_sessions();
        self.supervisor.stopped.do_send(ActorStopped {
            session_id: self.session.id.clone(),
        });
    }
}

/// The turn that runs a job; no client waits on it.
pub fn job_turn(job: &crate::db::models::job::Job) -> Turn {
    Turn {
        job_id: Some(job.id.clone()),
        message: job.message.clone(),
        attachments: job
            .attachments
            .as_deref()
            .and_then(|a| serde_json::from_str(a).ok())
            .unwrap_or_default(),
        overrides: serde_json::from_str(&job.overrides).unwrap_or_default(),
        subscriber: None,
        reply: None,
        span: tracing::info_span!("job", job_id = %job.id),
        approvals: None,
        clock: crate::domain::turn::TurnClock::start(),
    }
}
