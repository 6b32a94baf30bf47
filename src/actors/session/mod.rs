//! One actor per live session. It owns the session's CLI process and feeds
//! it one turn at a time from a FIFO queue: a message sent while a turn runs
//! waits its turn (the CLI would merge it into the running one otherwise).

pub mod approvals;
mod cancel;
mod handlers;
pub mod hub;
pub mod messages;
mod running;
pub mod turn;
pub mod workspace;
mod writer;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use actix::{Actor, ActorFutureExt, Addr, AsyncContext, Context, WeakAddr, WrapFuture};
use serde_json::json;
use tokio::sync::mpsc;

use self::approvals::LiveApproval;
use self::hub::Hub;
use self::running::{Running, StopReason, StopRequest};
use self::turn::{Turn, TurnError};
use self::writer::Writer;
use super::supervisor::messages::{Activity, ReleaseSlot, ReleaseTurn, RequestSlot, RequestTurn};
use super::supervisor::Supervisor;
use super::Runtime;
use crate::cli::command::{self, Conversation, LaunchPlan};
use crate::cli::process::{CliProcess, ProcessEvent};
use crate::cli::protocol;
use crate::db::models::session::Session;
use crate::spec::{LaunchSpec, SessionSpec};

/// How long a fresh process may take to answer `initialize`.
const INITIALIZE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an idle process may take to exit once its stdin is closed.
const RETIRE_GRACE: Duration = Duration::from_secs(5);
/// How long an interrupted turn may take to end before the process is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often a running turn's events are written ahead of its end, so a
/// reconnecting client can replay them.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// A running turn with this many unwritten events is flushed at once.
const FLUSH_AT: usize = 64;

pub struct SessionActor {
    runtime: Runtime,
    supervisor: Addr<Supervisor>,
    session: SessionState,
    /// Output of every process this actor starts; tagged by generation.
    output_tx: mpsc::UnboundedSender<ProcessEvent>,
    output_rx: Option<mpsc::UnboundedReceiver<ProcessEvent>>,
    process: Option<LiveProcess>,
    generation: u64,
    slot: Slot,
    /// The tenant's running-turn permit for the head turn.
    permit: Permit,
    queue: VecDeque<Turn>,
    current: Option<Running>,
    /// Event numbering and live subscribers of the session's stream.
    hub: Hub,
    /// Tool approvals the CLI waits on, by approval id.
    approvals: HashMap<String, LiveApproval>,
    control_counter: u64,
    /// Control requests sent to the CLI and not yet answered, by id.
    pending_control: HashMap<String, PendingControl>,
    writer: Writer,
    /// Set by shutdown: no new turns; told when idle.
    draining: Option<Draining>,
    /// Set by `Close`: the actor is going away.
    closed: bool,
    /// The queue length last added to the `cca_turns_queued` gauge.
    reported_queue: i64,
    /// This actor, for writes that report back once applied.
    me: Option<WeakAddr<SessionActor>>,
}

struct Draining {
    deadline: Instant,
    waiters: Vec<tokio::sync::oneshot::Sender<()>>,
}

/// What the actor knows of its session row.
struct SessionState {
    id: String,
    tenant_id: String,
    name: String,
    workspace: PathBuf,
    spec: SessionSpec,
    cli_session_id: String,
    /// Whether the row holds `cli_session_id` already (the first process
    /// is started with the session's own id, stored once the CLI reports it).
    cli_session_stored: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Permit {
    None,
    Requested(Instant),
    Held,
    /// Its turn started: given back when that turn ends.
    Used,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    None,
    Requested,
    Held,
}

struct LiveProcess {
    handle: CliProcess,
    /// The process's model token: it stops working when the process is gone.
    model_grant: crate::gateway::ProcessGrant,
    spec: LaunchSpec,
    /// `initialize` answered: turns may be written.
    ready: bool,
    started: Instant,
    /// The CLI reports cost cumulatively per process; turns are charged the delta.
    reported_cost_micros: i64,
}

enum PendingControl {
    Initialize,
    Interrupt,
}

impl SessionActor {
    pub fn new(
        runtime: Runtime,
        supervisor: Addr<Supervisor>,
        row: Session,
        next_seq: i64,
    ) -> SessionActor {
        let spec = serde_json::from_str(&row.spec).unwrap_or_else(|e| {
            tracing::warn!(session_id = %row.id, error = %e, "unreadable session spec; using defaults");
            SessionSpec::default()
        });
        let (output_tx, output_rx) = mpsc::unbounded_channel();
        let writer = Writer::start(
            runtime.pool.clone(),
            row.name.clone(),
            runtime.settings.store_retry,
        );
        let hub = Hub::new(row.id.clone(), next_seq);
        SessionActor {
            runtime,
            supervisor,
            session: SessionState {
                cli_session_stored: row.cli_session_id.is_some(),
                cli_session_id: row.cli_session_id.unwrap_or_else(|| row.id.clone()),
                id: row.id,
                tenant_id: row.tenant_id,
                name: row.name,
                workspace: PathBuf::from(row.workspace),
                spec,
            },
            output_tx,
            output_rx: Some(output_rx),
            process: None,
            generation: 0,
            slot: Slot::None,
            permit: Permit::None,
            queue: VecDeque::new(),
            current: None,
            hub,
            approvals: HashMap::new(),
            control_counter: 0,
            pending_control: HashMap::new(),
            writer,
            draining: None,
            closed: false,
            reported_queue: 0,
            me: None,
        }
    }

    /// Where the actor's log lines go: the running turn's span (carrying
    /// its request id and the session), else the next queued turn's, else
    /// one naming the session.
    pub(super) fn span(&self) -> tracing::Span {
        if let Some(running) = &self.current {
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
        self.current.is_none() && self.queue.is_empty()
    }

    /// Starts the next queued turn when nothing runs, bringing up a process
    /// with the right launch spec first when needed.
    fn advance(&mut self, ctx: &mut Context<Self>) {
        if self.current.is_some() {
            return;
        }
        if self.draining.is_some() {
            self.drain_queue();
            return;
        }
        if self.permit == Permit::Used {
            // One permit, one turn: the next turn lines up again behind the
            // tenant's other sessions.
            self.release_permit();
        }
        let Some(next) = self.queue.front() else {
            self.release_permit();
            self.supervisor.do_send(Activity {
                session_id: self.session.id.clone(),
                idle: true,
            });
            return;
        };
        match self.permit {
            Permit::Held | Permit::Used => {}
            Permit::Requested(_) => return,
            Permit::None => {
                self.permit = Permit::Requested(Instant::now());
                self.supervisor.do_send(RequestTurn {
                    tenant_id: self.session.tenant_id.clone(),
                    session_id: self.session.id.clone(),
                    addr: ctx.address(),
                });
                return;
            }
        }
        let wanted =
            LaunchSpec::resolve(&self.runtime.settings, &self.session.spec, &next.overrides);
        if let Some(live) = &self.process {
            // The CLI's --max-budget-usd counts for the whole process: a
            // process that has spent anything cannot give the next turn its
            // full per-request budget, so that turn gets a fresh one.
            let budget_used = wanted.max_budget_micros.is_some() && live.reported_cost_micros > 0;
            if live.spec != wanted || budget_used {
                // Another model/prompt/mode for this turn: restart the process
                // on the same conversation with the new flags, once the old
                // one has written its transcript.
                self.retire_process(ctx, |act, ctx| act.advance(ctx));
                return;
            } else if !live.ready {
                return;
            } else {
                let Some(turn) = self.queue.pop_front() else {
                    return;
                };
                self.start_turn(turn, ctx);
                return;
            }
        }
        match self.slot {
            Slot::Held => self.spawn_process(wanted, ctx),
            Slot::Requested => {}
            Slot::None => {
                self.slot = Slot::Requested;
                self.supervisor.do_send(RequestSlot {
                    session_id: self.session.id.clone(),
                    addr: ctx.address(),
                });
            }
        }
    }

    fn spawn_process(&mut self, spec: LaunchSpec, ctx: &mut Context<Self>) {
        let config_dir = self.runtime.cli_config_dir(&self.session.tenant_id);
        let transcript = command::transcript_path(
            &config_dir,
            &self.session.workspace,
            &self.session.cli_session_id,
        );
        let conversation = if transcript.exists() {
            Conversation::Resume(self.session.cli_session_id.clone())
        } else {
            Conversation::New(self.session.cli_session_id.clone())
        };
        let model_grant = self
            .runtime
            .gateway
            .grant(&self.session.tenant_id, Some(&self.session.id));
        let plan = LaunchPlan {
            cli_path: self.runtime.cli_path.clone(),
            workspace: self.session.workspace.clone(),
            config_dir,
            env: self.runtime.settings.cli_env.clone(),
            model_env: model_grant.env(),
            spec: spec.clone(),
            conversation,
        };
        self.generation += 1;
        let confinement = match self.confine(&plan) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(session = %self.session.name, error = %e, "cannot confine the CLI");
                self.release_slot();
                if let Some(turn) = self.queue.pop_front() {
                    self.fail_unstarted(turn, TurnError::Process(e));
                }
                ctx.notify(messages::Advance);
                return;
            }
        };
        match CliProcess::spawn(
            &plan,
            confinement,
            &self.runtime.pid_dir(),
            self.generation,
            self.output_tx.clone(),
        ) {
            Ok(handle) => {
                tracing::info!(session = %self.session.name, pid = handle.pid, "started CLI process");
                let request_id = self.next_control_id();
                let line = protocol::control_request_line(
                    &request_id,
                    json!({"subtype": "initialize", "hooks": null}),
                );
                handle.send_line(line);
                self.pending_control
                    .insert(request_id, PendingControl::Initialize);
                self.process = Some(LiveProcess {
                    handle,
                    model_grant,
                    spec,
                    ready: false,
                    started: Instant::now(),
                    reported_cost_micros: 0,
                });
            }
            Err(e) => {
                tracing::error!(session = %self.session.name, error = %e, "cannot start the CLI");
                self.release_slot();
                if let Some(turn) = self.queue.pop_front() {
                    self.fail_unstarted(turn, TurnError::Process(e.to_string()));
                }
                ctx.notify(messages::Advance);
            }
        }
    }

    /// The sandbox of the process `plan` describes: its workspace and CLI
    /// state handed to the agent user, its cgroup made.
    fn confine(&self, plan: &LaunchPlan) -> Result<Option<crate::sandbox::Confinement>, String> {
        let sandbox = &self.runtime.sandbox;
        if !sandbox.is_on() {
            return Ok(None);
        }
        sandbox
            .hand_over(&plan.workspace, false)
            .and_then(|()| sandbox.hand_over(&plan.config_dir, true))
            .map_err(|e| format!("cannot give the workspace to the agent user: {e}"))?;
        let mounts = crate::sandbox::Mounts {
            cli: &plan.cli_path,
            workspace: &plan.workspace,
            config_dir: &plan.config_dir,
            add_dirs: &plan.spec.add_dirs,
        };
        let group = format!("{}-{}", self.session.id, self.generation);
        sandbox.confine(&mounts, Some(&group))
    }

    fn next_control_id(&mut self) -> String {
        self.control_counter += 1;
        format!("req_{}_{}", self.generation, self.control_counter)
    }

    /// Reserves the turn's share of the budgets, then writes it to the CLI.
    /// The actor waits for the reservation (one small write, after the
    /// session's queued ones), so turns still start in queue order.
    fn start_turn(&mut self, mut turn: Turn, ctx: &mut Context<Self>) {
        self.report_queue();
        turn.span = tracing::info_span!(
            parent: &turn.span,
            "turn",
            session = %self.session.name,
            job_id = turn.job_id.as_deref().unwrap_or(""),
        );
        let _entered = turn.span.clone().entered();
        tracing::debug!("turn started");
        self.supervisor.do_send(Activity {
            session_id: self.session.id.clone(),
            idle: false,
        });
        let (tenant_id, session_id) = (self.session.tenant_id.clone(), self.session.id.clone());
        let owner = self.runtime.instance.id.clone();
        let amount = self
            .runtime
            .settings
            .max_cost_per_request_micros
            .unwrap_or(self.runtime.settings.budget_reservation_micros);
        // Behind the session's queued writes: the turn before this one is
        // settled (its cost spent, its reservation returned) first.
        let reserved = self.writer.call(move |c| {
            crate::db::models::budget::reserve_for_turn(c, &tenant_id, &session_id, amount, &owner)
        });
        ctx.wait(
            reserved
                .into_actor(self)
                .map(move |reserved, act, ctx| match reserved {
                    Ok(Ok(reserved)) => act.begin_turn(turn, reserved, ctx),
                    Ok(Err(over)) => {
                        act.fail_unstarted(
                            turn,
                            TurnError::OverBudget {
                                scope: over.scope,
                                spent_micros: over.spent_micros,
                                limit_micros: over.limit_micros,
                            },
                        );
                        act.advance(ctx);
                    }
                    Err(e) => {
                        act.fail_unstarted(
                            turn,
                            TurnError::Process(format!("cannot check the budget: {e}")),
                        );
                        act.advance(ctx);
                    }
                }),
        );
    }

    fn begin_turn(
        &mut self,
        turn: Turn,
        reservation: crate::db::models::instance::Held,
        ctx: &mut Context<Self>,
    ) {
        let Some(live) = &self.process else {
            // The process went away while the budget was checked: give the
            // reservation back and try again from the top.
            let tenant_id = self.session.tenant_id.clone();
            self.writer.write(
                move |c| {
                    crate::db::models::tenant::settle(c, &tenant_id, &reservation, 0)
                        .map(|()| false)
                },
                None,
            );
            self.queue.push_front(turn);
            self.report_queue();
            self.advance(ctx);
            return;
        };
        let sent = live.handle.send_line(protocol::user_line(&turn.message));
        let meter = live.model_grant.meter();
        let mark = meter.mark();
        if let Some(job_id) = turn.job_id.clone() {
            self.writer.write(
                move |c| crate::db::models::job::mark_running(c, &job_id),
                None,
            );
            // `job_status: running` is heard once the job row says so.
            self.publish_after_writes();
        }
        self.permit = Permit::Used;
        let job_id = turn.job_id.clone();
        let mut running = Running::new(turn);
        running.reservation = reservation;
        running.meter = Some((meter, mark));
        running.emit(&mut self.hub, "turn_started", json!({"job_id": job_id}));
        if let Some(job_id) = job_id {
            running.emit(
                &mut self.hub,
                "job_status",
                json!({"job_id": job_id, "status": crate::jobs::RUNNING}),
            );
        }
        self.current = Some(running);
        if !sent {
            // The writer is gone: the exit event will fail the turn.
            tracing::warn!(session = %self.session.name, "CLI stdin closed before the turn was written");
        }
    }

    /// Closes the idle process's stdin and pauses this actor until it has
    /// exited (so its transcript is complete before anything resumes it), or
    /// kills it after `RETIRE_GRACE`; then runs `then`. (One future: actix
    /// runs queued `wait` futures newest first.)
    fn retire_process(
        &mut self,
        ctx: &mut Context<Self>,
        then: impl FnOnce(&mut Self, &mut Context<Self>) + 'static,
    ) {
        let retiring = self.take_for_retirement();
        ctx.wait(
            async move {
                if let Some(retiring) = retiring {
                    retiring.await;
                }
            }
            .into_actor(self)
            .map(move |(), act, ctx| then(act, ctx)),
        );
    }

    /// Detaches the live process; the future retires it.
    fn take_for_retirement(&mut self) -> Option<impl std::future::Future<Output = ()> + 'static> {
        let live = self.process.take()?;
        self.pending_control.clear();
        self.generation += 1;
        Some(live.handle.retire(RETIRE_GRACE))
    }

    /// Kills the process group; its late output is ignored by generation.
    fn stop_process(&mut self) {
        if let Some(mut live) = self.process.take() {
            live.handle.kill();
        }
        self.pending_control.clear();
        self.generation += 1;
    }

    fn release_permit(&mut self) {
        if self.permit != Permit::None {
            self.permit = Permit::None;
            self.supervisor.do_send(ReleaseTurn {
                tenant_id: self.session.tenant_id.clone(),
                session_id: self.session.id.clone(),
            });
        }
    }

    fn release_slot(&mut self) {
        if self.slot != Slot::None {
            self.slot = Slot::None;
            self.supervisor.do_send(ReleaseSlot {
                session_id: self.session.id.clone(),
            });
        }
    }

    /// Kills the process, gives back the slot and the permit, and ends the
    /// running and queued turns as closed (their records are queued).
    fn wind_down(&mut self) {
        self.stop_process();
        self.release_slot();
        self.release_permit();
        self.fail_current(TurnError::Closed);
        while let Some(turn) = self.queue.pop_front() {
            self.fail_unstarted(turn, TurnError::Closed);
        }
    }

    /// Ends a queued turn that never reached the CLI.
    fn fail_unstarted(&mut self, turn: Turn, error: TurnError) {
        let mut running = Running::new(turn);
        let outcome = running.fail(&mut self.hub, error);
        self.persist(running, outcome, false);
    }

    /// Fails the running turn (crash, timeout, close) and records it.
    fn fail_current(&mut self, error: TurnError) {
        self.cancel_approvals();
        if let Some(mut running) = self.current.take() {
            // No result, so no cost from the CLI: the gateway saw the calls.
            let gateway = &self.runtime.gateway;
            running.charge_model_calls(|calls| gateway.cost_micros(calls));
            let outcome = running.fail(&mut self.hub, error);
            self.persist(running, outcome, true);
        }
    }

    /// Stores the finished turn, then answers its client and publishes its
    /// closing events. The next turn may start meanwhile; the session's
    /// writes stay in order, and its events wait behind this turn's.
    fn persist(&mut self, mut running: Running, outcome: running::Outcome, reached_cli: bool) {
        running.emit_job_status(&mut self.hub, &outcome);
        self.report_queue();
        let _entered = running.span().clone().entered();
        tracing::info!(
            ok = outcome.is_ok(),
            duration_ms = u64::try_from(running.elapsed().as_millis()).unwrap_or(u64::MAX),
            "turn finished"
        );
        crate::metrics::turn_finished(running.elapsed(), &outcome);
        let record = running.record(&self.session, &outcome, reached_cli);
        let kept = crate::db::spool::Entry::Turn(Box::new(record.clone()));
        let spool = crate::db::spool::dir(&self.runtime.settings.data_dir);
        let webhooks = self.runtime.webhooks.clone();
        let me = self.me.clone();
        self.writer.write_or_keep(
            move |c| crate::db::models::turn::record(c, &record),
            move || crate::db::spool::keep(&spool, &kept).is_ok(),
            Some(Box::new(move |stored| {
                if let (Ok(true), Some(webhooks)) = (stored, webhooks) {
                    webhooks.do_send(crate::actors::webhooks::Wake);
                }
                let closing = running.closing();
                running.deliver(outcome);
                if let Some(barrier) = closing {
                    release_events(me, barrier);
                }
            })),
        );
    }

    /// Holds the session's stream from here on until every write queued so
    /// far is applied: no subscriber hears of a change before it is stored.
    pub(super) fn publish_after_writes(&mut self) {
        let barrier = self.hub.hold();
        let me = self.me.clone();
        self.writer
            .after_pending(move || release_events(me, barrier));
    }

    /// Writes the running turn's events so far, in order with everything
    /// else the session stores.
    fn flush_events(&mut self) {
        let Some(running) = self.current.as_mut() else {
            return;
        };
        let events = running.take_events();
        if events.is_empty() {
            return;
        }
        let spool = crate::db::spool::dir(&self.runtime.settings.data_dir);
        let kept = crate::db::spool::Entry::Events(events.clone());
        self.writer.write_or_keep(
            move |c| crate::db::models::turn::flush_events(c, &events).map(|()| false),
            move || crate::db::spool::keep(&spool, &kept).is_ok(),
            None,
        );
    }

    /// Asks the CLI to stop the running turn (the `interrupt` control
    /// request); the watchdog kills the process if it does not stop in time.
    fn stop_current(
        &mut self,
        reason: StopReason,
        waiter: Option<tokio::sync::oneshot::Sender<()>>,
    ) {
        let Some(running) = self.current.as_mut() else {
            return;
        };
        let stop = running.stop.get_or_insert_with(|| StopRequest {
            reason,
            since: Instant::now(),
            waiters: Vec::new(),
        });
        stop.waiters.extend(waiter);
        if let Some(live) = &self.process {
            self.control_counter += 1;
            let request_id = format!("req_{}_{}", self.generation, self.control_counter);
            live.handle.send_line(protocol::control_request_line(
                &request_id,
                json!({"subtype": "interrupt"}),
            ));
            self.pending_control
                .insert(request_id, PendingControl::Interrupt);
        }
    }

    /// While draining, nothing new starts: queued chats are answered with
    /// 503, queued jobs stay queued in the database for the next start.
    fn drain_queue(&mut self) {
        while let Some(turn) = self.queue.pop_front() {
            if turn.job_id.is_none() {
                self.fail_unstarted(turn, TurnError::Closed);
            }
        }
        if self.current.is_none() {
            if let Some(draining) = self.draining.as_mut() {
                let waiters: Vec<_> = draining.waiters.drain(..).collect();
                // Answered after every write queued before it is applied.
                self.writer.after_pending(move || {
                    for waiter in waiters {
                        let _ = waiter.send(());
                    }
                });
            }
        }
    }

    /// A chat (a client waiting on the answer) that cannot get one of its
    /// tenant's turn permits in time is answered 429 instead of waiting on;
    /// jobs wait as long as it takes.
    fn check_turn_wait(&mut self, ctx: &mut Context<Self>) {
        let Permit::Requested(since) = self.permit else {
            return;
        };
        let wait = self.runtime.settings.chat_queue_timeout;
        let head_is_chat = self.queue.front().is_some_and(|t| t.job_id.is_none());
        if head_is_chat && since.elapsed() >= wait {
            if let Some(turn) = self.queue.pop_front() {
                self.fail_unstarted(turn, TurnError::Busy);
            }
            self.release_permit();
            self.advance(ctx);
        }
    }

    fn check_watchdog(&mut self, ctx: &mut Context<Self>) {
        let _entered = self.span().entered();
        self.check_turn_wait(ctx);
        if let Some(draining) = &self.draining {
            let running_unstopped = self.current.as_ref().is_some_and(|r| r.stop.is_none());
            if running_unstopped && Instant::now() >= draining.deadline {
                tracing::warn!(session = %self.session.name, "shutdown grace over; interrupting the running turn");
                self.stop_current(StopReason::Shutdown, None);
            }
        }
        let stop_overdue = self
            .current
            .as_ref()
            .and_then(|r| r.stop.as_ref())
            .is_some_and(|s| s.since.elapsed() >= STOP_GRACE);
        if stop_overdue {
            tracing::warn!(session = %self.session.name, "the turn did not stop when interrupted; killing the CLI");
            self.stop_process();
            self.release_slot();
            let error = match self
                .current
                .as_ref()
                .and_then(|r| r.stop.as_ref())
                .map(|s| s.reason)
            {
                Some(StopReason::Shutdown) => TurnError::Closed,
                _ => TurnError::Cancelled,
            };
            self.fail_current(error);
            self.advance(ctx);
            return;
        }
        self.expire_approvals();
        let timeout = self.runtime.settings.claude_timeout;
        // A turn waiting on a client's approval is quiet, not stalled.
        let stalled_turn = self.approvals.is_empty()
            && self
                .current
                .as_ref()
                .is_some_and(|r| r.last_output.elapsed() >= timeout);
        let stalled_start = self
            .process
            .as_ref()
            .is_some_and(|p| !p.ready && p.started.elapsed() >= INITIALIZE_TIMEOUT.max(timeout));
        if stalled_turn {
            tracing::warn!(session = %self.session.name, "turn timed out; restarting the CLI");
            self.stop_process();
            self.release_slot();
            self.fail_current(TurnError::Timeout(timeout.as_secs()));
            self.advance(ctx);
        } else if stalled_start {
            tracing::warn!(session = %self.session.name, "CLI did not initialize in time");
            let stderr = self.stderr_tail();
            self.stop_process();
            self.release_slot();
            if let Some(turn) = self.queue.pop_front() {
                self.fail_unstarted(
                    turn,
                    TurnError::Process(with_stderr("the CLI did not start in time", &stderr)),
                );
            }
            self.advance(ctx);
        }
    }

    fn stderr_tail(&self) -> String {
        self.process
            .as_ref()
            .map(|p| p.handle.stderr_tail())
            .unwrap_or_default()
    }
}

/// Lifts a barrier of the session's stream; a stopped actor has no
/// subscribers left to publish to.
fn release_events(me: Option<WeakAddr<SessionActor>>, barrier: hub::Barrier) {
    if let Some(me) = me.and_then(|a| a.upgrade()) {
        me.do_send(messages::ReleaseEvents(barrier));
    }
}

/// An error message with the CLI's stderr tail, when it said anything.
fn with_stderr(message: &str, stderr: &str) -> String {
    if stderr.is_empty() {
        message.to_owned()
    } else {
        format!("{message}: {stderr}")
    }
}

impl Actor for SessionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.me = Some(ctx.address().downgrade());
        if let Some(rx) = self.output_rx.take() {
            ctx.add_stream(tokio_stream::wrappers::UnboundedReceiverStream::new(rx));
        }
        let timeout = self.runtime.settings.claude_timeout;
        let every = (timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
        ctx.run_interval(every, |act, ctx| act.check_watchdog(ctx));
        ctx.run_interval(FLUSH_EVERY, |act, _| act.flush_events());
        // Approvals asked by a process of an earlier actor can no longer be answered.
        let session_id = self.session.id.clone();
        self.writer.write(
            move |c| crate::db::models::approval::cancel_stale(c, &session_id).map(|_| false),
            None,
        );
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> actix::Running {
        self.wind_down();
        actix::Running::Stop
    }
}
