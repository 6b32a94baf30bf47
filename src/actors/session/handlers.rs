use std::time::Instant;

use actix::{
    ActorContext, ActorFutureExt, Context, Handler, ResponseFuture, StreamHandler, WrapFuture,
};
use serde_json::json;

use super::approvals::ResolveError;
use super::hub::to_stream_event;
use super::messages::{
    Advance, ApprovalStored, CancelJob, CancelReply, Close, Drain, Enqueue, Evict, Interrupt,
    InterruptReply, ReleaseEvents, ResolveApproval, SlotGranted, Subscribe, Subscription,
    TurnGranted,
};
use super::running::StopReason;
use super::turn::{usd_to_micros, TurnError};
use super::{with_stderr, PendingControl, SessionActor, Slot};
use crate::cli::process::{ProcessEvent, ProcessOutput};
use crate::cli::protocol::{self, Block, CliMessage};

impl Handler<Enqueue> for SessionActor {
    type Result = ();

    fn handle(&mut self, msg: Enqueue, ctx: &mut Context<Self>) {
        let _entered =
            tracing::info_span!(parent: &msg.0.span, "session", session = %self.session.name)
                .entered();
        if self.closed {
            self.fail_unstarted(msg.0, TurnError::Closed);
            return;
        }
        self.queue.push_back(msg.0);
        self.report_queue();
        self.advance(ctx);
    }
}

impl Handler<TurnGranted> for SessionActor {
    type Result = ();

    fn handle(&mut self, _: TurnGranted, ctx: &mut Context<Self>) {
        self.permit = super::Permit::Held;
        if self.queue.is_empty() {
            self.release_permit();
            return;
        }
        self.advance(ctx);
    }
}

impl Handler<SlotGranted> for SessionActor {
    type Result = ();

    fn handle(&mut self, _: SlotGranted, ctx: &mut Context<Self>) {
        let _entered = self.span().entered();
        self.slot = Slot::Held;
        if self.process.is_none() && self.queue.is_empty() && self.current.is_none() {
            self.release_slot();
            return;
        }
        self.advance(ctx);
    }
}

impl Handler<Evict> for SessionActor {
    type Result = bool;

    fn handle(&mut self, _: Evict, ctx: &mut Context<Self>) -> bool {
        let _entered = self.span().entered();
        if !self.is_idle() {
            return false;
        }
        if self.process.is_some() {
            tracing::info!(session = %self.session.name, "stopping idle CLI process");
        }
        // The slot is handed on only once the process is gone.
        self.retire_process(ctx, |act, _| act.release_slot());
        true
    }
}

impl Handler<Close> for SessionActor {
    type Result = actix::ResponseActFuture<Self, ()>;

    /// Answers once the actor has stopped; an idle process is retired
    /// gracefully (transcript complete) first, a busy one is killed. What
    /// was still open is stored before the answer, so whoever closed the
    /// session (deleting it) finds no write still to come.
    fn handle(&mut self, _: Close, _: &mut Context<Self>) -> Self::Result {
        self.closed = true;
        let retiring = if self.is_idle() {
            self.take_for_retirement()
        } else {
            None
        };
        Box::pin(
            async move {
                if let Some(retiring) = retiring {
                    retiring.await;
                }
            }
            .into_actor(self)
            .then(|(), act, _| {
                act.wind_down();
                act.writer.flushed().into_actor(act)
            })
            .map(|(), _, ctx| ctx.stop()),
        )
    }
}

impl Handler<CancelJob> for SessionActor {
    type Result = actix::ResponseActFuture<Self, Result<CancelReply, crate::db::DbError>>;

    fn handle(&mut self, msg: CancelJob, _: &mut Context<Self>) -> Self::Result {
        match self.cancel_held(&msg.job_id) {
            Some(reply) => Box::pin(actix::fut::ready(Ok(reply))),
            None => self.cancel_from_database(msg.job_id),
        }
    }
}

impl Handler<Drain> for SessionActor {
    type Result = actix::ResponseFuture<()>;

    fn handle(&mut self, msg: Drain, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.draining
            .get_or_insert(super::Draining {
                deadline: msg.deadline,
                waiters: Vec::new(),
            })
            .waiters
            .push(tx);
        self.advance(ctx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<Advance> for SessionActor {
    type Result = ();

    fn handle(&mut self, _: Advance, ctx: &mut Context<Self>) {
        let _entered = self.span().entered();
        self.advance(ctx);
    }
}

impl StreamHandler<ProcessEvent> for SessionActor {
    fn handle(&mut self, event: ProcessEvent, ctx: &mut Context<Self>) {
        let _entered = self.span().entered();
        if event.generation != self.generation {
            return;
        }
        match event.output {
            ProcessOutput::Line(line) => self.on_line(&line, ctx),
            ProcessOutput::Exited { code, signal } => self.on_exit(code, signal, ctx),
        }
    }

    /// The output stream never ends while the actor lives (it holds a sender);
    /// the default would stop the actor when it did.
    fn finished(&mut self, _: &mut Context<Self>) {}
}

impl SessionActor {
    fn on_line(&mut self, line: &str, ctx: &mut Context<Self>) {
        if let Some(running) = self.current.as_mut() {
            running.last_output = Instant::now();
        }
        let message = match protocol::parse_line(line) {
            Ok(Some(message)) => message,
            Ok(None) => return,
            Err(e) => {
                // The line may hold conversation text: its content only at debug.
                let sample: String = line.chars().take(200).collect();
                tracing::warn!(session = %self.session.name, error = %e, bytes = line.len(), "skipping a non-JSON line from the CLI");
                tracing::debug!(session = %self.session.name, line = %sample, "the skipped line");
                return;
            }
        };
        let session_id = self.session.id.clone();
        match message {
            CliMessage::ControlResponse {
                request_id,
                outcome,
            } => {
                if let Some(PendingControl::Initialize) = self.pending_control.remove(&request_id) {
                    match outcome {
                        Ok(_) => {
                            if let Some(live) = self.process.as_mut() {
                                live.ready = true;
                            }
                            self.advance(ctx);
                        }
                        Err(e) => {
                            tracing::warn!(session = %self.session.name, error = %e, "initialize refused; continuing without it");
                            if let Some(live) = self.process.as_mut() {
                                live.ready = true;
                            }
                            self.advance(ctx);
                        }
                    }
                }
            }
            CliMessage::ControlRequest {
                request_id,
                subtype,
                request,
            } if subtype == "can_use_tool" => self.on_can_use_tool(request_id, request),
            CliMessage::ControlRequest {
                request_id,
                subtype,
                ..
            } => {
                // Hooks and SDK MCP servers are not configured, so nothing
                // else should ask; answer so the CLI never waits on us.
                if let Some(live) = &self.process {
                    live.handle.send_line(protocol::control_error_line(
                        &request_id,
                        &format!("unsupported control request: {subtype}"),
                    ));
                }
            }
            CliMessage::Init {
                session_id: cli_id, ..
            } => {
                let changed = cli_id != self.session.cli_session_id;
                if !cli_id.is_empty() && (changed || !self.session.cli_session_stored) {
                    self.session.cli_session_id = cli_id.clone();
                    self.session.cli_session_stored = true;
                    let id = session_id.clone();
                    // In order with the turn's writes: stored before its `done`.
                    self.writer.write(
                        move |c| {
                            crate::db::models::session::set_cli_session_id(c, &id, &cli_id)
                                .map(|_| false)
                        },
                        None,
                    );
                }
            }
            CliMessage::Assistant { blocks, .. } => {
                let Some(running) = self.current.as_mut() else {
                    return;
                };
                for block in blocks {
                    match block {
                        Block::Text { text } => {
                            // `content`/`tool_name`: the members clients of the original read.
                            let data = json!({"text": text, "content": text, "tool_name": null});
                            running.emit(&mut self.hub, "assistant", data);
                            running.add_text(text);
                        }
                        Block::ToolUse { id, name, input } => {
                            running.emit(
                                &mut self.hub,
                                "tool",
                                json!({"id": id, "name": name, "input": input,
                                       "tool_name": name, "content": null}),
                            );
                            running.tools.push(super::turn::ToolUse { name, input });
                        }
                        Block::Other => {}
                    }
                }
            }
            CliMessage::ToolResults(results) => {
                if let Some(running) = self.current.as_mut() {
                    for result in results {
                        running.emit(&mut self.hub, "tool_result", json!(result));
                    }
                }
            }
            CliMessage::TextDelta(text) => {
                if let Some(running) = self.current.as_mut() {
                    running.emit(&mut self.hub, "delta", json!({"text": text}));
                }
            }
            CliMessage::Result(result) => {
                self.cancel_approvals();
                let Some(mut running) = self.current.take() else {
                    return;
                };
                let total = usd_to_micros(result.total_cost_usd);
                let cost = match self.process.as_mut() {
                    Some(live) => {
                        let delta = (total - live.reported_cost_micros).max(0);
                        live.reported_cost_micros = total;
                        delta
                    }
                    None => 0,
                };
                let outcome = running.finish(&mut self.hub, &self.session, &result, cost);
                self.persist(running, outcome, true);
                self.advance(ctx);
            }
            CliMessage::ControlCancel { request_id } => self.on_control_cancel(&request_id),
            CliMessage::Other { .. } => {}
        }
        if self
            .current
            .as_ref()
            .is_some_and(|r| r.unflushed().len() >= super::FLUSH_AT)
        {
            self.flush_events();
        }
    }

    fn on_exit(&mut self, code: Option<i32>, signal: Option<i32>, ctx: &mut Context<Self>) {
        let stderr = self.stderr_tail();
        let was_ready = self.process.as_ref().is_some_and(|p| p.ready);
        self.process = None;
        self.pending_control.clear();
        self.generation += 1;
        self.release_slot();
        let status = match (code, signal) {
            (Some(code), _) => format!("code {code}"),
            (None, Some(signal)) => format!("signal {signal}"),
            _ => "unknown status".into(),
        };
        tracing::warn!(session = %self.session.name, %status, stderr = %stderr, "CLI process exited");
        let message = with_stderr(&format!("the CLI exited unexpectedly ({status})"), &stderr);
        if self.current.is_some() {
            self.fail_current(TurnError::Process(message));
        } else if !was_ready {
            // It died while starting: the turn that needed it cannot run.
            if let Some(turn) = self.queue.pop_front() {
                self.fail_unstarted(turn, TurnError::Process(message));
            }
        }
        self.advance(ctx);
    }
}

impl Handler<Subscribe> for SessionActor {
    type Result = actix::ResponseFuture<Subscription>;

    fn handle(&mut self, _: Subscribe, _: &mut Context<Self>) -> Self::Result {
        let live = self.hub.subscribe();
        let last_seq = self.hub.last_seq();
        let pending: Vec<_> = self
            .current
            .as_ref()
            .map(|r| r.unflushed().iter().map(to_stream_event).collect())
            .unwrap_or_default();
        // Answered after every write queued so far is applied: what is not
        // in `pending` is then in the database.
        let flushed = self.writer.flushed();
        Box::pin(async move {
            flushed.await;
            Subscription {
                live,
                pending,
                last_seq,
            }
        })
    }
}

impl Handler<Interrupt> for SessionActor {
    type Result = actix::MessageResult<Interrupt>;

    fn handle(&mut self, _: Interrupt, _: &mut Context<Self>) -> Self::Result {
        if self.current.is_none() {
            return actix::MessageResult(InterruptReply::Idle);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.stop_current(StopReason::Interrupt, Some(tx));
        actix::MessageResult(InterruptReply::Interrupting(rx))
    }
}

impl Handler<ResolveApproval> for SessionActor {
    type Result = ResponseFuture<Result<super::approvals::Resolved, ResolveError>>;

    fn handle(&mut self, msg: ResolveApproval, _: &mut Context<Self>) -> Self::Result {
        let resolved = self.resolve_approval(&msg.id, msg.decision);
        // Answer after the settled row is committed: a client listing the
        // approvals right after its decision no longer sees it pending.
        let flushed = self.writer.flushed();
        Box::pin(async move {
            flushed.await;
            resolved
        })
    }
}

impl Handler<ReleaseEvents> for SessionActor {
    type Result = ();

    fn handle(&mut self, msg: ReleaseEvents, _: &mut Context<Self>) {
        self.hub.release(msg.0);
        if let Some(running) = self.current.as_mut() {
            running.send_to_client(self.hub.published_through());
        }
    }
}

impl Handler<ApprovalStored> for SessionActor {
    type Result = ();

    fn handle(&mut self, msg: ApprovalStored, _: &mut Context<Self>) {
        self.announce_approval(msg);
    }
}
