//! The messages a `SessionActor` accepts, each handed to the part of the
//! actor that owns the concern. Every one wakes the actor: it may bring work.

use actix::{ActorContext, ActorFutureExt, Context, Handler, ResponseFuture, WrapFuture};

use super::approvals::ResolveError;
use super::hub::to_stream_event;
use super::messages::{
    Advance, Announce, CancelJob, CancelReply, Close, Drain, Enqueue, Evict, Interrupt,
    InterruptReply, ResolveApproval, SlotGranted, Subscribe, Subscription, TurnGranted,
};
use super::running::StopReason;
use super::{Draining, Head, Intake, Process, SessionActor};
use crate::domain::turn::TurnError;

impl Handler<Enqueue> for SessionActor {
    type Result = ();

    fn handle(&mut self, msg: Enqueue, ctx: &mut Context<Self>) {
        self.wake(ctx);
        let _entered =
            tracing::info_span!(parent: &msg.0.span, "session", session = %self.session.name)
                .entered();
        if matches!(self.intake, Intake::Closed) {
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
        self.wake(ctx);
        self.head = Head::Permitted;
        if let Some(turn) = self.queue.front_mut() {
            turn.clock.permitted = Some(std::time::Instant::now());
        }
        if self.queue.is_empty() {
            self.release_permit();
            return;
        }
        self.advance(ctx);
    }
}

impl Handler<SlotGranted> for SessionActor {
    type Result = ();

    fn handle(&mut self, msg: SlotGranted, ctx: &mut Context<Self>) {
        self.wake(ctx);
        let _entered = self.span().entered();
        if self.process.live().is_some() {
            return;
        }
        self.process = Process::Slot;
        if !self.is_idle() {
            self.advance(ctx);
        } else if msg.warm {
            self.warm_up(ctx);
        } else {
            self.release_slot();
        }
    }
}

impl Handler<Evict> for SessionActor {
    type Result = bool;

    fn handle(&mut self, _: Evict, ctx: &mut Context<Self>) -> bool {
        self.wake(ctx);
        let _entered = self.span().entered();
        if !self.is_idle() {
            return false;
        }
        if self.process.live().is_some() {
            tracing::info!(session = %self.session.name, "stopping idle CLI process");
        }
        // The slot is handed on only once the process is gone.
        self.retire_process(ctx, |act, _| {
            act.process = Process::Slot;
            act.release_slot();
        });
        true
    }
}

impl Handler<Close> for SessionActor {
    type Result = actix::ResponseActFuture<Self, ()>;

    /// Answers once the actor has stopped and its process is reaped; an idle
    /// process is retired gracefully (transcript complete) first, a busy one
    /// is killed. What
    /// was still open is stored before the answer, so whoever closed the
    /// session (deleting it) finds no write still to come.
    fn handle(&mut self, _: Close, _: &mut Context<Self>) -> Self::Result {
        self.intake = Intake::Closed;
        // An idle process finishes its transcript; a busy one is killed at
        // once. Either way the answer waits until it is reaped.
        let grace = if self.is_idle() {
            super::lifecycle::RETIRE_GRACE
        } else {
            std::time::Duration::ZERO
        };
        let retiring = self.take_for_retirement(grace);
        Box::pin(
            async move {
                if let Some(retiring) = retiring {
                    retiring.await;
                }
            }
            .into_actor(self)
            .then(|(), act, _| {
                act.wind_down();
                let (turns, transcript) = (act.writer.flushed(), act.transcripts.flushed());
                async move {
                    turns.await;
                    transcript.await;
                }
                .into_actor(act)
            })
            .map(|(), _, ctx| ctx.stop()),
        )
    }
}

impl Handler<CancelJob> for SessionActor {
    type Result = actix::ResponseActFuture<Self, Result<CancelReply, crate::db::DbError>>;

    fn handle(&mut self, msg: CancelJob, ctx: &mut Context<Self>) -> Self::Result {
        self.wake(ctx);
        match self.cancel_held(&msg.job_id) {
            Some(reply) => Box::pin(actix::fut::ready(Ok(reply))),
            None => self.cancel_from_database(msg.job_id),
        }
    }
}

impl Handler<Drain> for SessionActor {
    type Result = actix::ResponseFuture<()>;

    fn handle(&mut self, msg: Drain, ctx: &mut Context<Self>) -> Self::Result {
        self.wake(ctx);
        let (tx, rx) = tokio::sync::oneshot::channel();
        match &mut self.intake {
            Intake::Open => {
                self.intake = Intake::Draining(Draining {
                    deadline: msg.deadline,
                    waiters: vec![tx],
                });
            }
            Intake::Draining(draining) => draining.waiters.push(tx),
            // Closed: nothing more runs here.
            Intake::Closed => {
                let _ = tx.send(());
            }
        }
        self.advance(ctx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<Advance> for SessionActor {
    type Result = ();

    fn handle(&mut self, _: Advance, ctx: &mut Context<Self>) {
        self.wake(ctx);
        let _entered = self.span().entered();
        self.advance(ctx);
    }
}

impl Handler<Subscribe> for SessionActor {
    type Result = actix::ResponseFuture<Subscription>;

    fn handle(&mut self, _: Subscribe, ctx: &mut Context<Self>) -> Self::Result {
        self.wake(ctx);
        let live = self.hub.subscribe();
        let last_seq = self.hub.last_seq();
        let pending: Vec<_> = self
            .head
            .running()
            .map(|r| r.unflushed().iter().filter_map(to_stream_event).collect())
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

    fn handle(&mut self, _: Interrupt, ctx: &mut Context<Self>) -> Self::Result {
        self.wake(ctx);
        if self.head.running().is_none() {
            return actix::MessageResult(InterruptReply::Idle);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.stop_current(StopReason::Interrupt, Some(tx));
        actix::MessageResult(InterruptReply::Interrupting(rx))
    }
}

impl Handler<ResolveApproval> for SessionActor {
    type Result = ResponseFuture<Result<crate::domain::approval::Resolved, ResolveError>>;

    fn handle(&mut self, msg: ResolveApproval, ctx: &mut Context<Self>) -> Self::Result {
        self.wake(ctx);
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

impl Handler<Announce> for SessionActor {
    type Result = ResponseFuture<()>;

    /// Resolves once the event is stored (a client that reads the events
    /// after the call finds it).
    fn handle(&mut self, msg: Announce, _ctx: &mut Context<Self>) -> Self::Result {
        let (row, event) = self.hub.number(msg.0);
        // Stored before told, like a turn's events.
        let gate = self.hub.gate();
        self.hub.publish(event, None);
        let rows = vec![row];
        let (stored_tx, stored) = tokio::sync::oneshot::channel();
        self.writer.write(
            move |c| {
                crate::db::models::event::insert_all(c, &rows)?;
                Ok(true)
            },
            Some(Box::new(move |_| {
                gate.open();
                let _ = stored_tx.send(());
            })),
        );
        Box::pin(async move {
            let _ = stored.await;
        })
    }
}
