//! `POST /sessions/{name}/repo`: point a session at another existing folder
//! of the tenant's own area. The CLI restarts there on the same conversation.

use std::path::{Path, PathBuf};

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use utoipa::ToSchema;

use super::envelope::{self, Envelope};
use super::sessions::{load_session, SessionData};
use super::AppState;
use crate::actors::session::workspace::{ChangeWorkspace, ChangeWorkspaceError};
use crate::actors::supervisor::messages::OpenSession;
use crate::db::models::session;
use crate::error::{ApiError, Problem};
use crate::security::auth::Caller;
use crate::security::paths::is_strictly_beneath;

/// Where the session's CLI should work from now on.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetWorkingDir {
    /// An existing folder inside the tenant's area: absolute, or relative to
    /// it. Not blank, no NUL; a path that is no folder of the area is a 404.
    #[schema(pattern = "^[^\\x00]*[^\\s\\x00][^\\x00]*$")]
    working_dir: String,
}

/// Why a `working_dir` cannot be used.
#[derive(Debug)]
pub enum WorkingDirError {
    /// Not a path at all (blank, a NUL byte): the request is wrong.
    Invalid(String),
    /// No folder of the tenant's area there: missing, a file, or outside.
    NotFound(String),
    /// The area itself cannot be read.
    Unavailable(String),
}

impl From<WorkingDirError> for ApiError {
    fn from(e: WorkingDirError) -> Self {
        match e {
            WorkingDirError::Invalid(m) => ApiError::Validation(m),
            WorkingDirError::NotFound(m) => ApiError::NotFound(m),
            WorkingDirError::Unavailable(m) => ApiError::internal(m),
        }
    }
}

/// `raw` (absolute, or relative to the tenant's area) resolved with every
/// symlink followed, then checked to be an existing folder strictly inside
/// the tenant's area. Blocking.
pub fn resolve_working_dir(area: &Path, raw: &str) -> Result<PathBuf, WorkingDirError> {
    use WorkingDirError::*;
    if raw.trim().is_empty() {
        return Err(Invalid("working_dir must not be empty".into()));
    }
    if raw.contains('\0') {
        return Err(Invalid("working_dir contains a NUL byte".into()));
    }
    let area = area
        .canonicalize()
        .map_err(|e| Unavailable(format!("the tenant's area is not available: {e}")))?;
    let candidate = Path::new(raw);
    let candidate = if candidate.is_absolute() {
        candidate.to_path_buf()
    } else {
        area.join(candidate)
    };
    let real = candidate
        .canonicalize()
        .map_err(|_| NotFound(format!("working_dir {raw:?} does not exist")))?;
    // Outside the area is "not there for you", as in the files API.
    if !is_strictly_beneath(&real, &area) {
        return Err(NotFound(format!(
            "working_dir {raw:?} is outside your area; it must be a folder inside {}",
            area.display()
        )));
    }
    if !real.is_dir() {
        return Err(NotFound(format!("working_dir {raw:?} is not a folder")));
    }
    Ok(real)
}

/// Points the session at another existing folder of the tenant's area; the
/// CLI restarts there on the same conversation.
#[utoipa::path(
    post,
    path = "/api/v1/sessions/{name}/repo",
    tag = "sessions",
    params(("name" = String, Path, description = "The session's name")),
    request_body = SetWorkingDir,
    responses(
        (status = 200, description = "The session, with its new workspace", body = Envelope<SessionData>),
        (status = 404, description = "No session of that name in this tenant, or `working_dir` is no folder inside the tenant's area (missing, a file, or outside it)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A turn is running; try again when it ends", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A blank `working_dir` or one with a NUL byte", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn set_working_dir(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    body: super::envelope::JsonObject<SetWorkingDir>,
) -> Result<HttpResponse, ApiError> {
    let row = load_session(&state, &caller, &name).await?;
    let area = state.workspace_root.join(caller.tenant.as_str());
    let raw = body.into_inner().working_dir;
    let dir = tokio::task::spawn_blocking(move || resolve_working_dir(&area, &raw))
        .await
        .map_err(ApiError::internal)??;
    let addr = state.supervisor.send(OpenSession(row.clone())).await??;
    addr.send(ChangeWorkspace { workspace: dir })
        .await?
        .map_err(|e| match e {
            ChangeWorkspaceError::Busy => ApiError::Conflict(e.to_string()),
            ChangeWorkspaceError::Failed(cause) => ApiError::internal(cause),
        })?;
    let tenant = caller.tenant.clone();
    let lookup = row.name.clone();
    let updated = crate::db::run(&state.pool, move |c| {
        session::find_by_name(c, &tenant, &lookup)
    })
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no session named {:?}", row.name)))?;
    Ok(envelope::ok(
        &req,
        super::sessions::session_view(&state, &caller, updated).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_dirs_stay_in_the_tenant_area() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let area = root.join("alice");
        std::fs::create_dir_all(area.join("repo/sub")).unwrap();
        std::fs::create_dir_all(root.join("bob/repo")).unwrap();
        std::fs::write(area.join("file.txt"), "x").unwrap();
        std::os::unix::fs::symlink(root.join("bob/repo"), area.join("to-bob")).unwrap();
        std::os::unix::fs::symlink("/tmp", area.join("to-tmp")).unwrap();
        std::os::unix::fs::symlink(area.join("repo"), area.join("to-repo")).unwrap();

        assert_eq!(
            resolve_working_dir(&area, "repo").unwrap(),
            area.join("repo")
        );
        let abs = area.join("repo/sub");
        assert_eq!(
            resolve_working_dir(&area, abs.to_str().unwrap()).unwrap(),
            abs
        );
        assert_eq!(
            resolve_working_dir(&area, "to-repo").unwrap(),
            area.join("repo")
        );
        for bad in [
            "",
            "missing",
            "file.txt",
            "to-bob",
            "to-tmp",
            "..",
            "repo/../..",
            ".",
            "/etc",
            "a\0b",
        ] {
            assert!(resolve_working_dir(&area, bad).is_err(), "{bad:?}");
        }
        let bob = root.join("bob/repo");
        assert!(resolve_working_dir(&area, bob.to_str().unwrap()).is_err());
    }
}
