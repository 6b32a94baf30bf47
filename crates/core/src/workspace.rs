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

/// Removes a workspace the session created.
pub fn remove(dir: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}
