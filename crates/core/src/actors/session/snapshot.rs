//! The workspace at the end of each turn, for forks at that turn: it is
//! snapshotted (see `snapshots`) before the next turn may change it (the
//! queue waits, as for a job's git step), and the turn's row (its last
//! transcript entry, what became of the snapshot) is stored ahead of the
//! turn's record, so it is there once the client hears of the turn's end.
//! Snapshots older than the last `SNAPSHOT_KEEP_TURNS` turns are dropped
//! then.

use std::time::Instant;

use actix::{ActorFutureExt, AsyncContext as _, Context, WrapFuture};

use super::running::{Outcome, Running};
use super::SessionActor;
use crate::db::models::turn_snapshot::{self, state, TurnSnapshot};
use crate::domain::turn::TurnError;
use crate::snapshots::{self, Limits, NotTaken, SessionStore};

/// What became of one turn's snapshot.
struct Taken {
    state: &'static str,
    reason: Option<String>,
    files: u64,
    bytes: u64,
}

impl SessionActor {
    /// Ends the turn that got its result: snapshots the workspace when the
    /// turn counts, then stores the turn and lets the queue move on.
    pub(super) fn end_turn(&mut self, running: Running, outcome: Outcome, ctx: &mut Context<Self>) {
        // Stopped work is no turn (see `Running::record`): nothing to fork at.
        if matches!(outcome, Err(TurnError::Cancelled | TurnError::Closed)) {
            self.persist(running, outcome, true);
            self.advance(ctx);
            return;
        }
        let turn = self.session.turns + 1;
        let entry_uuid = running.last_entry.clone();
        let snapshot = self.snapshot_workspace(turn);
        // The turn's transcript entries are stored before its end is told,
        // so a fork asked right after the answer finds them.
        let mirrored = self.transcripts.call(|_| Ok(()));
        let ready = async move {
            let taken = snapshot.await;
            if let Err(e) = mirrored.await {
                tracing::warn!(error = %e, "the transcript mirror is behind");
            }
            taken
        };
        ctx.wait(ready.into_actor(self).map(move |taken, act, ctx| {
            // Written ahead of the turn's record (same ordered writer): the
            // client told of the turn's end can fork at it.
            act.store_turn(turn, entry_uuid, taken);
            act.persist(running, outcome, true);
            act.advance(ctx);
        }));
    }

    /// Snapshots the workspace as turn `turn`'s (off when no turn is kept).
    fn snapshot_workspace(&self, turn: i64) -> impl std::future::Future<Output = Taken> {
        let settings = self.runtime.settings.files.snapshots.clone();
        let areas = self.runtime.settings.storage.approved_directory.clone();
        let (session_id, tenant_id) = (self.session.id.clone(), self.session.tenant_id.clone());
        let workspace = self.session.workspace.clone();
        let name = self.session.name.clone();
        async move {
            if settings.keep_turns == 0 {
                return Taken::none(
                    state::OFF,
                    "workspace snapshots are off (SNAPSHOT_KEEP_TURNS=0)",
                );
            }
            let started = Instant::now();
            let limits = Limits {
                max_bytes: settings.max_bytes,
                max_files: settings.max_files,
            };
            let taken = crate::blocking::run(move || {
                let store = SessionStore::new(&snapshots::store_root(&areas), &session_id);
                let tree = crate::workspace::open_tree(&areas, &tenant_id, &workspace)?;
                // An unreadable previous manifest only costs reading every file again.
                let previous = store.latest_manifest().unwrap_or_default();
                let manifest = snapshots::take(&store, tree.as_dir(), previous.as_ref(), limits)?;
                store.save_manifest(turn, &manifest)?;
                Ok::<_, NotTaken>(manifest)
            })
            .await;
            let taken = match taken {
                Ok(Ok(manifest)) => Taken {
                    state: state::STORED,
                    reason: None,
                    files: manifest.files,
                    bytes: manifest.bytes,
                },
                Ok(Err(NotTaken::OverLimit(reason))) => Taken::none(state::OVER_LIMIT, &reason),
                Ok(Err(e)) => {
                    tracing::warn!(session = %name, turn, error = %e, "cannot snapshot the workspace");
                    Taken::none(state::FAILED, &e.to_string())
                }
                Err(e) => Taken::none(state::FAILED, &e.to_string()),
            };
            crate::metrics::workspace_snapshot(taken.state, started.elapsed());
            taken
        }
    }

    /// Stores turn `turn`'s row, and drops the snapshots of turns no
    /// longer kept.
    fn store_turn(&mut self, turn: i64, entry_uuid: Option<String>, taken: Taken) {
        let keep = i64::from(self.runtime.settings.files.snapshots.keep_turns);
        let row = TurnSnapshot {
            session_id: self.session.id.clone(),
            turn,
            cli_session_id: self.session.cli_session_id.clone(),
            entry_uuid,
            snapshot: taken.state.to_owned(),
            reason: taken.reason,
            files: i64::try_from(taken.files).unwrap_or(i64::MAX),
            bytes: i64::try_from(taken.bytes).unwrap_or(i64::MAX),
            created_at: crate::db::now(),
        };
        let store = SessionStore::new(
            &snapshots::store_root(&self.runtime.settings.storage.approved_directory),
            &self.session.id,
        );
        let name = self.session.name.clone();
        self.writer.write(
            move |c| {
                turn_snapshot::insert(c, &row)?;
                let expired = turn_snapshot::expire_before(c, &row.session_id, turn - keep + 1)?;
                if !expired.is_empty() {
                    if let Err(e) = store.drop_turns(&expired) {
                        tracing::warn!(session = %name, error = %e, "cannot drop old workspace snapshots");
                    }
                }
                Ok(false)
            },
            None,
        );
    }
}

impl Taken {
    fn none(state: &'static str, reason: &str) -> Taken {
        Taken {
            state,
            reason: Some(reason.to_owned()),
            files: 0,
            bytes: 0,
        }
    }
}
