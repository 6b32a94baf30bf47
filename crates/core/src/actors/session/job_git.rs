//! A job's git step: after its turn ended well, the server commits, pushes
//! and opens the pull request the job asked for, before the job's final
//! state is stored and its webhook queued (so both carry `git`).

use futures_util::future::LocalBoxFuture;

use super::running::{Outcome, Running};
use super::SessionActor;
use crate::actors::JobGitOutcome;

impl SessionActor {
    /// The git step of `running`'s job, when it asked for one and its turn
    /// answered (a failed, cancelled or interrupted turn has nothing to push).
    pub(super) fn job_git_step(
        &self,
        running: &Running,
        outcome: &Outcome,
    ) -> Option<LocalBoxFuture<'static, JobGitOutcome>> {
        let options = running.git_options()?.clone();
        match outcome {
            Ok(response) if !response.interrupted && !response.is_error => {}
            _ => return None,
        }
        let runner = self.runtime.job_git.get()?.clone();
        Some(runner.run(
            self.session.tenant_id.clone(),
            self.session.name.clone(),
            running.message().to_owned(),
            options,
        ))
    }
}
