//! How a session's events go out as server-sent events: the event's name
//! on the `event:` line, its data as JSON on `data:`, its number on `id:`.
//! Shared by `chat/stream` and `/events`.

use std::time::Duration;

use actix_web_lab::sse;
use claude_code_api_core::domain::event::NumberedEvent;

/// Comment pings keep proxies from closing a quiet stream and find dead clients.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn to_sse(numbered: NumberedEvent) -> sse::Event {
    sse::Event::Data(
        sse::Data::new_json(numbered.event.data())
            .unwrap_or_else(|_| sse::Data::new("{}"))
            .event(numbered.event.name())
            .id(numbered.seq.to_string()),
    )
}
