//! The files of a session's workspace: listing, download, delete, upload and
//! archive. Every operation works on a `cap_std::fs::Dir` handle of the
//! workspace (see `security::paths`), so no path, and no symlink the agent
//! planted, resolves outside it. All functions here block: call them through
//! `crate::blocking`.

pub mod archive;
pub mod walk;

use std::io;
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};

use cap_std::fs::{Dir, File, Metadata, OpenOptions, OpenOptionsExt};
use serde::Serialize;

use crate::error::ServiceError;
use crate::security::paths::PathError;

/// Most entries one listing walks before it asks for a narrower path.
pub const MAX_LIST_ENTRIES: usize = 100_000;
/// Prefix of in-progress uploads (hidden, removed when an upload fails).
pub const UPLOAD_TEMP_PREFIX: &str = ".cca-upload-";

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("no such file or folder: {0:?}")]
    NotFound(String),
    #[error("{0:?} is a folder; download it with /archive?path=")]
    IsDirectory(String),
    #[error("{0:?} is not a folder")]
    NotADirectory(String),
    #[error("{0:?} already exists; add ?overwrite=true to replace it")]
    Exists(String),
    #[error("{0:?} is a folder and cannot be replaced by a file")]
    FolderInTheWay(String),
    #[error("the folder holds more than {MAX_LIST_ENTRIES} entries; list a narrower path")]
    TooMany,
    #[error("file system error: {0}")]
    Io(#[from] io::Error),
}

impl From<FilesError> for ServiceError {
    fn from(e: FilesError) -> Self {
        match e {
            FilesError::Path(_) => ServiceError::BadRequest(e.to_string()),
            FilesError::NotFound(_) => ServiceError::NotFound(e.to_string()),
            FilesError::TooMany => ServiceError::Validation(e.to_string()),
            // What is at the path decides these, not the request: a conflict
            // with the workspace's state, as a folder in the way is.
            FilesError::IsDirectory(_)
            | FilesError::NotADirectory(_)
            | FilesError::Exists(_)
            | FilesError::FolderInTheWay(_) => ServiceError::Conflict(e.to_string()),
            FilesError::Io(e) => ServiceError::internal(e),
        }
    }
}

/// Failures that mean "not there for you": absent, or resolving outside the
/// workspace (cap-std reports an escape as PermissionDenied), a symlink loop,
/// a file where a folder was named.
fn classify(e: io::Error, path: &Path) -> FilesError {
    let shown = display(path);
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied => FilesError::NotFound(shown),
        _ => match e.raw_os_error() {
            Some(libc::ELOOP)
            | Some(libc::ENOTDIR)
            | Some(libc::EXDEV)
            | Some(libc::ENAMETOOLONG) => FilesError::NotFound(shown),
            _ => FilesError::Io(e),
        },
    }
}

/// A relative path as clients see it (`/`-separated, `""` = the workspace).
pub fn display(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// `"."` for the workspace itself: cap-std wants a non-empty path.
fn or_dot(path: &Path) -> &Path {
    if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    }
}

/// One entry of a listing.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Entry {
    pub name: String,
    /// Relative to the workspace.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: EntryKind,
    /// Bytes of a file; `null` for a folder.
    pub size: Option<u64>,
    /// RFC 3339 UTC.
    pub modified: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Directory,
}

fn modified(meta: &Metadata) -> Option<String> {
    let time = meta.modified().ok()?.into_std();
    let time: chrono::DateTime<chrono::Utc> = time.into();
    Some(time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

fn entry(path: &Path, meta: &Metadata) -> Option<Entry> {
    let kind = if meta.is_dir() {
        EntryKind::Directory
    } else if meta.is_file() {
        EntryKind::File
    } else {
        return None;
    };
    Some(Entry {
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        path: display(path),
        kind,
        size: (kind == EntryKind::File).then(|| meta.len()),
        modified: modified(meta),
    })
}

/// The entries of folder `rel`, sorted by path; with `recursive` the whole
/// tree below it. Never follows a symlink: a symlink whose target resolves
/// inside the workspace is listed as what it points to (and not descended
/// into); one pointing outside, or nowhere, is not listed at all. Names
/// starting with `.` (and what is below them) only with `hidden`.
pub fn list(
    root: &Dir,
    rel: &Path,
    recursive: bool,
    hidden: bool,
) -> Result<Vec<Entry>, FilesError> {
    check_folder(root, rel)?;
    let mut out = Vec::new();
    walk(root, rel, recursive, hidden, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn walk(
    root: &Dir,
    rel: &Path,
    recursive: bool,
    hidden: bool,
    out: &mut Vec<Entry>,
) -> Result<(), FilesError> {
    let entries = root.read_dir(or_dot(rel)).map_err(|e| classify(e, rel))?;
    for item in entries {
        let item = item?;
        let name = item.file_name();
        if !hidden && name.to_string_lossy().starts_with('.') {
            continue;
        }
        let child = rel.join(&name);
        // From the directory entry itself: a symlink is seen as a symlink.
        let file_type = item.file_type()?;
        if file_type.is_symlink() {
            // Resolved beneath the workspace, or not at all.
            if let Ok(target) = root.metadata(&child) {
                out.extend(entry(&child, &target));
            }
        } else if file_type.is_dir() {
            let meta = item.metadata()?;
            out.extend(entry(&child, &meta));
            if recursive {
                walk(root, &child, recursive, hidden, out)?;
            }
        } else if file_type.is_file() {
            let meta = item.metadata()?;
            out.extend(entry(&child, &meta));
        }
        if out.len() > MAX_LIST_ENTRIES {
            return Err(FilesError::TooMany);
        }
    }
    Ok(())
}

/// `Ok` when `rel` is a folder beneath the workspace.
pub fn check_folder(root: &Dir, rel: &Path) -> Result<(), FilesError> {
    let meta = root.metadata(or_dot(rel)).map_err(|e| classify(e, rel))?;
    if meta.is_dir() {
        Ok(())
    } else {
        Err(FilesError::NotADirectory(display(rel)))
    }
}

/// Opens a regular file for reading, beneath the workspace. Non-blocking
/// open, so a FIFO the agent made cannot hang the server.
pub fn open_file(root: &Dir, rel: &Path) -> Result<std::fs::File, FilesError> {
    if rel.as_os_str().is_empty() {
        return Err(FilesError::IsDirectory(String::new()));
    }
    let mut options = OpenOptions::new();
    options.read(true).custom_flags(libc::O_NONBLOCK);
    let file: File = root
        .open_with(rel, &options)
        .map_err(|e| classify(e, rel))?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(FilesError::IsDirectory(display(rel)));
    }
    if !meta.is_file() {
        return Err(FilesError::NotFound(display(rel)));
    }
    Ok(file.into_std())
}

/// Deletes a file, a symlink (never what it points to) or a folder with
/// everything in it. The folder holding it is opened beneath the workspace;
/// from there the removal goes by descriptor, so a folder swapped for a link
/// meanwhile is removed as the link, never followed. The workspace itself
/// cannot be deleted.
pub fn delete(root: &Dir, rel: &Path) -> Result<(), FilesError> {
    let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
        return Err(FilesError::IsDirectory(String::new()));
    };
    let folder = if parent.as_os_str().is_empty() {
        root.try_clone()?
    } else {
        root.open_dir(parent).map_err(|e| classify(e, rel))?
    };
    // Absent is a 404, as before: the caller named something.
    folder
        .symlink_metadata(name)
        .map_err(|e| classify(e, rel))?;
    crate::sandbox::tree::remove_entry(&folder, name).map_err(|e| classify(e, rel))
}

/// Folder `rel` beneath the workspace if it exists; `None` if it does not
/// (yet). A path that exists but is no folder, or leads outside, is an error.
pub fn existing_folder(root: &Dir, rel: &Path) -> Result<Option<Dir>, FilesError> {
    if rel.as_os_str().is_empty() {
        return Ok(Some(root.try_clone()?));
    }
    match root.metadata(rel) {
        Ok(meta) if meta.is_dir() => Ok(Some(root.open_dir(rel).map_err(|e| classify(e, rel))?)),
        Ok(_) => Err(FilesError::NotADirectory(display(rel))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(classify(e, rel)),
    }
}

/// Opens (creating what is missing) folder `rel` beneath the workspace, one
/// component at a time from the handle of the one before, so a folder the
/// agent swaps meanwhile cannot lead outside. A folder made here is given to
/// `owner` (the agent user) through its own descriptor at once. When the
/// walk fails, the folders it made are removed again: a refused upload
/// leaves nothing behind.
pub fn open_folder(root: &Dir, rel: &Path, owner: Option<(u32, u32)>) -> Result<Dir, FilesError> {
    let mut made: Vec<(Dir, std::ffi::OsString)> = Vec::new();
    let opened = walk_making(root, rel, owner, &mut made);
    if opened.is_err() {
        for (parent, name) in made.iter().rev() {
            // Only while still empty: what the agent put there is its own.
            let _ = parent.remove_dir(name);
        }
    }
    opened
}

fn walk_making(
    root: &Dir,
    rel: &Path,
    owner: Option<(u32, u32)>,
    made: &mut Vec<(Dir, std::ffi::OsString)>,
) -> Result<Dir, FilesError> {
    let not_a_folder = |e: io::Error| match e.raw_os_error() {
        Some(libc::ENOTDIR) => FilesError::NotADirectory(display(rel)),
        _ => classify(e, rel),
    };
    let mut dir = root.try_clone()?;
    for part in rel.components() {
        let name = part.as_os_str();
        dir = match dir.open_dir(name) {
            Ok(next) => next,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut builder = cap_std::fs::DirBuilder::new();
                cap_std::fs::DirBuilderExt::mode(&mut builder, 0o755);
                match dir.create_dir_with(name, &builder) {
                    Ok(()) => made.push((dir.try_clone()?, name.to_owned())),
                    // Made meanwhile: open what is there.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(classify(e, rel)),
                }
                // Opened for reading (not as a path handle): fchown needs it.
                let next =
                    crate::sandbox::tree::open_dir_nofollow(&dir, name).map_err(not_a_folder)?;
                if let Some((uid, gid)) = owner {
                    std::os::unix::fs::fchown(next.as_fd(), Some(uid), Some(gid))?;
                }
                next
            }
            Err(e) => return Err(not_a_folder(e)),
        };
    }
    Ok(dir)
}

/// A new upload's temporary file in `folder`, removed on drop unless
/// committed: an upload that fails, is too big or is abandoned by its client
/// leaves nothing behind.
pub struct TempUpload {
    folder: Dir,
    name: String,
    /// The file itself, whatever becomes of its name.
    file: std::fs::File,
    committed: bool,
}

impl TempUpload {
    pub fn create(folder: Dir) -> Result<(TempUpload, std::fs::File), FilesError> {
        let name = format!("{UPLOAD_TEMP_PREFIX}{}.part", uuid::Uuid::new_v4().simple());
        let mut options = OpenOptions::new();
        options.write(true).create_new(true).mode(0o644);
        let file = folder.open_with(&name, &options)?.into_std();
        Ok((
            TempUpload {
                folder,
                name,
                file: file.try_clone()?,
                committed: false,
            },
            file,
        ))
    }

    /// Puts the finished upload at `name` in folder `target`, as the last
    /// step: everything that can fail (handing the file to `owner`, reading
    /// its size) happens before, through its descriptor, so an upload is
    /// either in place and answered or absent and refused. Without
    /// `overwrite` an existing entry is never replaced (a hard link fails
    /// atomically when the name exists); with it, a file is replaced
    /// atomically by rename, a folder never.
    pub fn commit(
        mut self,
        target: &Dir,
        name: &str,
        overwrite: bool,
        shown: &str,
        owner: Option<(u32, u32)>,
    ) -> Result<u64, FilesError> {
        if let Some((uid, gid)) = owner {
            // The agent runs as another user: what is uploaded is its to change.
            std::os::unix::fs::fchown(&self.file, Some(uid), Some(gid))?;
        }
        let size = self.file.metadata()?.len();
        if let Ok(existing) = target.symlink_metadata(name) {
            if existing.is_dir() {
                return Err(FilesError::FolderInTheWay(shown.to_owned()));
            }
            if !overwrite {
                return Err(FilesError::Exists(shown.to_owned()));
            }
        }
        if overwrite {
            match self.folder.rename(&self.name, target, name) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::IsADirectory => {
                    return Err(FilesError::FolderInTheWay(shown.to_owned()))
                }
                Err(e) => return Err(classify(e, Path::new(shown))),
            }
        } else {
            match self.folder.hard_link(&self.name, target, name) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(FilesError::Exists(shown.to_owned()))
                }
                Err(e) => return Err(classify(e, Path::new(shown))),
            }
            let _ = self.folder.remove_file(&self.name);
        }
        self.committed = true;
        Ok(size)
    }
}

impl Drop for TempUpload {
    fn drop(&mut self) {
        if !self.committed {
            // One unlink; fine even on an executor thread.
            let _ = self.folder.remove_file(&self.name);
        }
    }
}

/// `folder/name` as a client-facing relative path.
pub fn joined(folder: &Path, name: &str) -> String {
    display(&PathBuf::from(folder).join(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cap_std::ambient_authority;
    use std::io::Write;
    use std::os::unix::fs::symlink;

    fn workspace() -> (tempfile::TempDir, Dir) {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path();
        std::fs::create_dir_all(p.join("src/deep")).unwrap();
        std::fs::write(p.join("a.txt"), "aaa").unwrap();
        std::fs::write(p.join(".env"), "SECRET=1").unwrap();
        std::fs::write(p.join("src/deep/b.rs"), "b").unwrap();
        symlink("/etc/passwd", p.join("leak")).unwrap();
        symlink("/etc", p.join("etcdir")).unwrap();
        symlink("a.txt", p.join("alias")).unwrap();
        let dir = Dir::open_ambient_dir(p, ambient_authority()).unwrap();
        (tmp, dir)
    }

    #[test]
    fn listing_hides_dotfiles_and_outward_symlinks() {
        let (_t, dir) = workspace();
        let names: Vec<String> = list(&dir, Path::new(""), false, false)
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(names, ["a.txt", "alias", "src"]);
        let all: Vec<String> = list(&dir, Path::new(""), true, true)
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(
            all,
            [".env", "a.txt", "alias", "src", "src/deep", "src/deep/b.rs"]
        );
        assert!(matches!(
            list(&dir, Path::new("etcdir"), false, false),
            Err(FilesError::NotFound(_))
        ));
        assert!(matches!(
            list(&dir, Path::new("a.txt"), false, false),
            Err(FilesError::NotADirectory(_))
        ));
    }

    #[test]
    fn open_refuses_outward_symlinks_and_folders() {
        let (_t, dir) = workspace();
        assert!(open_file(&dir, Path::new("alias")).is_ok());
        assert!(matches!(
            open_file(&dir, Path::new("leak")),
            Err(FilesError::NotFound(_))
        ));
        assert!(matches!(
            open_file(&dir, Path::new("etcdir/passwd")),
            Err(FilesError::NotFound(_))
        ));
        assert!(matches!(
            open_file(&dir, Path::new("src")),
            Err(FilesError::IsDirectory(_))
        ));
    }

    #[test]
    fn delete_removes_the_link_not_its_target() {
        let (t, dir) = workspace();
        delete(&dir, Path::new("alias")).unwrap();
        assert!(t.path().join("a.txt").exists());
        delete(&dir, Path::new("etcdir")).unwrap();
        assert!(Path::new("/etc/passwd").exists());
        delete(&dir, Path::new("src")).unwrap();
        assert!(!t.path().join("src").exists());
        assert!(delete(&dir, Path::new("")).is_err());
    }

    #[test]
    fn a_folder_walk_that_fails_takes_back_what_it_made() {
        let (t, dir) = workspace();
        let made = open_folder(&dir, Path::new("new/deeper"), None).unwrap();
        assert!(made.dir_metadata().unwrap().is_dir());
        assert!(t.path().join("new/deeper").is_dir());
        // The walk makes `fresh`, then fails on a name no folder can have.
        let too_long = format!("fresh/{}", "x".repeat(300));
        assert!(open_folder(&dir, Path::new(&too_long), None).is_err());
        assert!(!t.path().join("fresh").exists());
        assert!(matches!(
            open_folder(&dir, Path::new("a.txt/x"), None),
            Err(FilesError::NotADirectory(_))
        ));
        assert!(matches!(
            open_folder(&dir, Path::new("etcdir/x"), None),
            Err(FilesError::NotFound(_))
        ));
    }

    #[test]
    fn temp_uploads_vanish_unless_committed() {
        let (t, dir) = workspace();
        {
            let (_upload, mut file) = TempUpload::create(dir.try_clone().unwrap()).unwrap();
            file.write_all(b"partial").unwrap();
        }
        let leftovers = std::fs::read_dir(t.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(UPLOAD_TEMP_PREFIX)
            })
            .count();
        assert_eq!(leftovers, 0);
        let (upload, mut file) = TempUpload::create(dir.try_clone().unwrap()).unwrap();
        file.write_all(b"new").unwrap();
        assert!(matches!(
            upload.commit(&dir, "a.txt", false, "a.txt", None),
            Err(FilesError::Exists(_))
        ));
        assert_eq!(
            std::fs::read_to_string(t.path().join("a.txt")).unwrap(),
            "aaa"
        );
        let (upload, mut file) = TempUpload::create(dir.try_clone().unwrap()).unwrap();
        file.write_all(b"new").unwrap();
        assert_eq!(
            upload.commit(&dir, "a.txt", true, "a.txt", None).unwrap(),
            3
        );
        assert_eq!(
            std::fs::read_to_string(t.path().join("a.txt")).unwrap(),
            "new"
        );
        // Overwriting a symlink replaces the link, never its target.
        let (upload, _file) = TempUpload::create(dir.try_clone().unwrap()).unwrap();
        upload.commit(&dir, "leak", true, "leak", None).unwrap();
        assert!(std::fs::read_to_string("/etc/passwd").unwrap().len() > 1);
        assert!(!std::fs::symlink_metadata(t.path().join("leak"))
            .unwrap()
            .file_type()
            .is_symlink());
        let (upload, _file) = TempUpload::create(dir.try_clone().unwrap()).unwrap();
        assert!(matches!(
            upload.commit(&dir, "src", true, "src", None),
            Err(FilesError::FolderInTheWay(_))
        ));
    }
}
