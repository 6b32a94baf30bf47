//! Reading the audit log back (`GET /audit`); `services::audit` writes it.

use crate::identity::Who;
use actix_web::{web, HttpRequest, HttpResponse};

use super::envelope::{self, PageQuery, Paged};
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use claude_code_api_core::services::audit;

/// One recorded action. Never holds a key.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AuditData {
    id: String,
    tenant: String,
    /// The key's id and label, never the key.
    key_id: String,
    key_label: String,
    /// `session.create`, `chat`, `job.create`, `file.upload`, `key.revoke`, …
    action: String,
    /// What it was done to (`session`, `session/path`, an id).
    target: String,
    client_addr: Option<String>,
    request_id: String,
    created_at: String,
    /// The session it touched, if any.
    session_name: Option<String>,
    /// `user` for a chat or job (`content` is its prompt), else `system`.
    role: String,
    /// The prompt, cut at 500 characters, or a one-line description.
    content: String,
}

/// Own tenant's entries; an admin sees every tenant's.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "usage",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of entries, newest first", body = Paged<AuditData>),
        (status = 422, description = "Bad `page` or `limit`", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list_audit(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.validate()?;
    let (rows, total) = audit::list(&state.services, &who, page.offset(), page.limit).await?;
    let items: Vec<AuditData> = rows
        .into_iter()
        .map(|e| AuditData {
            created_at: claude_code_api_core::domain::timestamp(&e.created_at),
            id: e.id,
            tenant: e.tenant_id,
            key_id: e.key_id,
            key_label: e.key_label,
            action: e.action,
            target: e.target,
            client_addr: e.client_addr,
            request_id: e.request_id,
            session_name: e.session_name,
            role: e.role,
            content: e.content,
        })
        .collect();
    Ok(envelope::page(&req, items, &page, total))
}
