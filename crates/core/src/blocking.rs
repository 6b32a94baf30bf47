//! The one way to run blocking work (file system, CPU-heavy parsing, a
//! database call) from async code: on tokio's blocking pool, inside the
//! caller's tracing span so its log lines keep their request id.

/// Blocking work that panicked instead of returning.
#[derive(Debug, thiserror::Error)]
#[error("blocking work did not finish: {0}")]
pub struct Panicked(String);

impl From<tokio::task::JoinError> for Panicked {
    fn from(e: tokio::task::JoinError) -> Self {
        Panicked(e.to_string())
    }
}

/// Starts `f` on the blocking pool, in the current span.
pub fn spawn<T, F>(f: F) -> tokio::task::JoinHandle<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
}

/// Runs `f` on the blocking pool, in the current span, and waits for it.
pub async fn run<T, F>(f: F) -> Result<T, Panicked>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    spawn(f).await.map_err(Panicked::from)
}
