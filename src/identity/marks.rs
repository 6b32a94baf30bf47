//! What the middleware learns about a request before any handler runs, kept
//! in its extensions: its id, and whether another node forwarded it.

use actix_web::{HttpMessage, HttpRequest};

/// The id of the request being served (`X-Request-Id`, given or made).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Marks a request another node of the cluster forwarded here (verified).
#[derive(Debug, Clone)]
pub struct Forwarded {
    /// The client's address as the first node saw it.
    pub client_addr: Option<String>,
}

/// The id the request-context middleware gave the request ("" before it).
pub fn request_id(req: &HttpRequest) -> String {
    req.extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default()
}
