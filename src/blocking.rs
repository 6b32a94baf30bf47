//! The one way to run blocking work (file system, CPU-heavy parsing) from
//! async code: on tokio's blocking pool, inside the caller's tracing span so
//! its log lines keep their request id.

use crate::error::ApiError;

/// Runs `f` on the blocking pool; a panic in it is an internal error.
pub async fn run<T, F>(f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .map_err(ApiError::internal)
}
