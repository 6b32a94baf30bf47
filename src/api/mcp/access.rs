//! The gate in front of the MCP transport: a valid API key (the REST API's
//! rules and its 401 problem) before the SDK sees the request, and an MCP
//! session usable only by the tenant that opened it. An id this tenant did
//! not open, whoever did, is a 404, as the transport answers for a session
//! it does not know.

use claude_code_api_core::error::ServiceError;
use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::SessionManager;

use super::owners::SessionOwners;
use super::problem;
use crate::error::ApiError;
use crate::identity::Who;

const SESSION_HEADER: &str = "mcp-session-id";

/// What the gate shares across workers: who opened each session, and the
/// SDK's sessions, to close the ones the bound pushes out.
pub struct Access {
    owners: SessionOwners,
    sessions: Arc<LocalSessionManager>,
}

impl Access {
    pub fn new(sessions: Arc<LocalSessionManager>) -> Access {
        Access {
            owners: SessionOwners::default(),
            sessions,
        }
    }

    /// Binds a session the SDK just opened, closing any it pushes out.
    async fn bind(&self, id: &str, tenant: &str) {
        for old in self.owners.bind(id, tenant) {
            if let Err(e) = self.sessions.close_session(&Arc::from(old)).await {
                tracing::warn!(error = %e, "cannot close an MCP session past the bound");
            }
        }
    }
}

/// Middleware on `/mcp` (needs `web::Data<Access>` in the scope).
pub async fn gate(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let who = match req.extract::<Who>().await {
        Ok(who) => who,
        Err(e) => return Ok(req.error_response(e)),
    };
    let caller = who.caller.clone();
    // What the tools act as (see `McpContext`).
    req.extensions_mut().insert(who);
    let access = req
        .app_data::<web::Data<Access>>()
        .cloned()
        .ok_or_else(|| ApiError::from(ServiceError::internal("MCP access state missing")))?;
    let tenant = caller.tenant.as_str().to_owned();
    if !matches!(*req.method(), Method::GET | Method::POST | Method::DELETE) {
        let refused = actix_web::HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, "GET, POST, DELETE"))
            .finish();
        return Ok(problem::from_sdk(req.into_response(refused)).await);
    }
    let needed: &[&str] = match *req.method() {
        Method::POST => &["application/json", "text/event-stream"],
        Method::GET => &["text/event-stream"],
        _ => &[],
    };
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    if !needed.is_empty() && accepts_all(accept, needed) {
        // The SDK wants the types spelled out; `*/*` or no `Accept` at all
        // accepts them too (RFC 9110, 12.5.1).
        let spelled = HeaderValue::from_str(&needed.join(", "))
            .map_err(|e| ApiError::from(ServiceError::internal(e.to_string())))?;
        req.headers_mut().insert(header::ACCEPT, spelled);
    }
    // A value that is not text cannot name a session: it is an unknown id.
    let session = req
        .headers()
        .get(SESSION_HEADER)
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    if let Some(id) = &session {
        if !access.owners.is_owner(id, &tenant) {
            return Ok(req.error_response(ApiError::from(ServiceError::NotFound(
                "unknown MCP session for this key: initialize a new one".into(),
            ))));
        }
    }
    let deleting = req.method() == Method::DELETE;
    let res = next.call(req).await?.map_into_boxed_body();
    match session {
        // The SDK no longer has it (closed, idle too long), or the client ended it.
        Some(id)
            if res.status() == StatusCode::NOT_FOUND || (deleting && res.status().is_success()) =>
        {
            access.owners.forget(&id);
        }
        Some(_) => {}
        // Only `initialize` opens a session; the SDK names it in this header.
        None if res.status().is_success() => {
            let opened = res
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if let Some(id) = opened {
                access.bind(&id, &tenant).await;
            }
        }
        None => {}
    }
    Ok(problem::from_sdk(res).await)
}

/// Whether `accept` (absent: anything) accepts every media type of `needed`.
fn accepts_all(accept: Option<&str>, needed: &[&str]) -> bool {
    let Some(accept) = accept else {
        return true;
    };
    let ranges: Vec<&str> = accept
        .split(',')
        .map(|r| r.split(';').next().unwrap_or_default().trim())
        .collect();
    needed.iter().all(|media| {
        let kind = media.split('/').next().unwrap_or_default();
        ranges.iter().any(|range| {
            range.eq_ignore_ascii_case(media)
                || *range == "*/*"
                || range
                    .strip_suffix("/*")
                    .is_some_and(|k| k.eq_ignore_ascii_case(kind))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::accepts_all;

    #[test]
    fn wildcards_and_no_accept_accept_the_streams() {
        let both = ["application/json", "text/event-stream"];
        assert!(accepts_all(None, &both));
        assert!(accepts_all(Some("*/*"), &both));
        assert!(accepts_all(Some("application/json, text/*;q=0.5"), &both));
        assert!(!accepts_all(Some("application/json"), &both));
        assert!(!accepts_all(Some("text/html"), &["text/event-stream"]));
        assert!(accepts_all(
            Some("text/event-stream"),
            &["text/event-stream"]
        ));
    }
}
