//! Logging: text or JSON lines on stderr, filtered by `LOG_LEVEL`. Every
//! line written while serving a request is inside its `request` span
//! (`request_id`, `session`), and every line of a turn inside its `turn` span
//! (`session`), itself inside the span of the request that queued it.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, ServerSettings};

pub fn init(settings: &ServerSettings) {
    let filter = EnvFilter::try_new(&settings.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never in a log file or pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let _ = match settings.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
