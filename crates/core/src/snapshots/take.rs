//! Taking a turn's snapshot: the workspace walked by `files::walk` (links,
//! devices and FIFOs never followed nor kept; files with other hard links
//! left out, as they may be another file of the host's), each file's
//! content stored once as a blob. Blocking.

use std::io;

use cap_std::fs::{Dir, MetadataExt as _};

use super::manifest::Stamp;
use super::{Manifest, ManifestEntry, SessionStore};
use crate::files::walk::{walk, Entry};

/// What one snapshot may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: u64,
    /// Files and folders together.
    pub max_files: u64,
}

/// Why a turn has no snapshot.
#[derive(Debug, thiserror::Error)]
pub enum NotTaken {
    #[error("{0}")]
    OverLimit(String),
    #[error("cannot snapshot the workspace: {0}")]
    Failed(#[from] io::Error),
}

/// Snapshots `workspace` into `store` and returns its manifest (not saved:
/// the caller names the turn). Files whose stamp matches `previous`'s
/// reuse its blob instead of being read again.
pub fn take(
    store: &SessionStore,
    workspace: &Dir,
    previous: Option<&Manifest>,
    limits: Limits,
) -> Result<Manifest, NotTaken> {
    store.create()?;
    let known = previous.map(Manifest::files_by_path).unwrap_or_default();
    let mut manifest = Manifest::default();
    let mut over = None;
    let walked = walk(workspace, &mut |entry| {
        let count = manifest.entries.len() as u64 + 1;
        if count > limits.max_files {
            over = Some(format!(
                "the workspace has more than {} files and folders (SNAPSHOT_MAX_FILES)",
                limits.max_files
            ));
            return Err(io::Error::other("over limit"));
        }
        match entry {
            Entry::Folder { path, meta } => {
                let Some(path) = path.to_str() else {
                    tracing::warn!(path = %path.display(), "a folder name that is not UTF-8 is left out of the snapshot");
                    return Ok(());
                };
                manifest.entries.push(ManifestEntry {
                    path: path.to_owned(),
                    mode: meta.mode() & 0o777,
                    blob: None,
                    size: 0,
                    stamp: Stamp::default(),
                });
            }
            Entry::File { path, file, meta } => {
                let Some(path) = path.to_str() else {
                    tracing::warn!(path = %path.display(), "a file name that is not UTF-8 is left out of the snapshot");
                    return Ok(());
                };
                if meta.nlink() > 1 {
                    tracing::warn!(
                        path,
                        "a file with other hard links is left out of the snapshot"
                    );
                    return Ok(());
                }
                let stamp = Stamp::of(&meta);
                if manifest.bytes + stamp.size > limits.max_bytes {
                    over = Some(format!(
                        "the workspace's files add up to more than {} MiB (SNAPSHOT_MAX_MB)",
                        limits.max_bytes / (1024 * 1024)
                    ));
                    return Err(io::Error::other("over limit"));
                }
                let unchanged = known.get(path).and_then(|before| {
                    let blob = before.blob.as_deref()?;
                    (before.stamp == stamp && store.has_blob(blob))
                        .then(|| (blob.to_owned(), before.size))
                });
                let (blob, size) = match unchanged {
                    Some(found) => found,
                    None => store.put_blob(file.into_std(), stamp.size)?,
                };
                manifest.files += 1;
                manifest.bytes += size;
                manifest.entries.push(ManifestEntry {
                    path: path.to_owned(),
                    mode: meta.mode() & 0o777,
                    blob: Some(blob),
                    size,
                    stamp,
                });
            }
        }
        Ok(())
    });
    match (walked, over) {
        (_, Some(reason)) => Err(NotTaken::OverLimit(reason)),
        (Err(e), None) => Err(NotTaken::Failed(e)),
        (Ok(()), None) => Ok(manifest),
    }
}
