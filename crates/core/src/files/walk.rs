//! A walk of a folder the agent can write, for whoever reads a workspace
//! whole (an archive download, a turn's snapshot). Regular files and
//! folders only: links, sockets, devices and FIFOs are never followed nor
//! reported. Every folder is entered from the descriptor of its parent
//! without following a link, every file opened `O_NOFOLLOW | O_NONBLOCK`
//! and checked by `fstat`, so an agent swapping entries meanwhile can make
//! them vanish from the walk, never lead it elsewhere or hang it.

use std::io;
use std::path::Path;

use cap_std::fs::{Dir, File, Metadata, OpenOptions, OpenOptionsExt};

/// Deepest folder a walk descends into.
pub const MAX_DEPTH: usize = 256;

/// What a walk meets, with its path relative to the folder walked.
pub enum Entry<'a> {
    /// A folder, met before what it holds.
    Folder { path: &'a Path, meta: Metadata },
    /// A regular file, opened for reading; `meta` is its `fstat`.
    File {
        path: &'a Path,
        file: File,
        meta: Metadata,
    },
}

/// Calls `visit` for each folder and regular file beneath `folder`, in
/// name order, a folder before its entries. An entry that cannot be read
/// is skipped; an error of `visit` ends the walk and is returned.
pub fn walk<F>(folder: &Dir, visit: &mut F) -> io::Result<()>
where
    F: FnMut(Entry<'_>) -> io::Result<()>,
{
    walk_folder(folder, Path::new(""), 0, visit)
}

fn walk_folder<F>(dir: &Dir, at: &Path, depth: usize, visit: &mut F) -> io::Result<()>
where
    F: FnMut(Entry<'_>) -> io::Result<()>,
{
    let Ok(listing) = dir.entries() else {
        return Ok(());
    };
    let mut items: Vec<_> = listing.filter_map(Result::ok).collect();
    items.sort_by_key(|e| e.file_name());
    for item in items {
        let name = item.file_name();
        let path = at.join(&name);
        let Ok(file_type) = item.file_type() else {
            continue;
        };
        if file_type.is_dir() {
            if depth >= MAX_DEPTH {
                tracing::warn!(path = %path.display(), "a folder nested too deep is left out");
                continue;
            }
            // Swapped for a link since the listing: refused, left out.
            let Ok(sub) = crate::sandbox::tree::open_dir_nofollow(dir, &name) else {
                continue;
            };
            let Ok(meta) = sub.dir_metadata() else {
                continue;
            };
            visit(Entry::Folder { path: &path, meta })?;
            walk_folder(&sub, &path, depth + 1, visit)?;
        } else if file_type.is_file() {
            let mut options = OpenOptions::new();
            // Non-blocking (a FIFO swapped in cannot hang the walk), and
            // never through a link swapped in since the listing.
            options
                .read(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW);
            let Ok(file) = dir.open_with(&name, &options) else {
                continue;
            };
            let Ok(meta) = file.metadata() else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            visit(Entry::File {
                path: &path,
                file,
                meta,
            })?;
        }
        // Links, sockets, devices, FIFOs: never followed, never reported.
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_files_and_folders_never_links() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(outside.join("deep")).unwrap();
        std::fs::write(outside.join("secret"), "s").unwrap();
        let ws = tmp.path().join("ws");
        std::fs::create_dir_all(ws.join("b/c")).unwrap();
        std::fs::write(ws.join("a.txt"), "a").unwrap();
        std::fs::write(ws.join("b/c/d.txt"), "d").unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), ws.join("link-file")).unwrap();
        std::os::unix::fs::symlink(&outside, ws.join("b/link-dir")).unwrap();
        let dir = Dir::open_ambient_dir(&ws, cap_std::ambient_authority()).unwrap();
        let mut seen = Vec::new();
        walk(&dir, &mut |entry| {
            seen.push(match entry {
                Entry::Folder { path, .. } => format!("{}/", path.display()),
                Entry::File { path, .. } => path.display().to_string(),
            });
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, ["a.txt", "b/", "b/c/", "b/c/d.txt"]);
    }
}
