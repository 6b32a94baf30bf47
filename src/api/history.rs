//! A session's history, oldest first.

use crate::api::requester::Who;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::Value;

use utoipa::ToSchema;

use super::envelope::{self, PageQuery};
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use claude_code_api_core::db::models::message::Message;
use claude_code_api_core::domain::money::micros_to_usd;

/// One message of a session's conversation.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntry {
    id: String,
    /// `user` or `assistant`.
    role: String,
    content: String,
    /// The tools the turn used, each `{name, input}`.
    #[schema(value_type = Vec<Object>)]
    tools_used: Value,
    /// USD, for display; `cost_micros` is exact.
    cost: f64,
    cost_micros: i64,
    duration_ms: i64,
    /// The model's token counts, as the CLI reported them.
    #[schema(value_type = Option<Object>)]
    usage: Option<Value>,
    is_error: bool,
    /// The answer was cut short by an interrupt; `content` is what came before.
    interrupted: bool,
    created_at: String,
}

impl From<Message> for HistoryEntry {
    fn from(m: Message) -> Self {
        HistoryEntry {
            tools_used: serde_json::from_str(&m.tools_used)
                .unwrap_or_else(|_| Value::Array(vec![])),
            usage: m
                .usage
                .as_deref()
                .and_then(|u| serde_json::from_str(u).ok()),
            cost: micros_to_usd(m.cost_micros),
            id: m.id,
            role: m.role,
            content: m.content,
            cost_micros: m.cost_micros,
            duration_ms: m.duration_ms,
            is_error: m.is_error,
            interrupted: m.interrupted,
            created_at: claude_code_api_core::domain::timestamp(&m.created_at),
        }
    }
}

/// A page of history, with the members clients of the original read.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryPage {
    data: Vec<HistoryEntry>,
    meta: envelope::Meta,
    pagination: envelope::Pagination,
    /// The session's name, as chat answers give it.
    session_id: String,
    /// Messages in this page.
    count: usize,
}

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
