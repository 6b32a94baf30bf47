//! A turn's manifest: every folder and regular file of the workspace then,
//! with what is needed to make it again and to tell whether it changed.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    /// In walk order: a folder before what it holds.
    pub entries: Vec<ManifestEntry>,
    /// Regular files, and their bytes together.
    pub files: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Relative to the workspace, plain names only.
    pub path: String,
    /// Permission bits only (no setuid, setgid, sticky).
    pub mode: u32,
    /// The blob of a file's content; `None` for a folder.
    pub blob: Option<String>,
    pub size: u64,
    /// What the file was when read: the same again means unchanged.
    pub stamp: Stamp,
}

/// Size, times and inode of a file as read: the same stamp next turn means
/// the same content (`ctime` cannot be set back by the agent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub size: u64,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
    pub dev: u64,
    pub ino: u64,
}

impl Stamp {
    pub fn of(meta: &cap_std::fs::Metadata) -> Stamp {
        use cap_std::fs::MetadataExt as _;
        Stamp {
            size: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

impl Manifest {
    /// The file entries by path, to look up what the previous turn had.
    pub fn files_by_path(&self) -> std::collections::HashMap<&str, &ManifestEntry> {
        self.entries
            .iter()
            .filter(|e| e.blob.is_some())
            .map(|e| (e.path.as_str(), e))
            .collect()
    }
}
