//! What the CLI says: its stdout lines, parsed into protocol messages,
//! become the running turn's events, control answers, approvals and the
//! turn's end; its exit fails what it was doing.

use actix::{ActorFutureExt, AsyncContext, Context, StreamHandler, WrapFuture};

use super::{PendingControl, SessionActor};
use crate::cli::process::{ProcessEvent, ProcessOutput};
use crate::cli::protocol::{self, Block, CliMessage};
use crate::domain::event::{AssistantText, StreamEvent, TextDelta, ToolCall};
use crate::domain::money::usd_to_micros;

impl StreamHandler<ProcessEvent> for SessionActor {
    fn handle(&mut self, event: ProcessEvent, ctx: &mut Context<Self>) {
        let _entered = self.span().entered();
        if event.generation != self.generation {
            // A process let go of (retired) still writes its transcript's
            // last entries: they belong to the conversation all the same.
            if let ProcessOutput::Line(line) = &event.output {
                if line.contains("\"transcript_mirror\"") {
                    if let Ok(Some(CliMessage::TranscriptMirror(mirror))) =
                        protocol::parse_line(line)
                    {
                        self.mirror_transcript(mirror);
                    }
                }
            }
            return;
        }
        match event.output {
            ProcessOutput::Line(line) => self.on_line(&line, ctx),
            ProcessOutput::Exited { code, signal } => self.on_exit(code, signal, ctx),
        }
    }

    /// A process's output ended (it exited; its `Exited` came first). The
    /// default would stop the actor.
    fn finished(&mut self, _: &mut Context<Self>) {}
}

impl SessionActor {
    fn on_line(&mut self, line: &str, ctx: &mut Context<Self>) {
        if let Some(running) = self.head.running_mut() {
            running.saw_output();
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
            } => match self.pending_control.remove(&request_id) {
                Some(PendingControl::Initialize) => {
                    if let Err(e) = outcome {
                        tracing::warn!(session = %self.session.name, error = %e, "initialize refused; continuing without it");
                    }
                    if let Some(live) = self.process.live() {
                        crate::metrics::process_start_step("initialize", live.started.elapsed());
                    }
                    self.on_initialized(ctx);
                }
                Some(PendingControl::PrimeContext) => {
                    if let Err(e) = outcome {
                        tracing::debug!(session = %self.session.name, error = %e, "the context request of priming was refused");
                    }
                    self.primed(ctx);
                }
                Some(PendingControl::Interrupt) | None => {}
            },
            CliMessage::ControlRequest {
                request_id,
                subtype,
                request,
            } if subtype == "can_use_tool" => self.on_can_use_tool(request_id, request),
            CliMessage::ControlRequest {
                request_id,
                subtype,
                request,
            } if subtype == "mcp_message" => self.on_mcp_message(request_id, request, ctx),
            CliMessage::ControlRequest {
                request_id,
                subtype,
                ..
            } => {
                // Hooks are not configured, so nothing else should ask;
                // answer so the CLI never waits on us.
                if let Some(live) = self.process.live() {
                    live.handle.send_line(protocol::control_error_line(
                        &request_id,
                        &format!("unsupported control request: {subtype}"),
                    ));
                }
            }
            CliMessage::Init {
                session_id: cli_id,
                mcp_servers,
                mcp_tools,
                ..
            } => {
                self.note_mcp(mcp_servers, mcp_tools);
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
            CliMessage::Assistant { blocks, uuid, .. } => {
                let Some(running) = self.head.running_mut() else {
                    return;
                };
                if uuid.is_some() {
                    running.last_entry = uuid;
                }
                for block in blocks {
                    match block {
                        Block::Text { text } => {
                            running.emit(
                                &mut self.hub,
                                StreamEvent::Assistant(AssistantText::new(text.clone())),
                            );
                            running.add_text(text);
                        }
                        Block::ToolUse { id, name, input } => {
                            running.emit(
                                &mut self.hub,
                                StreamEvent::Tool(ToolCall::new(id, name.clone(), input.clone())),
                            );
                            running
                                .tools
                                .push(crate::domain::turn::ToolUse { name, input });
                        }
                        Block::Other => {}
                    }
                }
            }
            CliMessage::ToolResults(results) => {
                if let Some(running) = self.head.running_mut() {
                    for result in results {
                        running.emit(&mut self.hub, StreamEvent::ToolResult(result));
                    }
                }
            }
            CliMessage::TextDelta(text) => {
                if let Some(running) = self.head.running_mut() {
                    running.emit(&mut self.hub, StreamEvent::Delta(TextDelta { text }));
                }
            }
            CliMessage::Result(result) => {
                if self.priming_result(result.total_cost_usd, ctx) {
                    return;
                }
                self.cancel_approvals();
                let Some(mut running) = self.head.take_running() else {
                    return;
                };
                running.answered();
                let total = usd_to_micros(result.total_cost_usd);
                let cost = match self.process.live_mut() {
                    Some(live) => {
                        let delta = (total - live.reported_cost_micros).max(0);
                        live.reported_cost_micros = total;
                        delta
                    }
                    None => 0,
                };
                let gateway = &self.runtime.gateway;
                let outcome =
                    running.finish(&mut self.hub, &self.session, &result, cost, |calls| {
                        gateway.cost_micros(calls)
                    });
                if let Some(step) = self.job_git_step(&running, &outcome) {
                    // The queue waits: the next turn must not change the
                    // worktree while it is committed and pushed.
                    ctx.wait(step.into_actor(self).map(move |done, act, ctx| {
                        for event in done.events.clone() {
                            running.emit(&mut act.hub, event);
                        }
                        running.git_step = Some(done);
                        act.end_turn(running, outcome, ctx);
                    }));
                    return;
                }
                self.end_turn(running, outcome, ctx);
            }
            CliMessage::ControlCancel { request_id } => self.on_control_cancel(&request_id),
            // Stored only: no event, so the event numbering is untouched.
            CliMessage::TranscriptMirror(mirror) => self.mirror_transcript(mirror),
            CliMessage::Other { .. } => {}
        }
        if self
            .head
            .running()
            .is_some_and(|r| r.unflushed().len() >= super::FLUSH_AT)
        {
            self.flush_events();
        }
    }
}
