//! The gate in front of the MCP transport: a valid API key (the REST API's
//! rules and its 401 problem) before the SDK sees the request, and an MCP
//! session usable only by the tenant that opened it. An id this tenant did
//! not open, whoever did, is a 404, as the transport answers for a session
//! it does not know.

use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::web;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::SessionManager;

use super::owners::SessionOwners;
use super::problem;
use crate::error::ApiError;
use crate::security::auth::Caller;

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
    let caller = match req.extract::<Caller>().await {
        Ok(caller) => caller,
        Err(e) => return Ok(req.error_response(e)),
    };
    let access = req
        .app_data::<web::Data<Access>>()
        .cloned()
        .ok_or_else(|| ApiError::internal("MCP access state missing"))?;
    let tenant = caller.tenant.as_str().to_owned();
    // A value that is not text cannot name a session: it is an unknown id.
    let session = req
        .headers()
        .get(SESSION_HEADER)
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    if let Some(id) = &session {
        if !access.owners.is_owner(id, &tenant) {
            return Ok(req.error_response(ApiError::NotFound(
                "unknown MCP session for this key: initialize a new one".into(),
            )));
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
