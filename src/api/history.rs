//! A session's history, oldest first.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::Value;

use super::envelope::{self, PageQuery};
use super::sessions::load_session;
use super::AppState;
use crate::actors::session::turn::micros_to_usd;
use crate::db::models::message::{self, Message};
use crate::error::ApiError;
use crate::security::auth::Caller;

#[derive(Debug, Serialize)]
struct HistoryEntry {
    id: String,
    role: String,
    content: String,
    tools_used: Value,
    cost: f64,
    cost_micros: i64,
    duration_ms: i64,
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
            created_at: envelope::timestamp(&m.created_at),
        }
    }
}

pub async fn get_history(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.validate()?;
    let session = load_session(&state, &caller, &name).await?;
    let (rows, total) = crate::db::run(&state.pool, move |c| {
        message::list(c, &caller.tenant, &session.id, page.offset(), page.limit)
    })
    .await?;
    let items: Vec<HistoryEntry> = rows.into_iter().map(HistoryEntry::from).collect();
    Ok(envelope::page(&req, items, &page, total))
}
