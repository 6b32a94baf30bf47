//! A session's workspace as the files API reaches it: opened as a
//! capability handle (nothing outside it can be named through it), listed,
//! and deleted from. Transfers stream in `api::files`, on the handle this
//! opens.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cap_std::fs::Dir;

use super::{Requester, Services};
use crate::db::models::session::Session;
use crate::error::ServiceError;
use crate::files::{self, FilesError};
use crate::security::paths;

/// Runs blocking file work on the blocking pool; its error as the API's.
pub async fn blocking<T, F>(f: F) -> Result<T, ServiceError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, FilesError> + Send + 'static,
{
    crate::blocking::run(f).await?.map_err(ServiceError::from)
}

/// The caller's session and a handle on its workspace.
pub async fn open(
    services: &Services,
    who: &Requester,
    name: &str,
) -> Result<(Session, Arc<Dir>), ServiceError> {
    let session = super::sessions::load(services, who, name).await?;
    let root = services.workspace_root.clone();
    let tenant = who.tenant().as_str().to_owned();
    let workspace = PathBuf::from(&session.workspace);
    let dir = blocking(move || {
        paths::open_workspace(&root, &tenant, &workspace).map_err(|e| {
            tracing::warn!(error = %e, workspace = %workspace.display(), "cannot open a workspace");
            FilesError::NotFound(String::new())
        })
    })
    .await
    .map_err(|_| {
        ServiceError::NotFound(format!(
            "the workspace of session {name:?} is not available"
        ))
    })?;
    Ok((session, Arc::new(dir)))
}

/// The entries under `rel` (a relative path already parsed), sorted.
pub async fn list(
    services: &Services,
    who: &Requester,
    name: &str,
    rel: PathBuf,
    recursive: bool,
    hidden: bool,
) -> Result<Vec<files::Entry>, ServiceError> {
    let (_, root) = open(services, who, name).await?;
    blocking(move || files::list(&root, &rel, recursive, hidden)).await
}

/// Deletes a file or folder of the workspace (`raw` as the client sent it;
/// not the root itself). Audited.
pub async fn delete(
    services: &Services,
    who: &Requester,
    name: &str,
    raw: &str,
) -> Result<(), ServiceError> {
    let rel = paths::parse_relative(raw).map_err(FilesError::from)?;
    if rel.as_os_str().is_empty() {
        return Err(ServiceError::Validation(
            "name a file or folder inside the workspace".into(),
        ));
    }
    let (_, root) = open(services, who, name).await?;
    blocking(move || files::delete(&root, Path::new(&rel))).await?;
    services.disk.forget_usage(who.tenant().as_str()).await;
    super::audit::record(services, who, "file.delete", &format!("{name}/{raw}")).await;
    Ok(())
}
