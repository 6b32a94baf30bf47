//! The answer to a turn, as `/chat` returns it and the `done` event carries it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A tool call the agent made during a turn.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ToolUse {
    pub name: String,
    #[schema(value_type = Object)]
    pub input: Value,
}

/// The answer to a chat turn (also the payload of the `done` event).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ChatResponse {
    /// The session's name, as clients address it.
    pub session_id: String,
    /// The CLI's own conversation id.
    pub cli_session_id: Option<String>,
    /// The answer's text; with `output_format`, the structured result as JSON text.
    pub content: String,
    /// With `output_format`: the object the answer returned, following its schema.
    #[schema(value_type = Option<Object>)]
    pub structured_output: Option<Value>,
    /// USD, for display; `cost_micros` is exact.
    pub cost: f64,
    pub cost_micros: i64,
    pub duration_ms: i64,
    pub num_turns: i64,
    pub tools_used: Vec<ToolUse>,
    pub is_error: bool,
    pub stop_reason: Option<String>,
    /// The model's token counts, as the CLI reported them.
    #[schema(value_type = Object)]
    pub usage: Value,
    /// Cut short by `POST /sessions/{name}/interrupt`: `content` is the
    /// partial answer, kept in history marked interrupted.
    pub interrupted: bool,
}
