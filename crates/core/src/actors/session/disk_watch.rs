//! The disk watchdog: while the session's CLI process lives (in a turn or
//! idle, since a tool may go on writing in the background), what its tenant
//! keeps on disk is measured every `CHECK_EVERY`. Once the quota is reached
//! the process is killed with everything it started, a running turn ends
//! with `disk-quota-exceeded`, and no process or turn starts again until the
//! tenant is back under its quota.
//!
//! What a tenant can keep beyond its quota is therefore what its agents
//! write between two measurements (`CHECK_EVERY`, more when the trees are
//! so large that walks are spaced out, see `disk`), and no single file can
//! grow past the quota (`RLIMIT_FSIZE`).

use std::future::Future;
use std::time::Duration;

use actix::{ActorFutureExt, AsyncContext, Context, WrapFuture};

use super::SessionActor;
use crate::disk::{DiskError, DiskStatus};
use crate::domain::turn::TurnError;

/// How often the tenant's usage is measured while the process lives.
pub(super) const CHECK_EVERY: Duration = Duration::from_millis(100);

impl SessionActor {
    /// The tenant's usage, at most one check period old. The measurement
    /// runs as a task of its own, not in this actor's context: it holds
    /// the tenant's meter lock, and an actor paused in `ctx.wait` polls
    /// none of its other futures, so a check in flight there would keep the
    /// lock from the measurement the actor is waiting on.
    pub(super) fn disk_status(
        &self,
    ) -> impl Future<Output = Result<DiskStatus, DiskError>> + 'static {
        let meter = self.runtime.disk.clone();
        let tenant = self.session.tenant_id.clone();
        let task = actix::spawn(async move { meter.status(&tenant, CHECK_EVERY).await });
        async move {
            task.await
                .map_err(|e| DiskError::Panicked(crate::blocking::Panicked::from(e)))?
        }
    }

    /// What keeps a turn from starting: the quota reached. A measurement
    /// that fails lets it start (the watchdog measures again while it runs).
    pub(super) fn disk_refusal(&self, status: &Result<DiskStatus, DiskError>) -> Option<TurnError> {
        match status {
            Ok(status) if status.is_over() => Some(status.turn_error()),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(session = %self.session.name, error = %e, "cannot measure the tenant's disk usage");
                None
            }
        }
    }

    /// Measures (one measurement at a time per actor) while a process lives.
    pub(super) fn check_disk(&mut self, ctx: &mut Context<Self>) {
        if self.disk_check_running || self.process.live().is_none() {
            return;
        }
        self.disk_check_running = true;
        ctx.spawn(self.disk_status().into_actor(self).map(|status, act, ctx| {
            act.disk_check_running = false;
            if let Some(error) = act.disk_refusal(&status) {
                act.stop_for_disk(error, ctx);
            }
        }));
    }

    /// The quota is reached: the process and its tools stop now.
    fn stop_for_disk(&mut self, error: TurnError, ctx: &mut Context<Self>) {
        if self.process.live().is_none() && self.head.running().is_none() {
            return;
        }
        let _entered = self.span().entered();
        tracing::warn!(session = %self.session.name, reason = %error, "disk quota reached; stopping the CLI");
        self.release_slot();
        self.fail_current(error);
        self.advance(ctx);
    }
}
