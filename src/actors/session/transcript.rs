//! The transcript mirror: the CLI's `transcript_mirror` frames stored in the
//! database in order. Mirror writes have an ordered writer
//! of their own, so a turn's answer never waits for them; a failed one is
//! logged and costs the turn nothing.

use super::SessionActor;
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
}
