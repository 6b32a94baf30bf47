//! The nodes of a cluster: `GET /admin/nodes` (admin keys only) and the
//! cluster part of `/health`.

use crate::identity::Who;
use actix_web::{web, HttpRequest, HttpResponse};

use super::envelope::{self, Envelope};
use crate::error::{ApiError, Problem};
use crate::state::AppState;

use crate::api::views::nodes::{nodes, NodeData};

/// The server instances sharing this database: where they are reached,
/// whether they are alive or draining, and how many sessions each runs.
#[utoipa::path(
    get,
    path = "/api/v1/admin/nodes",
    tag = "admin",
    responses(
        (status = 200, description = "The nodes", body = Envelope<Vec<NodeData>>),
        (status = 403, description = "Not the owner", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list_nodes(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Who,
) -> Result<HttpResponse, ApiError> {
    caller.require_owner()?;
    Ok(envelope::ok(&req, nodes(&state).await?))
}
