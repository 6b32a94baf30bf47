//! Moving a session to another working directory. The CLI keys its stored
//! conversations by working directory (`projects/<cwd>/<id>.jsonl` under
//! `CLAUDE_CONFIG_DIR`), so the transcript is written into the new
//! directory's project folder before the process is restarted there; the
//! next turn then resumes the same conversation in the new place. It is
//! rebuilt from the database's mirror, never copied from the old file: the
//! CLI state folder is the agent's, and the old file may be a link to
//! anything.

use actix::{ActorFutureExt, AtomicResponse, Context, Handler, WrapFuture};

use super::SessionActor;
use crate::cli::command;
use crate::db::models::{transcript, TenantId};
use crate::sandbox::Tree;

pub use super::messages::ChangeWorkspace;

#[derive(Debug, thiserror::Error)]
pub enum ChangeWorkspaceError {
    #[error("the session has a turn running or queued; change its directory when it is idle")]
    Busy,
    #[error("{0}")]
    Failed(String),
}

impl Handler<ChangeWorkspace> for SessionActor {
    type Result = AtomicResponse<Self, Result<(), ChangeWorkspaceError>>;

    fn handle(&mut self, msg: ChangeWorkspace, ctx: &mut Context<Self>) -> Self::Result {
        self.wake(ctx);
        if !self.is_idle() {
            return AtomicResponse::new(Box::pin(actix::fut::ready(Err(
                ChangeWorkspaceError::Busy,
            ))));
        }
        // The process runs in the old directory: retire it (stdin closed, so
        // it finishes writing its transcript) and copy only once it has
        // exited; the next turn starts a process in the new directory.
        let retiring = self.take_for_retirement(super::lifecycle::RETIRE_GRACE);
        let config_dir = self.runtime.cli_config_dir(&self.session.tenant_id);
        let (folder, file) =
            command::transcript_location(&msg.workspace, &self.session.cli_session_id);
        let sandbox = self.runtime.sandbox.clone();
        let transcripts = self.transcripts.clone();
        let cli_session_id = self.session.cli_session_id.clone();
        let pool = self.runtime.pool.clone();
        let tenant = TenantId(self.session.tenant_id.clone());
        let id = self.session.id.clone();
        let workspace = msg.workspace.clone();
        let stored = workspace.to_string_lossy().into_owned();
        // Atomic: no other message (a new turn) is handled until the
        // transcript is in place and the new directory is recorded.
        AtomicResponse::new(Box::pin(
            async move {
                if let Some(retiring) = retiring {
                    retiring.await;
                }
                let owner = sandbox
                    .owner(tenant.as_str())
                    .await
                    .map_err(|e| ChangeWorkspaceError::Failed(e.to_string()))?;
                // After every mirror write queued so far.
                let session_id = id.clone();
                transcripts
                    .call(move |c| {
                        let lines = transcript::lines(c, &session_id, &cli_session_id)?;
                        if lines.is_empty() {
                            // Nothing said yet: nothing to carry.
                            return Ok(Ok(()));
                        }
                        Ok(Tree::open_or_create(&config_dir).and_then(|config| {
                            crate::cli::transcript::restore(&config, &folder, &file, &lines, owner)
                        }))
                    })
                    .await
                    .map_err(|e| ChangeWorkspaceError::Failed(e.to_string()))?
                    .map_err(|e| {
                        ChangeWorkspaceError::Failed(format!("cannot carry the transcript over: {e}"))
                    })?;
                crate::db::run(&pool, move |c| {
                    crate::db::models::workspace::set_current(c, &tenant, &id, &stored)
                })
                .await
                .map_err(|e| ChangeWorkspaceError::Failed(e.to_string()))?;
                Ok(())
            }
            .into_actor(self)
            .map(move |result, act, _| {
                act.release_slot();
                if result.is_ok() {
                    tracing::info!(session = %act.session.name, workspace = %workspace.display(), "working directory changed");
                    act.session.workspace = workspace;
                }
                result
            }),
        ))
    }
}
