//! Measuring what a tree holds on disk, when the tree is the agent's: it may
//! plant symlinks to `/`, sparse or hard-linked files, deep trees and many
//! small files, and change the tree while it is measured.
//!
//! The walk goes by descriptor: every folder is opened relative to its
//! parent with `O_NOFOLLOW | O_DIRECTORY`, so a symlink (or a folder swapped
//! for one mid-walk) is never entered, and nothing outside the tree is ever
//! named. It counts allocated blocks (a sparse file costs what it holds),
//! each inode once (hard links), stays on the root's filesystem, and gives
//! up past fixed bounds on entries and depth: a tree it cannot measure whole
//! is reported as such, never as small.

use std::collections::HashSet;
use std::ffi::CStr;
use std::os::fd::AsFd;
use std::path::Path;

use rustix::fs::{self as fs, AtFlags, FileType, Mode, OFlags};

/// Most entries one measurement looks at (all of a tenant's trees together).
pub const MAX_ENTRIES: u64 = 1_000_000;
/// Deepest folder one measurement descends to (one open descriptor each).
pub const MAX_DEPTH: usize = 256;

/// What a set of trees holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Measured {
    /// Allocated bytes (512-byte blocks), each inode counted once.
    pub bytes: u64,
    /// Files, folders, links and the rest.
    pub entries: u64,
}

/// Why a measurement stopped short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unmeasurable {
    #[error("more than {MAX_ENTRIES} files and folders")]
    TooManyEntries,
    #[error("folders nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// One root to measure: `name` in the trusted folder `parent` (opened
/// without following a link at `name`). A root that does not exist holds
/// nothing.
pub struct Root<'a> {
    pub parent: &'a Path,
    pub name: &'a str,
}

/// Measures `roots` together: an inode linked from two of them counts once.
pub fn measure(roots: &[Root<'_>]) -> Result<Measured, Unmeasurable> {
    let mut walk = Walk::default();
    for root in roots {
        walk.root(root)?;
    }
    Ok(walk.total)
}

#[derive(Default)]
struct Walk {
    total: Measured,
    /// Inodes with more than one link, seen already: `(device, inode)`.
    linked: HashSet<(u64, u64)>,
}

impl Walk {
    fn root(&mut self, root: &Root<'_>) -> Result<(), Unmeasurable> {
        // One plain name: `..` or a `/` would lead out of `parent`.
        if root.name.is_empty() || root.name.contains('/') || matches!(root.name, "." | "..") {
            return Ok(());
        }
        let Ok(parent) = fs::open(root.parent, dir_flags(), Mode::empty()) else {
            return Ok(());
        };
        let Ok(top) = fs::openat(&parent, root.name, dir_flags(), Mode::empty()) else {
            return Ok(());
        };
        let Ok(stat) = fs::fstat(&top) else {
            return Ok(());
        };
        self.count(&stat)?;
        let device = stat.st_dev;
        let Ok(top) = fs::Dir::new(top) else {
            return Ok(());
        };
        // Open folders from the root down to the one being read.
        let mut stack = vec![top];
        loop {
            let depth = stack.len();
            let Some(dir) = stack.last_mut() else {
                break;
            };
            let Some(entry) = dir.read() else {
                stack.pop();
                continue;
            };
            // A folder that vanished or changed under the walk: what it
            // held now is measured next time.
            let Ok(entry) = entry else {
                stack.pop();
                continue;
            };
            let name = entry.file_name();
            if is_dot(name) {
                continue;
            }
            let Ok(at) = dir.fd() else {
                stack.pop();
                continue;
            };
            // The entry itself, never what a link points to.
            let Ok(stat) = fs::statat(at, name, AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            self.count(&stat)?;
            let is_dir = FileType::from_raw_mode(stat.st_mode) == FileType::Directory;
            if !is_dir || stat.st_dev != device {
                continue;
            }
            if depth >= MAX_DEPTH {
                return Err(Unmeasurable::TooDeep);
            }
            // Swapped for a link since the stat: refused, not followed.
            let Ok(child) = fs::openat(at, name, dir_flags(), Mode::empty()) else {
                continue;
            };
            if !same_inode(&child, &stat) {
                continue;
            }
            if let Ok(child) = fs::Dir::new(child) {
                stack.push(child);
            }
        }
        Ok(())
    }

    fn count(&mut self, stat: &fs::Stat) -> Result<(), Unmeasurable> {
        self.total.entries += 1;
        if self.total.entries > MAX_ENTRIES {
            return Err(Unmeasurable::TooManyEntries);
        }
        let is_dir = FileType::from_raw_mode(stat.st_mode) == FileType::Directory;
        #[expect(
            clippy::useless_conversion,
            reason = "the stat field types differ between targets"
        )]
        let key = (u64::from(stat.st_dev), u64::from(stat.st_ino));
        if !is_dir && stat.st_nlink > 1 && !self.linked.insert(key) {
            return Ok(());
        }
        let blocks = u64::try_from(stat.st_blocks).unwrap_or(0);
        self.total.bytes = self.total.bytes.saturating_add(blocks.saturating_mul(512));
        Ok(())
    }
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

fn is_dot(name: &CStr) -> bool {
    matches!(name.to_bytes(), b"." | b"..")
}

/// Whether the folder opened is the one that was looked at.
fn same_inode(fd: &impl AsFd, seen: &fs::Stat) -> bool {
    fs::fstat(fd).is_ok_and(|s| s.st_dev == seen.st_dev && s.st_ino == seen.st_ino)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::os::unix::fs::symlink;

    fn measure_dir(dir: &Path) -> Result<Measured, Unmeasurable> {
        let parent = dir.parent().unwrap();
        let name = dir.file_name().unwrap().to_str().unwrap();
        measure(&[Root { parent, name }])
    }

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn counts_allocated_blocks_once_and_never_follows_links() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = tmp.path().join("ws");
        std::fs::create_dir_all(ws.join("a/b")).unwrap();
        let base = measure_dir(&ws).unwrap();
        let mut f = std::fs::File::create(ws.join("a/b/data")).unwrap();
        f.write_all(&vec![1u8; 4 * MIB as usize]).unwrap();
        f.sync_all().unwrap();
        // A hard link and a symlink to it, and links out of the tree.
        std::fs::hard_link(ws.join("a/b/data"), ws.join("again")).unwrap();
        symlink(ws.join("a/b/data"), ws.join("alias")).unwrap();
        symlink("/", ws.join("root")).unwrap();
        symlink("/usr", ws.join("a/usr")).unwrap();
        // A huge sparse file holds next to nothing.
        let sparse = std::fs::File::create(ws.join("sparse")).unwrap();
        sparse.set_len(1 << 40).unwrap();
        let m = measure_dir(&ws).unwrap();
        let added = m.bytes - base.bytes;
        assert!(
            (4 * MIB..4 * MIB + 64 * 1024).contains(&added),
            "4 MiB once, links and holes free: {added}"
        );
        assert_eq!(m.entries, base.entries + 6, "{m:?}");
    }

    #[test]
    fn a_missing_root_holds_nothing_and_a_linked_root_is_not_entered() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(
            measure_dir(&tmp.path().join("absent")).unwrap(),
            Measured::default()
        );
        symlink("/usr", tmp.path().join("linked")).unwrap();
        assert_eq!(
            measure_dir(&tmp.path().join("linked")).unwrap(),
            Measured::default()
        );
    }

    #[test]
    fn a_root_name_never_leads_out_of_its_parent() {
        let tmp = tempfile::tempdir().unwrap();
        for name in ["..", ".", "../..", "/usr", "a/../..", ""] {
            let m = measure(&[Root {
                parent: tmp.path(),
                name,
            }])
            .unwrap();
            assert_eq!(m, Measured::default(), "{name:?}");
        }
    }

    #[test]
    fn a_tree_too_deep_to_measure_says_so() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = tmp.path().join("ws");
        std::fs::create_dir(&ws).unwrap();
        // Built by descriptor: the path would pass PATH_MAX long before.
        let mut dir = fs::open(&ws, dir_flags(), Mode::empty()).unwrap();
        for _ in 0..MAX_DEPTH + 1 {
            fs::mkdirat(&dir, "d", Mode::from_raw_mode(0o755)).unwrap();
            dir = fs::openat(&dir, "d", dir_flags(), Mode::empty()).unwrap();
        }
        assert_eq!(measure_dir(&ws), Err(Unmeasurable::TooDeep));
    }
}
