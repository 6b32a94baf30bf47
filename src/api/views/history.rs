//! History documents: a message of a session as clients read it.

use crate::api::envelope::{self};
use claude_code_api_core::db::models::message::Message;
use claude_code_api_core::domain::money::micros_to_usd;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

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
    pub data: Vec<HistoryEntry>,
    pub meta: envelope::Meta,
    pub pagination: envelope::Pagination,
    /// The session's name, as chat answers give it.
    pub session_id: String,
    /// Messages in this page.
    pub count: usize,
}
