//! The turn at the head of the queue while the CLI works on it: what it has
//! said so far, its numbered events, and how it is recorded and answered.

use std::time::Instant;

use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::hub::{Client, Hub};
use super::SessionState;
use crate::cli::protocol::TurnResult;
use crate::db::models::event::Event;
use crate::db::models::job::JobCompletion;
use crate::db::models::message::Message;
use crate::db::models::turn::TurnRecord;
use crate::domain::event::{JobStatus, NumberedEvent, StreamEvent};
use crate::domain::money::micros_to_usd;
use crate::domain::turn::{ChatResponse, ToolUse, Turn, TurnError};

pub type Outcome = Result<ChatResponse, TurnError>;

pub struct Running {
    turn: Turn,
    started: Instant,
    pub last_output: Instant,
    texts: Vec<String>,
    pub tools: Vec<ToolUse>,
    events: Vec<Event>,
    cost_micros: i64,
    input_tokens: i64,
    output_tokens: i64,
    usage: Option<Value>,
    /// Set once the turn has been asked to stop.
    pub stop: Option<StopRequest>,
    /// Budget held for this turn, settled when it is recorded.
    pub reservation: crate::db::models::instance::Held,
    /// The process's model usage, opened for this turn when it reached the
    /// CLI: what the gateway metered is the least the turn is charged.
    pub meter: Option<crate::gateway::usage::UsageMeter>,
    /// The turn's own streaming client, if any.
    client: Option<Client>,
    /// Set once the turn ends: its closing events, published only once the
    /// turn's record is stored.
    closing: Option<Vec<NumberedEvent>>,
    /// What the job's git step did, once it ran.
    pub git_step: Option<crate::actors::JobGitOutcome>,
    /// The transcript entry of the turn's last assistant message: a fork
    /// at this turn keeps the conversation up to it.
    pub last_entry: Option<String>,
}

/// What the gateway metered for a turn's model calls.
#[derive(Debug, Default, Clone, Copy)]
struct Metered {
    cost_micros: i64,
    input_tokens: i64,
    output_tokens: i64,
}

/// Why and since when a running turn is being stopped.
pub struct StopRequest {
    pub reason: StopReason,
    pub since: Instant,
    /// Told once the stopped turn has been stored.
    pub waiters: Vec<oneshot::Sender<()>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// A client cancelled the job: it ends `cancelled`.
    Cancel,
    /// The server is shutting down: the job stays `running` and is resumed
    /// at the next start.
    Shutdown,
    /// `POST /sessions/{name}/interrupt`: the partial answer is kept.
    Interrupt,
}

impl Running {
    pub fn new(mut turn: Turn) -> Running {
        let now = Instant::now();
        let client = turn.subscriber.take().map(Client::new);
        Running {
            turn,
            started: now,
            last_output: now,
            texts: Vec::new(),
            tools: Vec::new(),
            events: Vec::new(),
            cost_micros: 0,
            input_tokens: 0,
            output_tokens: 0,
            usage: None,
            stop: None,
            reservation: Default::default(),
            meter: None,
            client,
            closing: None,
            git_step: None,
            last_entry: None,
        }
    }

    /// The turn's span: its log lines are recorded inside it.
    pub fn span(&self) -> &tracing::Span {
        &self.turn.span
    }

    /// When the turn passed each step so far.
    pub fn clock(&self) -> crate::domain::turn::TurnClock {
        self.turn.clock
    }

    /// The CLI wrote a line while this turn runs.
    pub fn saw_output(&mut self) {
        let now = Instant::now();
        self.last_output = now;
        self.turn.clock.first_output.get_or_insert(now);
    }

    /// The CLI's `result` for this turn arrived.
    pub fn answered(&mut self) {
        self.turn.clock.answered.get_or_insert(Instant::now());
    }

    /// Time since the turn started running.
    pub fn elapsed(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    pub fn message(&self) -> &str {
        &self.turn.message
    }

    pub fn job_id(&self) -> Option<&str> {
        self.turn.job_id.as_deref()
    }

    /// Numbers an event and keeps it for storage. It is published on the
    /// session's stream and to the turn's streaming client (behind any gate
    /// still closed); once the turn has ended, only with its record (see
    /// `announce_end`). A client that cannot keep up (or left) is dropped;
    /// the turn goes on regardless.
    pub fn emit(&mut self, hub: &mut Hub, event: StreamEvent) {
        let (row, event) = hub.number(event);
        self.events.push(row);
        match self.closing.as_mut() {
            Some(closing) => closing.push(event),
            None => hub.publish(event, self.client.clone()),
        }
    }

    /// From here on, events are closing events.
    fn close(&mut self) {
        self.closing.get_or_insert_with(Vec::new);
    }

    /// The events not yet stored, for an early flush.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// The events not yet handed to the writer.
    pub fn unflushed(&self) -> &[Event] {
        &self.events
    }

    /// Tells a waiting sync client that the turn waits on an approval
    /// (`Some(id)`) or that one was settled (`None`).
    /// Told in stream order, like the event about it.
    pub fn notify_approval(&self, hub: &Hub, approval_id: Option<&str>) {
        if let Some(tx) = self.turn.approvals.clone() {
            let id = approval_id.map(str::to_owned);
            hub.then(move || {
                let _ = tx.send(id);
            });
        }
    }

    pub fn add_text(&mut self, text: String) {
        self.texts.push(text);
    }

    /// Ends the turn from the CLI's `result` line: charged what the CLI
    /// reported (`reported_micros`), or what the gateway metered for the
    /// turn's calls when that is more (the agent's own calls, a CLI that
    /// under-reports).
    pub fn finish(
        &mut self,
        hub: &mut Hub,
        session: &SessionState,
        result: &TurnResult,
        reported_micros: i64,
        price: impl Fn(&[crate::gateway::usage::CallUsage]) -> i64,
    ) -> Outcome {
        self.close();
        let metered = self.close_meter(price);
        self.cost_micros = reported_micros.max(metered.cost_micros);
        self.input_tokens = result.input_tokens().max(metered.input_tokens);
        self.output_tokens = result.output_tokens().max(metered.output_tokens);
        let cost_micros = self.cost_micros;
        self.usage = Some(result.usage.clone());
        let interrupted = match self.stop.as_ref().map(|s| s.reason) {
            Some(StopReason::Cancel) => return self.fail(hub, TurnError::Cancelled),
            Some(StopReason::Shutdown) => return self.fail(hub, TurnError::Closed),
            Some(StopReason::Interrupt) => true,
            None => false,
        };
        let content = result
            .result
            .clone()
            .filter(|_| !result.is_error && !interrupted)
            .unwrap_or_else(|| self.texts.join("\n\n"));
        let response = ChatResponse {
            session_id: session.name.clone(),
            cli_session_id: result.session_id.clone(),
            content,
            structured_output: result.structured_output.clone(),
            cost: micros_to_usd(cost_micros),
            cost_micros,
            duration_ms: result.duration_ms,
            num_turns: result.num_turns,
            tools_used: self.tools.clone(),
            is_error: result.is_error,
            stop_reason: result.stop_reason.clone(),
            usage: result.usage.clone(),
            interrupted,
        };
        if interrupted {
            self.emit(
                hub,
                StreamEvent::TurnInterrupted(Box::new(response.clone())),
            );
            return Ok(response);
        }
        if result.is_error {
            let mut response = response;
            response.content = result.error_text();
            let error = TurnError::Cli {
                message: result.error_text(),
                response: Some(Box::new(response)),
            };
            self.emit(
                hub,
                StreamEvent::Error(Box::new(crate::error::turn_problem(&error))),
            );
            Err(error)
        } else {
            self.emit(hub, StreamEvent::Done(Box::new(response.clone())));
            Ok(response)
        }
    }

    /// Charges a turn the CLI did not report the cost of (cut short) what
    /// its model calls used, priced by `price`; also their tokens.
    pub fn charge_model_calls(
        &mut self,
        price: impl Fn(&[crate::gateway::usage::CallUsage]) -> i64,
    ) {
        let metered = self.close_meter(price);
        self.cost_micros = metered.cost_micros;
        self.input_tokens = metered.input_tokens;
        self.output_tokens = metered.output_tokens;
    }

    /// Ends the turn on the process's meter (once): the usage of the turn's
    /// calls not paid yet, priced. Calls that go on streaming, and calls
    /// made from now on, are charged to the tenant by the gateway.
    fn close_meter(
        &mut self,
        price: impl Fn(&[crate::gateway::usage::CallUsage]) -> i64,
    ) -> Metered {
        let Some(meter) = self.meter.take() else {
            return Metered::default();
        };
        let calls = meter.close_turn();
        Metered {
            cost_micros: price(&calls),
            input_tokens: calls.iter().map(|c| c.all_input_tokens()).sum(),
            output_tokens: calls.iter().map(|c| c.output_tokens).sum(),
        }
    }

    /// Ends the turn without a result from the CLI.
    pub fn fail(&mut self, hub: &mut Hub, error: TurnError) -> Outcome {
        self.close();
        // A turn asked to stop ends as stopped, however it ended.
        let error = match self.stop.as_ref().map(|s| s.reason) {
            Some(StopReason::Cancel | StopReason::Interrupt) => TurnError::Cancelled,
            Some(StopReason::Shutdown) => TurnError::Closed,
            None => error,
        };
        self.emit(
            hub,
            StreamEvent::Error(Box::new(crate::error::turn_problem(&error))),
        );
        Err(error)
    }

    /// The rows this turn leaves. Work the CLI never saw leaves no history.
    pub fn record(
        &self,
        session: &SessionState,
        outcome: &Outcome,
        reached_cli: bool,
    ) -> TurnRecord {
        let now = crate::db::now();
        let duration_ms = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let mut messages = Vec::new();
        // Stopped work leaves no (empty) history rows; its cost still counts.
        let stopped = matches!(outcome, Err(TurnError::Cancelled | TurnError::Closed));
        if reached_cli && !stopped {
            messages.push(Message {
                id: uuid::Uuid::now_v7().to_string(),
                session_id: session.id.clone(),
                role: "user".into(),
                content: self.turn.message.clone(),
                tools_used: "[]".into(),
                cost_micros: 0,
                duration_ms: 0,
                usage: None,
                is_error: false,
                created_at: now,
                interrupted: false,
            });
            let (content, is_error, interrupted) = match outcome {
                Ok(response) => (response.content.clone(), false, response.interrupted),
                Err(error) => (error.to_string(), true, false),
            };
            messages.push(Message {
                id: uuid::Uuid::now_v7().to_string(),
                session_id: session.id.clone(),
                role: "assistant".into(),
                content,
                tools_used: serde_json::to_string(&self.tools).unwrap_or_else(|_| "[]".into()),
                cost_micros: self.cost_micros,
                duration_ms,
                usage: self.usage.as_ref().map(Value::to_string),
                is_error,
                created_at: now,
                interrupted,
            });
        }
        TurnRecord {
            session_id: session.id.clone(),
            tenant_id: session.tenant_id.clone(),
            reservation: self.reservation.clone(),
            messages,
            events: self.events.clone(),
            cost_micros: self.cost_micros,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            counts_as_turn: reached_cli && !stopped,
            job: self.job_completion(outcome, duration_ms),
        }
    }

    /// Publishes the job's final status (`job_status`), when this turn ran a job.
    pub fn emit_job_status(&mut self, hub: &mut Hub, outcome: &Outcome) {
        if let Some(done) = self.job_completion(outcome, 0) {
            let status = JobStatus {
                job_id: done.job_id,
                status: done.status.into_owned(),
                error: Some(done.error),
            };
            self.emit(hub, StreamEvent::JobStatus(status));
        }
    }

    /// The job's final state, or `None` when it must stay open: a turn cut
    /// by shutdown is resumed at the next start.
    fn job_completion(&self, outcome: &Outcome, duration_ms: i64) -> Option<JobCompletion> {
        let job_id = self.turn.job_id.clone()?;
        let tools_used = serde_json::to_string(&self.tools).unwrap_or_else(|_| "[]".into());
        let (status, result, error) = match outcome {
            // An interrupted job ends cancelled, its partial answer kept.
            Ok(response) if response.interrupted => (
                crate::domain::job::CANCELLED,
                Some(json!(response).to_string()),
                Some("the turn was interrupted".to_owned()),
            ),
            Ok(response) => match &self.git_step {
                Some(step) if step.failure.is_some() => (
                    crate::domain::job::FAILED,
                    Some(json!(response).to_string()),
                    step.failure.clone(),
                ),
                _ => (
                    crate::domain::job::DONE,
                    Some(json!(response).to_string()),
                    None,
                ),
            },
            Err(TurnError::Closed) => return None,
            Err(TurnError::Cancelled) => (
                crate::domain::job::CANCELLED,
                None,
                Some(TurnError::Cancelled.to_string()),
            ),
            Err(TurnError::Cli { message, response }) => (
                crate::domain::job::FAILED,
                response.as_ref().map(|r| json!(r).to_string()),
                Some(message.clone()),
            ),
            Err(other) => (crate::domain::job::FAILED, None, Some(other.to_string())),
        };
        Some(JobCompletion {
            job_id,
            status: status.into(),
            result,
            error,
            cost_micros: self.cost_micros,
            duration_ms,
            tools_used,
            git: self.git_step.as_ref().map(|step| step.git.to_string()),
        })
    }

    /// The job's git step, when its turn asked for one.
    pub fn git_options(&self) -> Option<&crate::domain::job_git::JobGit> {
        self.turn
            .overrides
            .git
            .as_ref()
            .filter(|_| self.turn.job_id.is_some())
    }

    /// Publishes the closing events, then answers the waiting client and
    /// the stop waiters, if any: all behind the gate of the turn's record.
    pub fn announce_end(self, hub: &Hub, outcome: Outcome) {
        for event in self.closing.unwrap_or_default() {
            hub.publish(event, self.client.clone());
        }
        let reply = self.turn.reply;
        let waiters = self.stop.map(|s| s.waiters).unwrap_or_default();
        hub.then(move || {
            if let Some(reply) = reply {
                let _ = reply.send(outcome);
            }
            for waiter in waiters {
                let _ = waiter.send(());
            }
        });
    }
}
