//! Workspace snapshots: the state of a session's workspace at the end of
//! each turn, so a fork at that turn starts from exactly those files.
//!
//! The store is the server's alone: `APPROVED_DIRECTORY/.snapshots` (beside
//! the tenants' areas, inside none, so no sandbox is ever given it; on the
//! shared storage a cluster's workspaces need, so every node finds every
//! snapshot). Each session has a folder there: its files' contents as
//! blobs named by their SHA-256 (`blobs/`), and one manifest per turn
//! (`turns/<n>.json`: path → blob and mode). A file unchanged since the
//! previous turn (same size, mtime, ctime and inode) is not read again.
//!
//! Reading the workspace goes through `files::walk` (no link followed, only
//! regular files and folders), writing a fork's through `sandbox::Tree`
//! (fresh entries only, by descriptor): see `take` and `restore`.

mod manifest;
mod restore;
mod store;
mod take;

pub use manifest::{Manifest, ManifestEntry};
pub use restore::restore;
pub use store::SessionStore;
pub use take::{take, Limits, NotTaken};

use std::path::{Path, PathBuf};

/// The snapshot store of the workspaces under `workspace_root`.
pub fn store_root(workspace_root: &Path) -> PathBuf {
    workspace_root.join(".snapshots")
}

/// Removes the snapshots of a deleted session. A failure is only logged:
/// the folder is the server's own, and no agent ever sees it.
pub async fn forget(workspace_root: &Path, session_id: &str, session_name: &str) {
    let store = SessionStore::new(&store_root(workspace_root), session_id);
    let removed = crate::blocking::run(move || store.remove()).await;
    let error = match removed {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    tracing::warn!(session = %session_name, %error, "cannot remove the session's workspace snapshots");
}
