//! How a session's events go out as server-sent events: the event's name
//! on the `event:` line, its data as JSON on `data:`, its number on `id:`.
//! Shared by `chat/stream` and `/events`; and how the document describes
//! those streams, from the core's catalogue of events.

use std::time::Duration;

use actix_web_lab::sse;
use claude_code_api_core::domain::event::NumberedEvent;
use serde_json::{json, Value};

use super::schema_parts::{sse_event, SSE_FRAMING};
use claude_code_api_core::domain::event;

/// Comment pings keep proxies from closing a quiet stream and find dead clients.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn to_sse(numbered: NumberedEvent) -> sse::Event {
    sse::Event::Data(
        sse::Data::new(numbered.event.data_json())
            .event(numbered.event.name())
            .id(numbered.seq.to_string()),
    )
}

/// The schemas of the event streams, for the document.
/// The events of a session's turns (`chat/stream` leaves out the ones
/// `in_chat_stream` says it never carries), framed from the catalogue of
/// the core's `StreamEvent`: their data schemas are the derived ones.
fn turn_events(chat_stream: bool) -> Vec<Value> {
    event::EVENT_KINDS
        .iter()
        .filter(|kind| kind.in_chat_stream || !chat_stream)
        .map(|kind| {
            let data = json!({"$ref": format!("#/components/schemas/{}", kind.data_schema)});
            sse_event(kind.name, kind.description, data, true)
        })
        .collect()
}

/// Gives each event stream the schema of its events (OpenAPI 3.1 has no
/// item schema for streams: as tools read it, a stream's `schema` describes
/// one event).
pub fn document(doc: &mut Value) {
    let turn = turn_events(true);
    let session_events = {
        let mut all = turn_events(false);
        let mut reset = sse_event(
            "reset",
            "First event when the events after `Last-Event-ID` were purged, or when that id is \
             past the session's last event (then with `id`: the head, where a reconnect resumes): \
             reload the history",
            json!({
                "type": "object",
                "required": ["reason", "history_url", "last_event_id"],
                "properties": {
                    "reason": {"type": "string"},
                    "history_url": {"type": "string"},
                    "last_event_id": {"type": "integer", "minimum": 0},
                },
            }),
            true,
        );
        reset["required"] = json!(["event", "data"]);
        all.push(reset);
        all
    };
    let schemas = &mut doc["components"]["schemas"];
    // Each event is a component of its own, shared by both streams (so a
    // generator makes one type per event).
    let mut refs = |events: Vec<Value>| -> Vec<Value> {
        events
            .into_iter()
            .map(|event| {
                let name = event["title"].as_str().unwrap_or_default().to_owned();
                let reference = json!({"$ref": format!("#/components/schemas/{name}")});
                schemas[name] = event;
                reference
            })
            .collect()
    };
    let (turn, session_events) = (refs(turn), refs(session_events));
    schemas["TurnStreamEvent"] = json!({"description": SSE_FRAMING, "oneOf": turn});
    schemas["SessionStreamEvent"] = json!({"description": SSE_FRAMING, "oneOf": session_events});
    schemas["McpStreamEvent"] = json!({
        "description": format!("{SSE_FRAMING} Each `data` is a JSON-RPC 2.0 message."),
        "type": "object",
        "required": ["data"],
        "properties": {
            "event": {"type": "string", "const": "message"},
            "id": {"type": "string"},
            "data": {"type": "string"},
            "retry": {"type": "integer"},
        },
    });
    for (path, method, schema) in [
        (
            "/api/v1/sessions/{name}/chat/stream",
            "post",
            "TurnStreamEvent",
        ),
        (
            "/api/v1/sessions/{name}/events",
            "get",
            "SessionStreamEvent",
        ),
        ("/v1/chat/completions", "post", "CompletionStreamEvent"),
        ("/mcp", "post", "McpStreamEvent"),
        ("/mcp", "get", "McpStreamEvent"),
    ] {
        let pointer = format!(
            "/paths/{}/{method}/responses/200/content/text~1event-stream/schema",
            path.replace('~', "~0").replace('/', "~1")
        );
        if let Some(slot) = doc.pointer_mut(&pointer) {
            *slot = json!({"$ref": format!("#/components/schemas/{schema}")});
        }
    }
}
