//! A session's history, oldest first.

use crate::identity::Who;
use actix_web::{web, HttpRequest, HttpResponse};

use super::envelope::{self, PageQuery};
use crate::error::{ApiError, Problem};
use crate::state::AppState;

use crate::api::views::history::{HistoryEntry, HistoryPage};

/// A session's messages, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/sessions/{name}/history",
    tag = "sessions",
    params(("name" = String, Path, description = "The session's name"), PageQuery),
    responses(
        (status = 200, description = "A page of messages", body = HistoryPage),
        (status = 404, description = "No session of that name", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad `page` or `limit`", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_history(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    name: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.validate()?;
    let (rows, total, session) = claude_code_api_core::services::sessions::history(
        &state.services,
        &who,
        &name,
        page.offset(),
        page.limit,
    )
    .await?;
    let session_name = session.name;
    let data: Vec<HistoryEntry> = rows.into_iter().map(HistoryEntry::from).collect();
    Ok(HttpResponse::Ok().json(HistoryPage {
        count: data.len(),
        data,
        meta: envelope::meta(&req),
        pagination: envelope::pagination(&page, total),
        session_id: session_name,
    }))
}
