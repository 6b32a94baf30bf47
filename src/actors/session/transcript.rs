//! The transcript mirror: the CLI's `transcript_mirror` frames stored in the
//! database in order, and a missing transcript file rebuilt from them before
//! a process resumes the conversation. Mirror writes have an ordered writer
//! of their own, so a turn's answer never waits for them; a failed one is
//! logged and costs the turn nothing.

use std::future::Future;

use super::SessionActor;
use crate::cli::command::{self, Conversation};
use crate::cli::protocol::Mirror;
use crate::db::models::transcript;

impl SessionActor {
    /// Stores a frame's entries after the ones mirrored before.
    pub(super) fn mirror_transcript(&mut self, mirror: Mirror) {
        if mirror.entries.is_empty() {
            return;
        }
        let cli_session_id = mirror
            .cli_session_id()
            .map_or_else(|| self.session.cli_session_id.clone(), str::to_owned);
        let session_id = self.session.id.clone();
        let entries = mirror.entries;
        self.transcripts.write(
            move |c| {
                let pairs = entries.iter().map(|e| (e.key.as_str(), e.line.as_str()));
                transcript::store(c, &session_id, &cli_session_id, pairs).map(|_| false)
            },
            None,
        );
    }

    /// How the next process takes up the conversation: `Resume` when its
    /// transcript file is there, or was rebuilt from the mirrored entries
    /// (after every mirror write queued so far); else `New`, as without a
    /// mirror.
    pub(super) fn prepare_transcript(&self) -> impl Future<Output = Conversation> + 'static {
        let config_dir = self.runtime.cli_config_dir(&self.session.tenant_id);
        let path = command::transcript_path(
            &config_dir,
            &self.session.workspace,
            &self.session.cli_session_id,
        );
        let id = self.session.cli_session_id.clone();
        let session_id = self.session.id.clone();
        let name = self.session.name.clone();
        let transcripts = self.transcripts.clone();
        async move {
            let probe = path.clone();
            match crate::blocking::run(move || probe.try_exists()).await {
                Ok(Ok(true)) => return Conversation::Resume(id),
                Ok(Ok(false)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(session = %name, error = %e, "cannot look for the transcript file");
                }
                Err(e) => {
                    tracing::warn!(session = %name, error = %e, "cannot look for the transcript file");
                }
            }
            let cli_id = id.clone();
            let restored = transcripts
                .call(move |c| {
                    let lines = transcript::lines(c, &session_id, &cli_id)?;
                    if lines.is_empty() {
                        return Ok(Ok(0));
                    }
                    Ok(crate::cli::transcript::restore(&path, &lines).map(|()| lines.len()))
                })
                .await;
            match restored {
                Ok(Ok(0)) => Conversation::New(id),
                Ok(Ok(entries)) => {
                    tracing::info!(session = %name, entries, "rebuilt the missing transcript file from the database");
                    Conversation::Resume(id)
                }
                Ok(Err(e)) => {
                    tracing::error!(session = %name, error = %e, "cannot rebuild the missing transcript file; the conversation starts anew");
                    Conversation::New(id)
                }
                Err(e) => {
                    tracing::error!(session = %name, error = %e, "cannot read the mirrored transcript; the conversation starts anew");
                    Conversation::New(id)
                }
            }
        }
    }
}
