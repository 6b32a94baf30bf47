//! File operations on trees the agent can write: its workspace, a `/repo`
//! folder, its tenant's CLI state. The agent may replace any entry there
//! with a symlink at any moment, so nothing here follows one: every step is
//! opened relative to a descriptor of the step before with `O_NOFOLLOW`
//! (a link, `..` or an absolute component fails instead of being
//! followed); new files are made with `O_CREAT | O_EXCL` under a fresh name
//! and renamed into place; ownership is changed through descriptors, never
//! by path. The root of a tree is a path only the server controls (the
//! tenant's area, the CLI state folder), opened once.

use std::io::{self, Write as _};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::path::{Component, Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, DirBuilderExt as _, MetadataExt as _, OpenOptions, OpenOptionsExt as _};

/// Deepest folder an ownership walk descends into (a hostile tree may be
/// deeper than any stack or descriptor table should follow).
const MAX_WALK_DEPTH: usize = 64;

/// Who owns what the server makes for the agent: `(uid, gid)`, or `None`
/// when the agent is the server's own user.
pub type Owner = Option<(u32, u32)>;

/// An opened folder that the agent cannot move the server out of.
#[derive(Debug)]
pub struct Tree {
    dir: Dir,
}

fn refused(what: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} is not a plain relative path (no '..', no absolute part)",
            what.display()
        ),
    )
}

/// The names of `rel`, each a single plain component.
fn components(rel: &Path) -> io::Result<Vec<&std::ffi::OsStr>> {
    rel.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .map(|c| match c {
            Component::Normal(name) => Ok(name),
            _ => Err(refused(rel)),
        })
        .collect()
}

/// `fchown` of an open descriptor: the object it names, whatever has
/// happened to its path since.
fn chown_fd(fd: &impl std::os::fd::AsFd, owner: Owner) -> io::Result<()> {
    match owner {
        Some((uid, gid)) => std::os::unix::fs::fchown(fd, Some(uid), Some(gid)),
        None => Ok(()),
    }
}

impl Tree {
    /// Opens `root`, a folder whose own path the agent does not control.
    /// The last component must not be a symlink either.
    pub fn open(root: &Path) -> io::Result<Tree> {
        let parent = root.parent().unwrap_or(Path::new("/"));
        let name = root.file_name().ok_or_else(|| refused(root))?;
        let parent = Dir::open_ambient_dir(parent, ambient_authority())?;
        Ok(Tree {
            dir: open_dir_nofollow(&parent, name)?,
        })
    }

    /// Opens `root`, making it (and its parents, which are the server's)
    /// first when it is missing.
    pub fn open_or_create(root: &Path) -> io::Result<Tree> {
        std::fs::create_dir_all(root)?;
        Tree::open(root)
    }

    /// The folder `rel` beneath the root, walked one component at a time
    /// without following links. With `create`, missing folders are made
    /// (mode 0700) and given to that owner.
    pub fn subtree(&self, rel: &Path, create: Option<Owner>) -> io::Result<Tree> {
        let mut dir = self.dir.try_clone()?;
        for name in components(rel)? {
            dir = match open_dir_nofollow(&dir, name) {
                Ok(next) => next,
                Err(e) if e.kind() == io::ErrorKind::NotFound && create.is_some() => {
                    let mut builder = cap_std::fs::DirBuilder::new();
                    builder.mode(0o700);
                    match dir.create_dir_with(name, &builder) {
                        Ok(()) => {}
                        // Made meanwhile (by the agent, say): open what is there.
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(e),
                    }
                    let next = open_dir_nofollow(&dir, name)?;
                    chown_fd(&next, create.flatten())?;
                    next
                }
                Err(e) => return Err(e),
            };
        }
        Ok(Tree { dir })
    }

    /// Whether a regular file `name` is in this folder (a link there is no file).
    pub fn has_file(&self, name: &str) -> io::Result<bool> {
        match self.dir.symlink_metadata(name) {
            Ok(meta) => Ok(meta.is_file()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Writes `lines` (one per line) as the file `name` of this folder,
    /// private (0600) and owned by `owner`: into a new file of a fresh name
    /// (`O_EXCL`: never an existing file or a planted link), synced, then
    /// renamed over whatever was at `name` (a link there is replaced, not
    /// followed). A half-written file is never seen under `name`.
    pub fn write_lines(&self, name: &str, lines: &[String], owner: Owner) -> io::Result<()> {
        if components(Path::new(name))?.len() != 1 {
            return Err(refused(Path::new(name)));
        }
        let temp = format!(".{name}.{}.partial", uuid::Uuid::new_v4().simple());
        let mut options = OpenOptions::new();
        options.write(true).create_new(true).mode(0o600);
        let file = self.dir.open_with(&temp, &options)?.into_std();
        let written = (|| {
            chown_fd(&file, owner)?;
            let mut out = io::BufWriter::new(&file);
            for line in lines {
                out.write_all(line.as_bytes())?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
            drop(out);
            file.sync_all()?;
            self.dir.rename(&temp, &self.dir, name)
        })();
        if written.is_err() {
            let _ = self.dir.remove_file(&temp);
        }
        written
    }

    /// The opened folder, to read it with `files::walk`.
    pub fn as_dir(&self) -> &Dir {
        &self.dir
    }

    /// A descriptor of this folder for a child process (`bwrap --bind-fd`):
    /// the folder opened here, wherever its path points by then.
    pub fn descriptor(&self) -> io::Result<OwnedFd> {
        Ok(self.dir.try_clone()?.into_std_file().into())
    }

    /// Gives this folder, and when it is not `owner`'s yet everything in
    /// it, to `owner`, by descriptor: entries are changed with
    /// `AT_SYMLINK_NOFOLLOW` (a link itself, never its target), folders are
    /// entered only when they open without following a link, and files with
    /// other hard links are left alone (they may be another file of the
    /// host's). A folder that is `owner`'s already is not walked: what the
    /// server makes in it is made `owner`'s from the start.
    pub fn give_to(&self, owner: (u32, u32)) -> io::Result<()> {
        let meta = self.dir.dir_metadata()?;
        if meta.uid() == owner.0 && meta.gid() == owner.1 {
            return Ok(());
        }
        walk_give(&self.dir, owner, 0)?;
        // The top last: an interrupted walk is taken up again next time.
        chown_fd(&self.dir, Some(owner))
    }
}

impl Tree {
    /// Makes the folder `rel` (its parent must be there), with the
    /// permission bits of `mode` only, owned by `owner`. A name that is
    /// there already (a link, anything) is an error, never followed.
    pub fn make_folder(&self, rel: &Path, mode: u32, owner: Owner) -> io::Result<()> {
        let (parent, name) = self.parent_of(rel)?;
        let mut builder = cap_std::fs::DirBuilder::new();
        builder.mode(0o700);
        parent.dir.create_dir_with(name, &builder)?;
        let made = open_dir_nofollow(&parent.dir, name)?;
        chown_fd(&made, owner)?;
        fchmod(&made, mode)
    }

    /// Makes the file `rel` new (`O_CREAT | O_EXCL | O_NOFOLLOW`: never an
    /// existing file or a link), with the permission bits of `mode` only,
    /// owned by `owner`, and opens it for writing.
    pub fn make_file(&self, rel: &Path, mode: u32, owner: Owner) -> io::Result<std::fs::File> {
        let (parent, name) = self.parent_of(rel)?;
        let mut options = OpenOptions::new();
        options
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW);
        let file = parent.dir.open_with(name, &options)?.into_std();
        chown_fd(&file, owner)?;
        fchmod(&file, mode)?;
        Ok(file)
    }

    /// The folder holding `rel`, and `rel`'s last name.
    fn parent_of<'a>(&self, rel: &'a Path) -> io::Result<(Tree, &'a std::ffi::OsStr)> {
        let names = components(rel)?;
        let Some((name, parents)) = names.split_last() else {
            return Err(refused(rel));
        };
        Ok((
            self.subtree(&parents.iter().collect::<PathBuf>(), None)?,
            name,
        ))
    }
}

/// `fchmod` to the permission bits of `mode`: never setuid, setgid or sticky.
fn fchmod(fd: &impl std::os::fd::AsFd, mode: u32) -> io::Result<()> {
    rustix::fs::fchmod(fd, rustix::fs::Mode::from_bits_truncate(mode & 0o777))
        .map_err(io::Error::from)
}

impl Tree {
    /// Removes the entry `name` of this folder with everything beneath it
    /// (see `remove_entry`).
    pub fn remove_all(&self, name: &std::ffi::OsStr) -> io::Result<()> {
        remove_entry(&self.dir, name)
    }
}

/// Removes the entry `name` of `dir` with everything beneath it, by
/// descriptor: a link is removed itself (never what it points to), a folder
/// is entered only when it opens without following a link, and an entry
/// gone meanwhile is no error. Folders nested deeper than a walk descends
/// are lifted up to the top of `name` under a fresh name and removed in a
/// later pass, so no tree is too deep to remove.
pub fn remove_entry(dir: &Dir, name: &std::ffi::OsStr) -> io::Result<()> {
    if components(Path::new(name))?.len() != 1 {
        return Err(refused(Path::new(name)));
    }
    match open_dir_nofollow(dir, name) {
        Ok(top) => loop {
            refuse_mount_point(dir, &top, name)?;
            let mut lifted = false;
            remove_entries(&top, &top, 1, &mut lifted)?;
            if !lifted {
                break;
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {
            return remove_beneath(dir, dir, name, 0, &mut false);
        }
        Err(e) => return Err(e),
    }
    match dir.remove_dir(name) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// A removal never crosses into another file system: a folder mounted
/// there (by the operator; the agent cannot mount) and what it holds stay.
fn refuse_mount_point(parent: &Dir, sub: &Dir, name: &std::ffi::OsStr) -> io::Result<()> {
    // The mount id, not the device: a bind mount of the same file system
    // has the same device.
    let mount = |dir: &Dir| {
        rustix::fs::statx(
            dir,
            "",
            rustix::fs::AtFlags::EMPTY_PATH,
            rustix::fs::StatxFlags::MNT_ID,
        )
        .map(|st| (st.stx_dev_major, st.stx_dev_minor, st.stx_mnt_id))
        .map_err(io::Error::from)
    };
    if mount(parent)? == mount(sub)? {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::ResourceBusy,
        format!(
            "{} is a mount point; left in place",
            Path::new(name).display()
        ),
    ))
}

/// Removes every entry of `dir`; one that cannot be removed does not stop
/// the others (the first failure is returned after all were tried).
fn remove_entries(top: &Dir, dir: &Dir, depth: usize, lifted: &mut bool) -> io::Result<()> {
    let mut failed = None;
    for entry in dir.entries()? {
        let removed = entry.and_then(|e| remove_beneath(top, dir, &e.file_name(), depth, lifted));
        if let Err(e) = removed {
            failed.get_or_insert(e);
        }
    }
    failed.map_or(Ok(()), Err)
}

/// Removes `name` of `dir` (at `depth` below `top`) and all beneath it.
fn remove_beneath(
    top: &Dir,
    dir: &Dir,
    name: &std::ffi::OsStr,
    depth: usize,
    lifted: &mut bool,
) -> io::Result<()> {
    let gone = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
    let meta = match dir.symlink_metadata(name) {
        Ok(meta) => meta,
        Err(e) if gone(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    if depth >= MAX_WALK_DEPTH {
        let fresh = format!(".cca-removing-{}", uuid::Uuid::new_v4().simple());
        dir.rename(name, top, &fresh)?;
        *lifted = true;
        return Ok(());
    }
    if !meta.is_dir() {
        return match dir.remove_file(name) {
            Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
                // Swapped for a folder since the stat: taken as one.
                remove_beneath(top, dir, name, depth + 1, lifted)
            }
            Err(e) if !gone(&e) => Err(e),
            _ => Ok(()),
        };
    }
    match open_dir_nofollow(dir, name) {
        Ok(sub) => {
            refuse_mount_point(dir, &sub, name)?;
            remove_entries(top, &sub, depth + 1, lifted)?;
        }
        Err(e) if gone(&e) => return Ok(()),
        // A link or a file now: removed as such.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {
            return remove_beneath(top, dir, name, depth + 1, lifted);
        }
        Err(e) => return Err(e),
    }
    match dir.remove_dir(name) {
        Err(e) if !gone(&e) => Err(e),
        _ => Ok(()),
    }
}

fn walk_give(dir: &Dir, owner: (u32, u32), depth: usize) -> io::Result<()> {
    for entry in dir.entries()? {
        let entry = entry?;
        let name = entry.file_name();
        let Ok(meta) = dir.symlink_metadata(&name) else {
            continue; // gone meanwhile
        };
        if meta.is_dir() {
            if depth >= MAX_WALK_DEPTH {
                tracing::warn!(
                    depth,
                    "a folder of the agent's is nested too deep to hand over whole"
                );
                continue;
            }
            // Swapped for a link since the stat: refused, skipped.
            let Ok(sub) = open_dir_nofollow(dir, &name) else {
                continue;
            };
            let sub_meta = sub.dir_metadata()?;
            if sub_meta.uid() != owner.0 || sub_meta.gid() != owner.1 {
                chown_fd(&sub, Some(owner))?;
            }
            walk_give(&sub, owner, depth + 1)?;
        } else if (meta.uid() != owner.0 || meta.gid() != owner.1) && meta.nlink() <= 1 {
            chown_at(dir, &name, owner)?;
        }
    }
    Ok(())
}

/// `openat(dir, name, O_DIRECTORY | O_NOFOLLOW)`: the folder `name`, or an
/// error when it is a link (or anything but a folder).
pub fn open_dir_nofollow(dir: &Dir, name: &std::ffi::OsStr) -> io::Result<Dir> {
    let c = std::ffi::CString::new(name.as_encoded_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a valid directory descriptor and a NUL-terminated name; the
    // descriptor returned is new and owned by the `File` made from it.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    let file = unsafe { std::fs::File::from_raw_fd(fd) };
    Ok(Dir::from_std_file(file))
}

/// `fchownat(dir, name, AT_SYMLINK_NOFOLLOW)`: a link is changed itself; a
/// name gone meanwhile is no error.
pub fn chown_at(dir: &Dir, name: &std::ffi::OsStr, owner: (u32, u32)) -> io::Result<()> {
    let c = std::ffi::CString::new(name.as_encoded_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a valid directory descriptor and a NUL-terminated name.
    let rc = unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            c.as_ptr(),
            owner.0,
            owner.1,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    match rc {
        0 => Ok(()),
        _ => match io::Error::last_os_error() {
            e if e.kind() == io::ErrorKind::NotFound => Ok(()),
            e => Err(e),
        },
    }
}

/// `path` as a plain path beneath `root` (lexically: no `..`, no link
/// resolution), for a path a client named absolutely or relatively.
pub fn relative_beneath(root: &Path, path: &Path) -> Option<PathBuf> {
    let rel = if path.is_absolute() {
        path.strip_prefix(root).ok()?
    } else {
        path
    };
    let parts = components(rel).ok()?;
    (!parts.is_empty()).then(|| parts.iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn written_files_replace_links_instead_of_following_them() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        let root = tmp.path().join("state");
        std::fs::create_dir_all(root.join("projects/p")).unwrap();
        symlink(&victim, root.join("projects/p/id.jsonl")).unwrap();
        let tree = Tree::open(&root).unwrap();
        let folder = tree.subtree(Path::new("projects/p"), Some(None)).unwrap();
        folder
            .write_lines("id.jsonl", &["a".into(), "b".into()], None)
            .unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        let written = root.join("projects/p/id.jsonl");
        assert!(std::fs::symlink_metadata(&written).unwrap().is_file());
        assert_eq!(std::fs::read_to_string(&written).unwrap(), "a\nb\n");
        let leftovers: Vec<_> = std::fs::read_dir(root.join("projects/p"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn walks_refuse_links_and_dot_dot() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("state");
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::fs::create_dir_all(tmp.path().join("outside")).unwrap();
        symlink(tmp.path().join("outside"), root.join("projects")).unwrap();
        symlink("real", root.join("inner-link")).unwrap();
        let tree = Tree::open(&root).unwrap();
        for bad in ["projects", "projects/x", "inner-link", "../outside", "/etc"] {
            assert!(
                tree.subtree(Path::new(bad), Some(None)).is_err(),
                "{bad} must not open"
            );
        }
        assert!(!tmp.path().join("outside/x").exists());
        assert!(tree
            .subtree(Path::new("real/new/deeper"), Some(None))
            .is_ok());
        assert!(root.join("real/new/deeper").is_dir());
        // The root itself must not be a link.
        symlink(&root, tmp.path().join("root-link")).unwrap();
        assert!(Tree::open(&tmp.path().join("root-link")).is_err());
    }

    #[test]
    fn removal_takes_links_not_their_targets_at_any_depth() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("keep"), "keep").unwrap();
        let area = tmp.path().join("area");
        let mut deep = area.join("ws");
        for i in 0..(MAX_WALK_DEPTH * 2 + 3) {
            deep = deep.join(format!("d{i}"));
        }
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("f"), "f").unwrap();
        symlink(&outside, area.join("ws/link-out")).unwrap();
        symlink(&outside, deep.join("deep-link")).unwrap();
        std::fs::write(area.join("neighbour"), "n").unwrap();
        let tree = Tree::open(&area).unwrap();
        tree.remove_all(std::ffi::OsStr::new("ws")).unwrap();
        assert!(!area.join("ws").exists());
        let left: Vec<_> = std::fs::read_dir(&area)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, [std::ffi::OsString::from("neighbour")]);
        assert_eq!(
            std::fs::read_to_string(outside.join("keep")).unwrap(),
            "keep"
        );
        // Gone already: nothing to do, no error.
        tree.remove_all(std::ffi::OsStr::new("ws")).unwrap();
        assert!(tree.remove_all(std::ffi::OsStr::new("../outside")).is_err());
    }

    #[test]
    fn paths_beneath_a_root_are_plain() {
        let root = Path::new("/w/alice");
        assert_eq!(
            relative_beneath(root, Path::new("/w/alice/a/b")),
            Some(PathBuf::from("a/b"))
        );
        assert_eq!(
            relative_beneath(root, Path::new("a/./b")),
            Some(PathBuf::from("a/b"))
        );
        for bad in ["/w/alice", "/w/bob/x", "a/../b", "..", "", "/etc"] {
            assert_eq!(relative_beneath(root, Path::new(bad)), None, "{bad}");
        }
    }
}
