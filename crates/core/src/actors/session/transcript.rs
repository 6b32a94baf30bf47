//! The transcript mirror: the CLI's `transcript_mirror` frames stored in the
//! database in order, and a missing transcript file rebuilt from them before
//! a process resumes the conversation. Mirror writes have an ordered writer
//! of their own, so a turn's answer never waits for them; a failed one is
//! logged and costs the turn nothing.

use std::path::PathBuf;

use super::writer::Writer;
use super::SessionActor;
use crate::cli::command::{self, Conversation};
use crate::cli::protocol::Mirror;
use crate::db::models::transcript;
use crate::sandbox::{Owner, Tree};

impl SessionActor {
    /// Stores a frame's entries after the ones mirrored before.
    pub(super) fn mirror_transcript(&mut self, mirror: Mirror) {
        if mirror.entries.is_empty() {
            return;
        }
        let cli_session_id = mirror
            .cli_session_id()
            .map_or_else(|| self.session.cli_session_id.clone(), str::to_owned);
        // The priming exchange's throwaway conversation (see `priming`).
        if self.primed_away.as_deref() == Some(cli_session_id.as_str()) {
            return;
        }
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

    /// What the next process needs to take up the conversation, run once
    /// its agent user is known (see `TranscriptPreparation::run`).
    pub(super) fn transcript_preparation(&self) -> TranscriptPreparation {
        let (folder, file) =
            command::transcript_location(&self.session.workspace, &self.session.cli_session_id);
        TranscriptPreparation {
            config_dir: self.runtime.cli_config_dir(&self.session.tenant_id),
            folder,
            file,
            cli_session_id: self.session.cli_session_id.clone(),
            session_id: self.session.id.clone(),
            name: self.session.name.clone(),
            transcripts: self.transcripts.clone(),
        }
    }
}

/// Where the next process's transcript must be, and how to rebuild it.
pub(super) struct TranscriptPreparation {
    config_dir: PathBuf,
    folder: PathBuf,
    file: String,
    cli_session_id: String,
    session_id: String,
    name: String,
    transcripts: Writer,
}

impl TranscriptPreparation {
    /// How the next process takes up the conversation: `Resume` when its
    /// transcript file is there, or was rebuilt from the mirrored entries
    /// (after every mirror write queued so far), owned by `owner`; else
    /// `New`, as without a mirror.
    pub(super) async fn run(self, owner: Owner) -> Conversation {
        let TranscriptPreparation {
            config_dir,
            folder,
            file,
            cli_session_id: id,
            session_id,
            name,
            transcripts,
        } = self;
        let (probe_dir, probe_folder, probe_file) =
            (config_dir.clone(), folder.clone(), file.clone());
        let found = crate::blocking::run(move || {
            let config = Tree::open_or_create(&probe_dir)?;
            crate::cli::transcript::exists(&config, &probe_folder, &probe_file)
        })
        .await;
        match found {
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
                let written = Tree::open_or_create(&config_dir).and_then(|config| {
                    crate::cli::transcript::restore(&config, &folder, &file, &lines, owner)
                });
                Ok(written.map(|()| lines.len()))
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
