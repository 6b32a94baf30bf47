//! Turn records that could not be stored while the database was away wait
//! here (`DATA_DIR/spool`, one JSON file each) and are written when it
//! answers again, at the latest at the next start: nothing the CLI reported
//! is dropped.

use std::path::{Path, PathBuf};

use crate::db::models::event::Event;
use crate::db::models::turn::{self, TurnRecord};
use crate::db::{self, DbPool};

/// What waits in the spool: a turn's record, or events of a running turn.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub enum Entry {
    Turn(Box<TurnRecord>),
    Events(Vec<Event>),
}

/// How often the spool is looked at while the server runs.
pub const DRAIN_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("spool")
}

/// Keeps `entry` in the spool (written whole, then renamed into place;
/// names sort in the order entries were kept).
pub fn keep(dir: &Path, entry: &Entry) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let name = format!("{}.json", uuid::Uuid::now_v7());
    let partial = dir.join(format!("{name}.partial"));
    std::fs::write(&partial, serde_json::to_vec(entry)?)?;
    std::fs::rename(&partial, dir.join(name))?;
    tracing::warn!("the database is away: a session write waits in the spool");
    Ok(())
}

/// Stores every spooled entry, oldest first; the number stored. The files
/// are read and removed on the blocking pool, never on the caller's thread.
pub async fn drain(pool: &DbPool, dir: &Path) -> usize {
    let listed = dir.to_path_buf();
    let files = crate::blocking::run(move || pending(&listed))
        .await
        .unwrap_or_default();
    let mut stored = 0;
    for file in files {
        match db::run(pool, move |c| store_file(c, &file)).await {
            Ok(true) => stored += 1,
            Ok(false) => {}
            // Still away: the rest waits too.
            Err(e) => {
                tracing::warn!(error = %e, "spooled turn records wait for the database");
                break;
            }
        }
    }
    if stored > 0 {
        tracing::info!(count = stored, "stored spooled turn records");
    }
    stored
}

/// The spooled entries, oldest first (names sort by the time they were kept).
fn pending(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

/// Stores one spooled entry and removes its file; `false` when the file
/// cannot be read: it is set aside as `.bad` (and logged), never retried.
fn store_file(conn: &mut db::DbConnection, file: &Path) -> db::DbResult<bool> {
    let read = std::fs::read(file)
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice::<Entry>(&bytes).map_err(|e| e.to_string()));
    let entry = match read {
        Ok(entry) => entry,
        Err(e) => {
            tracing::error!(file = %file.display(), error = %e, "a spooled turn record cannot be read; set aside");
            let _ = std::fs::rename(file, file.with_extension("bad"));
            return Ok(false);
        }
    };
    match &entry {
        Entry::Turn(record) => turn::record(conn, record).map(|_| ())?,
        Entry::Events(events) => turn::flush_events(conn, events)?,
    }
    let _ = std::fs::remove_file(file);
    Ok(true)
}
