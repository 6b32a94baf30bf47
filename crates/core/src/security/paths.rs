//! Path confinement: every path a client names is resolved beneath a
//! session's workspace and never leaves it, not even through a symlink the
//! agent planted.
//!
//! Two layers:
//! 1. `parse_relative` refuses, before touching the disk, what can only be an
//!    attempt to leave: absolute paths, `..`, NUL bytes, and components that
//!    still decode to one of those after the request's own percent-decoding
//!    (`%2e%2e`, `%2f`: double encoding).
//! 2. Everything is then opened relative to a directory handle with
//!    `cap-std`, which on Linux uses `openat2(RESOLVE_BENEATH)` (and an
//!    equivalent component-by-component walk elsewhere): a symlink whose
//!    target lies outside the handle's directory, or is absolute, fails to
//!    open instead of being followed. The workspace handle itself is opened
//!    beneath the tenant's area, so a workspace replaced by a symlink to
//!    another tenant's directory does not open either.

use std::io;
use std::path::{Component, Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;

/// Longest name of one path component (the usual filesystem limit).
pub const MAX_NAME_BYTES: usize = 255;
/// Longest relative path a client may name.
pub const MAX_PATH_BYTES: usize = 4096;

/// Why a client's path was refused without looking at the disk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path contains a NUL byte")]
    Nul,
    #[error("absolute paths are not allowed; name a path relative to the workspace")]
    Absolute,
    #[error("the path may not contain '..'")]
    Traversal,
    #[error("the path may not contain '\\'; separate folders with '/'")]
    Backslash,
    #[error("the path contains an encoded separator, '.' or '..' (double encoding is refused)")]
    Encoded,
    #[error("the path is too long")]
    TooLong,
    #[error(
        "invalid file name {0:?}: it must not be empty, '.', '..', or contain '/', '\\\\' or NUL"
    )]
    BadName(String),
}

/// A client's relative path, checked lexically: only normal components
/// remain (empty and `.` components are dropped). The empty path is the
/// workspace itself.
pub fn parse_relative(raw: &str) -> Result<PathBuf, PathError> {
    if raw.contains('\0') {
        return Err(PathError::Nul);
    }
    if raw.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    if raw.starts_with('/') || raw.starts_with('\\') {
        return Err(PathError::Absolute);
    }
    let mut out = PathBuf::new();
    for part in raw.split('/') {
        match part {
            "" | "." => continue,
            ".." => return Err(PathError::Traversal),
            _ => {}
        }
        if part.len() > MAX_NAME_BYTES {
            return Err(PathError::TooLong);
        }
        if part.contains('\\') {
            // Not a separator here, but a client that sends one means one.
            return Err(PathError::Backslash);
        }
        let decoded = percent_decode(part);
        if decoded != part.as_bytes()
            && (decoded == b".."
                || decoded == b"."
                || decoded.iter().any(|b| matches!(b, b'/' | b'\\' | 0)))
        {
            return Err(PathError::Encoded);
        }
        out.push(part);
    }
    // Belt and braces: nothing but normal components may survive.
    if out.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(PathError::Traversal);
    }
    Ok(out)
}

/// A name for a new file in a folder: one component, not `.`/`..`, no
/// separators, no NUL.
pub fn validate_file_name(name: &str) -> Result<(), PathError> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.len() > MAX_NAME_BYTES
        || name.contains(['/', '\\', '\0']);
    if bad {
        return Err(PathError::BadName(name.to_owned()));
    }
    let decoded = percent_decode(name);
    if decoded != name.as_bytes()
        && (decoded == b".." || decoded == b"." || decoded.contains(&b'/'))
    {
        return Err(PathError::BadName(name.to_owned()));
    }
    Ok(())
}

/// Opens a session's workspace as a directory handle, resolved beneath the
/// tenant's area `approved_root/<tenant>` (so neither a symlinked tenant
/// folder nor a workspace swapped for a symlink can lead elsewhere).
/// `approved_root` is the canonical `APPROVED_DIRECTORY`.
pub fn open_workspace(approved_root: &Path, tenant: &str, workspace: &Path) -> io::Result<Dir> {
    let area = approved_root.join(tenant);
    let relative = workspace.strip_prefix(&area).map_err(|_| {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the workspace is not inside the tenant's area",
        )
    })?;
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the workspace path is not plain",
        ));
    }
    let root = Dir::open_ambient_dir(approved_root, ambient_authority())?;
    let tenant_dir = root.open_dir(tenant)?;
    if relative.as_os_str().is_empty() {
        return Ok(tenant_dir);
    }
    tenant_dir.open_dir(relative)
}

/// `true` when `candidate` (already canonical) lies strictly beneath `area`
/// (also canonical).
pub fn is_strictly_beneath(candidate: &Path, area: &Path) -> bool {
    candidate != area && candidate.starts_with(area)
}

/// Percent-decoding of one component, for spotting double encoding. Invalid
/// escapes are kept as they are.
fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn plain_relative_paths_pass() {
        assert_eq!(parse_relative("").unwrap(), PathBuf::new());
        assert_eq!(parse_relative(".").unwrap(), PathBuf::new());
        assert_eq!(parse_relative("a/b.txt").unwrap(), PathBuf::from("a/b.txt"));
        assert_eq!(parse_relative("a//./b/").unwrap(), PathBuf::from("a/b"));
        assert_eq!(parse_relative(".hidden").unwrap(), PathBuf::from(".hidden"));
        assert_eq!(parse_relative("a..b").unwrap(), PathBuf::from("a..b"));
        assert_eq!(
            parse_relative("100%/x%41").unwrap(),
            PathBuf::from("100%/x%41")
        );
    }

    #[test]
    fn escapes_are_refused_lexically() {
        assert_eq!(parse_relative("/etc/passwd"), Err(PathError::Absolute));
        assert_eq!(parse_relative("\\etc"), Err(PathError::Absolute));
        assert_eq!(parse_relative(".."), Err(PathError::Traversal));
        assert_eq!(parse_relative("a/../../b"), Err(PathError::Traversal));
        assert_eq!(parse_relative("a/.."), Err(PathError::Traversal));
        assert_eq!(parse_relative("a\\..\\b"), Err(PathError::Backslash));
        assert_eq!(parse_relative("a\\b"), Err(PathError::Backslash));
        assert_eq!(parse_relative("a\0b"), Err(PathError::Nul));
        assert_eq!(parse_relative("%2e%2e/etc"), Err(PathError::Encoded));
        assert_eq!(parse_relative("%2E%2E"), Err(PathError::Encoded));
        assert_eq!(parse_relative("a%2fb"), Err(PathError::Encoded));
        assert_eq!(parse_relative("a%00b"), Err(PathError::Encoded));
        assert_eq!(parse_relative(&"x".repeat(300)), Err(PathError::TooLong));
    }

    #[test]
    fn file_names_are_single_components() {
        for good in ["a.txt", ".env", "a..b", "résumé.pdf", "100%"] {
            assert!(validate_file_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "/x", "a\\b", "a\0b", "%2e%2e", "%2F"] {
            assert!(validate_file_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn percent_decoding_handles_edges() {
        assert_eq!(percent_decode("%41%4a"), b"AJ");
        assert_eq!(percent_decode("%"), b"%");
        assert_eq!(percent_decode("%4"), b"%4");
        assert_eq!(percent_decode("x%zz"), b"x%zz");
        assert_eq!(percent_decode("%41"), b"A");
    }

    /// A workspace with a file, a folder, an inside symlink and symlinks
    /// that point out in every way the agent could make one.
    fn fixture() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let ws = root.join("alice").join("ws");
        std::fs::create_dir_all(ws.join("sub")).unwrap();
        std::fs::create_dir_all(root.join("bob").join("other")).unwrap();
        std::fs::write(root.join("bob/other/secret.txt"), "bob's").unwrap();
        std::fs::write(root.join("outside.txt"), "outside").unwrap();
        std::fs::write(ws.join("sub/in.txt"), "inside").unwrap();
        symlink("sub/in.txt", ws.join("rel-in")).unwrap();
        symlink("/etc/passwd", ws.join("leak")).unwrap();
        symlink("../../outside.txt", ws.join("up")).unwrap();
        symlink("../../bob/other", ws.join("bobdir")).unwrap();
        symlink(ws.join("sub/in.txt"), ws.join("abs-in")).unwrap();
        symlink("/", ws.join("sub/rootlink")).unwrap();
        (tmp, root, ws)
    }

    #[test]
    fn symlinks_never_lead_out_of_the_workspace() {
        let (_tmp, root, ws) = fixture();
        let dir = open_workspace(&root, "alice", &ws).unwrap();
        assert_eq!(dir.read_to_string("sub/in.txt").unwrap(), "inside");
        assert_eq!(dir.read_to_string("rel-in").unwrap(), "inside");
        for escape in [
            "leak",
            "up",
            "bobdir/secret.txt",
            "sub/rootlink/etc/passwd",
            // Absolute symlinks are refused even when they point inside.
            "abs-in",
        ] {
            assert!(dir.open(escape).is_err(), "{escape} must not open");
            assert!(dir.metadata(escape).is_err(), "{escape} must not stat");
        }
        assert!(dir.open_dir("bobdir").is_err());
        assert!(dir.open_dir("sub/rootlink").is_err());
        // cap-std refuses `..` out of the handle and absolute paths too,
        // even if the lexical check were skipped.
        assert!(dir.open("../../outside.txt").is_err());
        assert!(dir.open("/etc/passwd").is_err());
    }

    #[test]
    fn the_workspace_handle_stays_in_the_tenant_area() {
        let (_tmp, root, ws) = fixture();
        // A workspace outside the tenant's area is refused.
        assert!(open_workspace(&root, "alice", &root.join("bob/other")).is_err());
        assert!(open_workspace(&root, "alice", Path::new("/etc")).is_err());
        // A workspace that became a symlink to another tenant does not open.
        std::fs::remove_dir_all(&ws).unwrap();
        symlink(root.join("bob/other"), &ws).unwrap();
        assert!(open_workspace(&root, "alice", &ws).is_err());
        std::fs::remove_file(&ws).unwrap();
        symlink("../bob/other", &ws).unwrap();
        assert!(open_workspace(&root, "alice", &ws).is_err());
    }

    #[test]
    fn strictly_beneath() {
        let area = Path::new("/w/alice");
        assert!(is_strictly_beneath(Path::new("/w/alice/x"), area));
        assert!(!is_strictly_beneath(Path::new("/w/alice"), area));
        assert!(!is_strictly_beneath(Path::new("/w/alice2/x"), area));
        assert!(!is_strictly_beneath(Path::new("/w/bob"), area));
    }
}
