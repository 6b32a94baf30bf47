//! One session's part of the snapshot store: its blobs and its turns'
//! manifests, in a folder only the server has access to. Blocking.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::Manifest;

/// A session's snapshots: `<root>/<session id>/{blobs,turns,tmp}`.
pub struct SessionStore {
    dir: PathBuf,
}

impl SessionStore {
    /// The store of session `session_id` (a server-made id) under `root`.
    pub fn new(root: &Path, session_id: &str) -> SessionStore {
        SessionStore {
            dir: root.join(session_id),
        }
    }

    /// Makes its folders (private to the server) when missing.
    pub fn create(&self) -> io::Result<()> {
        for sub in ["blobs", "turns", "tmp"] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(self.dir.join(sub))?;
        }
        Ok(())
    }

    fn blob_path(&self, hash: &str) -> PathBuf {
        self.dir.join("blobs").join(hash)
    }

    fn manifest_path(&self, turn: i64) -> PathBuf {
        self.dir.join("turns").join(format!("{turn}.json"))
    }

    pub fn has_blob(&self, hash: &str) -> bool {
        self.blob_path(hash).is_file()
    }

    /// Stores at most `len` bytes of `from` as a blob; returns its hash and
    /// how many bytes it holds.
    pub fn put_blob(&self, from: impl Read, len: u64) -> io::Result<(String, u64)> {
        let temp = self
            .dir
            .join("tmp")
            .join(uuid::Uuid::new_v4().simple().to_string());
        let stored = (|| {
            let mut out = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)?;
            let mut hasher = Sha256::new();
            let mut from = from.take(len);
            let mut buf = vec![0u8; 64 * 1024];
            let mut total = 0u64;
            loop {
                let n = from.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n])?;
                total += n as u64;
            }
            out.sync_all()?;
            let hash: String = hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            if self.has_blob(&hash) {
                fs::remove_file(&temp)?;
            } else {
                fs::rename(&temp, self.blob_path(&hash))?;
            }
            Ok((hash, total))
        })();
        if stored.is_err() {
            let _ = fs::remove_file(&temp);
        }
        stored
    }

    pub fn open_blob(&self, hash: &str) -> io::Result<fs::File> {
        if !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a blob name",
            ));
        }
        fs::File::open(self.blob_path(hash))
    }

    /// Writes turn `turn`'s manifest (whole or not at all).
    pub fn save_manifest(&self, turn: i64, manifest: &Manifest) -> io::Result<()> {
        let temp = self
            .dir
            .join("tmp")
            .join(format!("{turn}.{}.json", uuid::Uuid::new_v4().simple()));
        let json = serde_json::to_vec(manifest)?;
        let written = (|| {
            let mut out = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)?;
            out.write_all(&json)?;
            out.sync_all()?;
            fs::rename(&temp, self.manifest_path(turn))
        })();
        if written.is_err() {
            let _ = fs::remove_file(&temp);
        }
        written
    }

    /// Turn `turn`'s manifest; `None` when it is not stored.
    pub fn manifest(&self, turn: i64) -> io::Result<Option<Manifest>> {
        match fs::read(self.manifest_path(turn)) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The manifest of the newest stored turn, to reuse its hashes.
    pub fn latest_manifest(&self) -> io::Result<Option<Manifest>> {
        match self.stored_turns()?.into_iter().max() {
            Some(turn) => self.manifest(turn),
            None => Ok(None),
        }
    }

    fn stored_turns(&self) -> io::Result<Vec<i64>> {
        let listing = match fs::read_dir(self.dir.join("turns")) {
            Ok(listing) => listing,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(listing
            .filter_map(Result::ok)
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".json")?
                    .parse::<i64>()
                    .ok()
            })
            .collect())
    }

    /// Drops the manifests of `turns`, then every blob no manifest left
    /// refers to.
    pub fn drop_turns(&self, turns: &[i64]) -> io::Result<()> {
        for turn in turns {
            match fs::remove_file(self.manifest_path(*turn)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        let mut kept = HashSet::new();
        for turn in self.stored_turns()? {
            if let Some(manifest) = self.manifest(turn)? {
                kept.extend(manifest.entries.into_iter().filter_map(|e| e.blob));
            }
        }
        for blob in fs::read_dir(self.dir.join("blobs"))?.filter_map(Result::ok) {
            let name = blob.file_name();
            if !name.to_str().is_some_and(|n| kept.contains(n)) {
                fs::remove_file(blob.path())?;
            }
        }
        Ok(())
    }

    /// Removes the session's snapshots altogether.
    pub fn remove(&self) -> io::Result<()> {
        match fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
