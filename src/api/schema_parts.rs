//! Pieces of the OpenAPI document that the surfaces describing themselves
//! share (the document in `openapi.rs`, the OpenAI stream, MCP's routes):
//! problem answers, plain objects, server-sent events.

use serde_json::{json, Value};

use crate::error::PROBLEM_CONTENT_TYPE;

/// A response whose body is a problem document.
pub fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    })
}

pub fn object(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "required": required, "properties": properties})
}

/// How every event stream is framed, said once in each stream's schema.
pub const SSE_FRAMING: &str =
    "Server-sent events (`text/event-stream`). This schema describes one \
    event of the stream as a client's SSE parser sees it: `event` is the `event:` line (`message` \
    when there is none), `id` the `id:` line, `data` the `data:` lines joined, which hold one JSON \
    document (see `contentSchema`). Lines starting with `:` are keep-alive comments.";

/// One named SSE event whose `data:` is a JSON document matching `data`;
/// `id`: whether the event carries the session's event number.
pub fn sse_event(name: &str, description: &str, data: Value, id: bool) -> Value {
    // The title is the component's name: a generator names the event's
    // type after it, apart from the data's type.
    let mut event = json!({
        "type": "object",
        "title": event_component(name),
        "description": description,
        "required": ["event", "data"],
        "properties": {
            "event": {"type": "string", "const": name},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": data,
            },
            "retry": {"type": "integer"},
        },
        "additionalProperties": false,
    });
    if id {
        event["required"] = json!(["event", "data", "id"]);
        event["properties"]["id"] = json!({
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "The session's event number: resume after it with `Last-Event-ID`",
        });
    }
    event
}

/// `turn_started` → `TurnStartedEvent`.
fn event_component(name: &str) -> String {
    let mut out = String::new();
    for word in name.split('_') {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out + "Event"
}
