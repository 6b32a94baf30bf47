//! `POST /sessions/{name}/repo`: point a session at another existing folder
//! of the tenant's own area. The CLI restarts there on the same conversation.

use crate::identity::Who;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use utoipa::ToSchema;

use super::envelope::{self, Envelope};
use super::views::sessions::SessionData;
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use claude_code_api_core::services::sessions;

/// Where the session's CLI should work from now on.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetWorkingDir {
    /// An existing folder inside the tenant's area: absolute, or relative to
    /// it, with no link on the way and no `..`. Not blank, no NUL. Missing,
    /// or a file: 404; outside the area or through a link, or another
    /// session's workspace (or a folder in or above one): 422.
    #[schema(pattern = "^[^\\x00]*[^\\s\\x00][^\\x00]*$")]
    working_dir: String,
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
        (status = 404, description = "No session of that name in this tenant, or no folder at `working_dir` (missing, or a file)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A turn is running (try again when it ends)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`working_dir` is blank, has a NUL byte, lies outside the tenant's area, has a link or `..` on the way, or is, holds or lies in another session's workspace", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn set_working_dir(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    name: web::Path<String>,
    body: super::envelope::JsonObject<SetWorkingDir>,
) -> Result<HttpResponse, ApiError> {
    let raw = body.into_inner().working_dir;
    let updated = sessions::change_folder(&state.services, &who, &name, raw).await?;
    Ok(envelope::ok(
        &req,
        super::views::sessions::session_view(&state.services, &who, updated).await?,
    ))
}
