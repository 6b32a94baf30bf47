//! The queue and the running turn: which turn starts when (the tenant's
//! permit, a process with the turn's launch spec), how it is written to the
//! CLI, and how it ends: recorded, then its closing events published and
//! its client answered.

use std::time::Instant;

use actix::{ActorFutureExt, AsyncContext, Context, WrapFuture};
use serde_json::json;

use super::running::{self, Running, StopReason, StopRequest};
use super::upward::{Activity, ReleaseTurn, RequestTurn};
use super::{Head, Intake, PendingControl, Process, SessionActor};
use crate::cli::protocol;
use crate::domain::event::{JobStatus, StreamEvent, TurnStarted};
use crate::domain::turn::{Turn, TurnError};
use crate::spec::LaunchSpec;

impl SessionActor {
    /// Starts the next queued turn when nothing runs, bringing up a process
    /// with the right launch spec first when needed.
    pub(super) fn advance(&mut self, ctx: &mut Context<Self>) {
        if self.head.running().is_some() {
            return;
        }
        if matches!(self.intake, Intake::Draining(_)) {
            self.drain_queue();
            return;
        }
        if matches!(self.head, Head::Finished) {
            // One permit, one turn: the next turn lines up again behind the
            // tenant's other sessions.
            self.release_permit();
        }
        let Some(next) = self.queue.front() else {
            self.release_permit();
            self.supervisor.activity.do_send(Activity {
                session_id: self.session.id.clone(),
                idle: true,
            });
            return;
        };
        match self.head {
            Head::Permitted => {}
            Head::AskedForPermit(_) | Head::Running(_) => return,
            Head::Waiting | Head::Finished => {
                self.head = Head::AskedForPermit(Instant::now());
                self.supervisor.request_turn.do_send(RequestTurn {
                    tenant_id: self.session.tenant_id.clone(),
                    session_id: self.session.id.clone(),
                    addr: ctx.address(),
                });
                return;
            }
        }
        let wanted =
            LaunchSpec::resolve(&self.runtime.settings, &self.session.spec, &next.overrides);
        if let Some(live) = self.process.live() {
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
            } else if matches!(self.process, Process::Starting(_)) {
                return;
            } else {
                let Some(turn) = self.queue.pop_front() else {
                    return;
                };
                self.start_turn(turn, ctx);
                return;
            }
        }
        match self.process {
            Process::Slot => self.spawn_process(wanted, ctx),
            Process::Cold => self.request_slot(ctx),
            _ => {}
        }
    }

    /// Checks the tenant's disk quota, reserves the turn's share of the
    /// budgets, then writes it to the CLI. The actor waits for both (the
    /// reservation is one small write, after the session's queued ones), so
    /// turns still start in queue order.
    pub(super) fn start_turn(&mut self, turn: Turn, ctx: &mut Context<Self>) {
        self.report_queue();
        if self
            .runtime
            .gateway
            .credential_for(&self.session.tenant_id)
            .is_none()
        {
            self.fail_unstarted(turn, TurnError::NoModelCredential);
            self.advance(ctx);
            return;
        }
        let disk = self.disk_status();
        ctx.wait(
            disk.into_actor(self)
                .map(move |disk, act, ctx| match act.disk_refusal(&disk) {
                    Some(error) => {
                        act.fail_unstarted(turn, error);
                        act.advance(ctx);
                    }
                    None => act.reserve_and_begin(turn, ctx),
                }),
        );
    }

    fn reserve_and_begin(&mut self, mut turn: Turn, ctx: &mut Context<Self>) {
        turn.span = tracing::info_span!(
            parent: &turn.span,
            "turn",
            session = %self.session.name,
            job_id = turn.job_id.as_deref().unwrap_or(""),
        );
        let _entered = turn.span.clone().entered();
        tracing::debug!("turn started");
        self.supervisor.activity.do_send(Activity {
            session_id: self.session.id.clone(),
            idle: false,
        });
        let (tenant_id, session_id) = (self.session.tenant_id.clone(), self.session.id.clone());
        let owner = self.runtime.instance.id.clone();
        let amount = self
            .runtime
            .settings
            .tenancy
            .max_cost_per_request_micros
            .unwrap_or(self.runtime.settings.tenancy.budget_reservation_micros);
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

    pub(super) fn begin_turn(
        &mut self,
        turn: Turn,
        reservation: crate::db::models::instance::Held,
        ctx: &mut Context<Self>,
    ) {
        let Some(live) = self.process.live() else {
            // The process went away while the budget was checked: give the
            // reservation back and try again from the top.
            let tenant_id = self.session.tenant_id.clone();
            self.writer.write(
                move |c| {
                    crate::db::models::tenant::settle(c, &tenant_id, &reservation, 0).map(|_| false)
                },
                None,
            );
            self.queue.push_front(turn);
            self.report_queue();
            self.advance(ctx);
            return;
        };
        // From here the process's model calls are this turn's to pay.
        let meter = live.model_grant.meter();
        meter.open_turn();
        let mut turn = turn;
        let sent = live
            .handle
            .send_line(protocol::user_line_with(&turn.message, &turn.attachments));
        turn.clock.written = Some(Instant::now());
        if let Some(job_id) = turn.job_id.clone() {
            // `job_status: running` is heard once the job row says so.
            let gate = self.hub.gate();
            self.writer.write(
                move |c| crate::db::models::job::mark_running(c, &job_id),
                Some(Box::new(move |_| gate.open())),
            );
        }
        let job_id = turn.job_id.clone();
        let mut running = Running::new(turn);
        running.reservation = reservation;
        running.meter = Some(meter);
        running.emit(
            &mut self.hub,
            StreamEvent::TurnStarted(TurnStarted {
                job_id: job_id.clone(),
            }),
        );
        if let Some(job_id) = job_id {
            running.emit(
                &mut self.hub,
                StreamEvent::JobStatus(JobStatus {
                    job_id,
                    status: crate::domain::job::RUNNING.to_owned(),
                    error: None,
                }),
            );
        }
        self.head = Head::Running(Box::new(running));
        if !sent {
            // The writer is gone: the exit event will fail the turn.
            tracing::warn!(session = %self.session.name, "CLI stdin closed before the turn was written");
        }
    }

    /// Gives the head turn's permit back. A running turn keeps its own: it
    /// is given back once the turn has ended (`Head::Finished`).
    pub(super) fn release_permit(&mut self) {
        if !matches!(self.head, Head::Waiting | Head::Running(_)) {
            self.head = Head::Waiting;
            self.supervisor.release_turn.do_send(ReleaseTurn {
                tenant_id: self.session.tenant_id.clone(),
                session_id: self.session.id.clone(),
            });
        }
    }

    /// Kills the process, gives back the slot and the permit, and ends the
    /// running and queued turns as closed (their records are queued).
    pub(super) fn wind_down(&mut self) {
        self.stop_process();
        self.release_slot();
        self.fail_current(TurnError::Closed);
        self.release_permit();
        while let Some(turn) = self.queue.pop_front() {
            self.fail_unstarted(turn, TurnError::Closed);
        }
    }

    /// Ends a queued turn that never reached the CLI.
    pub(super) fn fail_unstarted(&mut self, turn: Turn, error: TurnError) {
        let mut running = Running::new(turn);
        let outcome = running.fail(&mut self.hub, error);
        self.persist(running, outcome, false);
    }

    /// Fails the running turn (crash, timeout, close) and records it.
    pub(super) fn fail_current(&mut self, error: TurnError) {
        self.cancel_approvals();
        if let Some(mut running) = self.head.take_running() {
            // No result, so no cost from the CLI: the gateway saw the calls.
            let gateway = &self.runtime.gateway;
            running.charge_model_calls(|calls| gateway.cost_micros(calls));
            let outcome = running.fail(&mut self.hub, error);
            self.persist(running, outcome, true);
        }
    }

    /// Stores the finished turn; its closing events and its client's answer
    /// wait behind a gate the record's write opens: stored before told.
    /// Whatever the next turn publishes waits behind them, in `seq` order.
    pub(super) fn persist(
        &mut self,
        mut running: Running,
        outcome: running::Outcome,
        reached_cli: bool,
    ) {
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
        self.session.turns += i64::from(record.counts_as_turn);
        let kept = crate::db::spool::Entry::Turn(Box::new(record.clone()));
        let spool = crate::db::spool::dir(&self.runtime.settings.storage.data_dir);
        let webhooks = self.runtime.webhooks.clone();
        let gate = self.hub.gate();
        let clock = running.clock();
        let span = running.span().clone();
        running.announce_end(&self.hub, outcome);
        self.writer.write_or_keep(
            move |c| crate::db::models::turn::record(c, &record),
            move || crate::db::spool::keep(&spool, &kept).is_ok(),
            Some(Box::new(move |stored| {
                if let (Ok(true), Some(webhooks)) = (stored, webhooks) {
                    webhooks.do_send(crate::actors::webhooks::Wake);
                }
                gate.open();
                report_stages(&clock, &span);
            })),
        );
    }

    /// Writes the running turn's events so far, in order with everything
    /// else the session stores.
    pub(super) fn flush_events(&mut self) {
        let Some(running) = self.head.running_mut() else {
            return;
        };
        let events = running.take_events();
        if events.is_empty() {
            return;
        }
        let spool = crate::db::spool::dir(&self.runtime.settings.storage.data_dir);
        let kept = crate::db::spool::Entry::Events(events.clone());
        self.writer.write_or_keep(
            move |c| crate::db::models::turn::flush_events(c, &events).map(|()| false),
            move || crate::db::spool::keep(&spool, &kept).is_ok(),
            None,
        );
    }

    /// Asks the CLI to stop the running turn (the `interrupt` control
    /// request); the watchdog kills the process if it does not stop in time.
    pub(super) fn stop_current(
        &mut self,
        reason: StopReason,
        waiter: Option<tokio::sync::oneshot::Sender<()>>,
    ) {
        let Some(running) = self.head.running_mut() else {
            return;
        };
        let stop = running.stop.get_or_insert_with(|| StopRequest {
            reason,
            since: Instant::now(),
            waiters: Vec::new(),
        });
        stop.waiters.extend(waiter);
        if self.process.live().is_some() {
            let request_id = self.next_control_id();
            let Some(live) = self.process.live() else {
                return;
            };
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
    pub(super) fn drain_queue(&mut self) {
        while let Some(turn) = self.queue.pop_front() {
            if turn.job_id.is_none() {
                self.fail_unstarted(turn, TurnError::Closed);
            }
        }
        if self.head.running().is_none() {
            if let Intake::Draining(draining) = &mut self.intake {
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
}

/// The turn's time, step by step: a metric per stage, and one line at
/// debug level in the turn's span (`LOG_LEVEL=…,claude_code_api_core=debug`).
fn report_stages(clock: &crate::domain::turn::TurnClock, span: &tracing::Span) {
    let stages = clock.stages(Instant::now());
    for (stage, took) in &stages {
        crate::metrics::turn_stage(stage, *took);
    }
    let ms = |stage: &str| {
        stages
            .iter()
            .find(|(s, _)| *s == stage)
            .map_or(-1.0, |(_, d)| d.as_secs_f64() * 1000.0)
    };
    let _entered = span.enter();
    tracing::debug!(
        permit_ms = ms("permit"),
        cli_write_ms = ms("cli_write"),
        first_output_ms = ms("first_output"),
        answer_ms = ms("answer"),
        store_ms = ms("store"),
        "turn stages"
    );
}
