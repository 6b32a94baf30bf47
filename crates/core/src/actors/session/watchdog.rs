//! The watchdog: what the passing of time decides. A chat that waits too
//! long for a permit, a turn that does not stop when interrupted, a CLI that
//! goes quiet mid-turn or never initializes, approvals nobody answered, the
//! end of the shutdown grace.

use std::time::{Duration, Instant};

use actix::Context;

use super::running::StopReason;
use super::{Head, Intake, Process, SessionActor};
use crate::domain::turn::TurnError;

/// How long a fresh process may take to answer `initialize`.
const INITIALIZE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an interrupted turn may take to end before the process is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

impl SessionActor {
    /// A chat (a client waiting on the answer) that cannot get one of its
    /// tenant's turn permits in time is answered 429 instead of waiting on;
    /// jobs wait as long as it takes.
    pub(super) fn check_turn_wait(&mut self, ctx: &mut Context<Self>) {
        let Head::AskedForPermit(since) = self.head else {
            return;
        };
        let wait = self.runtime.settings.sessions.chat_queue_timeout;
        let head_is_chat = self.queue.front().is_some_and(|t| t.job_id.is_none());
        if head_is_chat && since.elapsed() >= wait {
            if let Some(turn) = self.queue.pop_front() {
                self.fail_unstarted(turn, TurnError::Busy);
            }
            self.release_permit();
            self.advance(ctx);
        }
    }

    pub(super) fn check_watchdog(&mut self, ctx: &mut Context<Self>) {
        let _entered = self.span().entered();
        self.check_turn_wait(ctx);
        if let Intake::Draining(draining) = &self.intake {
            let running_unstopped = self.head.running().is_some_and(|r| r.stop.is_none());
            if running_unstopped && Instant::now() >= draining.deadline {
                tracing::warn!(session = %self.session.name, "shutdown grace over; interrupting the running turn");
                self.stop_current(StopReason::Shutdown, None);
            }
        }
        let stop_overdue = self
            .head
            .running()
            .and_then(|r| r.stop.as_ref())
            .is_some_and(|s| s.since.elapsed() >= STOP_GRACE);
        if stop_overdue {
            tracing::warn!(session = %self.session.name, "the turn did not stop when interrupted; killing the CLI");
            self.release_slot();
            let error = match self
                .head
                .running()
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
        let timeout = self.runtime.settings.sessions.timeout;
        // A turn waiting on a client's approval is quiet, not stalled.
        let stalled_turn = self.approvals.is_empty()
            && self
                .head
                .running()
                .is_some_and(|r| r.last_output.elapsed() >= timeout);
        let stalled_start = match &self.process {
            Process::Starting(p) => p.started.elapsed() >= INITIALIZE_TIMEOUT.max(timeout),
            _ => false,
        };
        if stalled_turn {
            tracing::warn!(session = %self.session.name, "turn timed out; restarting the CLI");
            self.release_slot();
            self.fail_current(TurnError::Timeout(timeout.as_secs()));
            self.advance(ctx);
        } else if stalled_start {
            tracing::warn!(session = %self.session.name, "CLI did not initialize in time");
            let stderr = self.stderr_tail();
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
}

/// An error message with the CLI's stderr tail, when it said anything.
pub(super) fn with_stderr(message: &str, stderr: &str) -> String {
    if stderr.is_empty() {
        message.to_owned()
    } else {
        format!("{message}: {stderr}")
    }
}
