//! Where sessions work: `APPROVED_DIRECTORY/<tenant>/<name>`.

use std::io;
use std::path::{Path, PathBuf};

/// The workspace of a session. `name` is already validated (no separators,
/// no leading dot), so the path cannot leave the tenant's area.
pub fn session_dir(root: &Path, tenant: &str, name: &str) -> PathBuf {
    root.join(tenant).join(name)
}

/// Creates the workspace; `Ok(false)` when it already existed (then the
/// session does not own it and never deletes it).
pub fn create(dir: &Path) -> io::Result<bool> {
    let made = if dir.is_dir() {
        false
    } else {
        std::fs::create_dir_all(dir)?;
        true
    };
    // The tenant's area is the server's alone (each agent sees only its own
    // workspace, bound into its sandbox): no tenant's agent user can walk
    // into another's even if something else fails.
    if let Some(area) = dir.parent() {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(area, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(made)
}

/// Tries of one removal before the folder is left to the sweeper.
const REMOVE_ATTEMPTS: u32 = 5;

/// Removes a workspace the session created, beneath its tenant's area (a
/// folder only the server controls), by descriptor: nothing the agent left
/// there (a link, a folder swapped for one) is ever followed. An agent's
/// process that is still dying may hold or add entries for a moment, so a
/// failed try is repeated a few times, waiting longer each time. Blocking.
pub fn remove(dir: &Path) -> io::Result<()> {
    let (Some(area), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is no workspace", dir.display()),
        ));
    };
    let area = match crate::sandbox::tree::Tree::open(area) {
        Ok(area) => area,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut wait = std::time::Duration::from_millis(50);
    let mut attempt = 1;
    loop {
        match area.remove_all(name) {
            Ok(()) => return Ok(()),
            Err(e) if attempt >= REMOVE_ATTEMPTS => return Err(e),
            Err(_) => {
                std::thread::sleep(wait);
                wait *= 2;
                attempt += 1;
            }
        }
    }
}

/// A session's working folder, opened from the tenant's area (beneath
/// `root`) down one folder at a time without following a link: a folder the
/// agent swapped for a link is refused, never followed.
pub fn open_tree(
    root: &Path,
    tenant_id: &str,
    workspace: &Path,
) -> io::Result<crate::sandbox::Tree> {
    let area = root.join(tenant_id);
    let rel = crate::sandbox::tree::relative_beneath(&area, workspace).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is not a folder of the tenant's area",
                workspace.display()
            ),
        )
    })?;
    crate::sandbox::Tree::open(&area)?.subtree(&rel, None)
}
