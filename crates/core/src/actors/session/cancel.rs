//! Cancelling a job's turn wherever the job waits: running here (the CLI's
//! `interrupt`), queued here, or queued only in the database (its hand-off
//! to this session failed). Each way ends alike: the same events on the
//! session's stream, stored under its numbering, and the same job row and
//! webhook.

use actix::{ActorFutureExt, ResponseActFuture, WrapFuture};
use tokio::sync::oneshot;

use super::messages::CancelReply;
use super::running::{Running, StopReason, StopRequest};
use super::SessionActor;
use crate::db::models::job;
use crate::db::DbError;
use crate::domain::turn::{Turn, TurnError};

impl SessionActor {
    /// Cancels the job's turn if this actor holds it; `None` when it does not.
    pub(super) fn cancel_held(&mut self, job_id: &str) -> Option<CancelReply> {
        let running_it = self
            .head
            .running()
            .is_some_and(|r| r.job_id() == Some(job_id));
        if running_it {
            let (tx, rx) = oneshot::channel();
            self.stop_current(StopReason::Cancel, Some(tx));
            return Some(CancelReply::Cancelling(rx));
        }
        let position = self
            .queue
            .iter()
            .position(|t| t.job_id.as_deref() == Some(job_id))?;
        let turn = self.queue.remove(position)?;
        Some(CancelReply::Cancelling(self.cancel_unstarted(turn)))
    }

    /// Cancels a job this actor does not hold if the database still has it
    /// queued for this session. The row is read in order with the session's
    /// writes, so a job whose end is still being written is seen ended, not
    /// queued; the events are then numbered and stored by this actor like
    /// any other, so they never race its own.
    pub(super) fn cancel_from_database(
        &mut self,
        job_id: String,
    ) -> ResponseActFuture<Self, Result<CancelReply, DbError>> {
        let id = job_id.clone();
        let lookup = self.writer.call(move |c| job::find_by_id(c, &id));
        Box::pin(lookup.into_actor(self).map(move |found, act, _| {
            // Handed to this session while it was looked up (start-up recovery).
            if let Some(reply) = act.cancel_held(&job_id) {
                return Ok(reply);
            }
            let queued = found?.filter(|j| {
                j.status == crate::domain::job::QUEUED && j.session_id == act.session.id
            });
            Ok(match queued {
                Some(row) => CancelReply::Cancelling(act.cancel_unstarted(super::job_turn(&row))),
                None => CancelReply::NotQueued,
            })
        }))
    }

    /// Ends a turn that never reached the CLI as cancelled: no history, the
    /// job's final state and its events. The receiver fires once stored.
    fn cancel_unstarted(&mut self, turn: Turn) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut running = Running::new(turn);
        running.stop = Some(StopRequest {
            reason: StopReason::Cancel,
            since: std::time::Instant::now(),
            waiters: vec![tx],
        });
        let outcome = running.fail(&mut self.hub, TurnError::Cancelled);
        self.persist(running, outcome, false);
        rx
    }
}
