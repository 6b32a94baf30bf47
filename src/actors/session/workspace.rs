//! Moving a session to another working directory. The CLI keys its stored
//! conversations by working directory (`projects/<cwd>/<id>.jsonl` under
//! `CLAUDE_CONFIG_DIR`), so the transcript is copied to the new directory's
//! project folder before the process is restarted there; the next turn then
//! resumes the same conversation in the new place.

use std::path::Path;

use actix::{ActorFutureExt, AtomicResponse, Context, Handler, WrapFuture};

use super::SessionActor;
use crate::cli::command;
use crate::db::models::TenantId;

pub use super::messages::ChangeWorkspace;

#[derive(Debug, thiserror::Error)]
pub enum ChangeWorkspaceError {
    #[error("the session has a turn running or queued; change its directory when it is idle")]
    Busy,
    #[error("{0}")]
    Failed(String),
}

/// Copies the transcript from `from` to `to` (via a temporary file and a
/// rename, so a half-copied transcript is never resumed). Nothing to copy is
/// fine: a session that never chatted has no transcript yet.
fn carry_transcript(from: &Path, to: &Path) -> std::io::Result<()> {
    if from == to || !from.exists() {
        return Ok(());
    }
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let partial = to.with_extension("jsonl.partial");
    std::fs::copy(from, &partial)?;
    std::fs::rename(&partial, to)
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
        let retiring = self.take_for_retirement();
        let config_dir = self.runtime.cli_config_dir(&self.session.tenant_id);
        let from = command::transcript_path(
            &config_dir,
            &self.session.workspace,
            &self.session.cli_session_id,
        );
        let to =
            command::transcript_path(&config_dir, &msg.workspace, &self.session.cli_session_id);
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
                crate::blocking::run(move || carry_transcript(&from, &to))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcripts_are_carried_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let from = tmp.path().join("projects/-a/id.jsonl");
        let to = tmp.path().join("projects/-b/id.jsonl");
        carry_transcript(&from, &to).unwrap();
        assert!(!to.exists(), "nothing to carry");
        std::fs::create_dir_all(from.parent().unwrap()).unwrap();
        std::fs::write(&from, "{\"a\":1}\n").unwrap();
        carry_transcript(&from, &to).unwrap();
        assert_eq!(std::fs::read_to_string(&to).unwrap(), "{\"a\":1}\n");
        assert!(from.exists(), "the old directory keeps its copy");
        assert!(!to.with_extension("jsonl.partial").exists());
    }
}
