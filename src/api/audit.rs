//! Recording what callers do, and reading it back (`GET /audit`).

use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};

use super::envelope::{self, PageQuery, Paged};
use super::middleware::RequestId;
use super::AppState;
use crate::db::models::audit::{self, AuditEntry};
use crate::error::{ApiError, Problem};
use crate::security::auth::Caller;

/// Appends an audit entry (off the request's path; a failure is logged).
pub fn record(state: &AppState, req: &HttpRequest, caller: &Caller, action: &str, target: &str) {
    let entry = AuditEntry {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: caller.tenant.0.clone(),
        key_id: caller.key_id.clone(),
        key_label: caller.key_label.clone(),
        action: action.to_owned(),
        target: target.to_owned(),
        client_addr: req.connection_info().peer_addr().map(str::to_owned),
        request_id: req
            .extensions()
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default(),
        created_at: crate::db::now(),
    };
    let pool = state.pool.clone();
    actix_web::rt::spawn(async move {
        if let Err(e) = crate::db::run(&pool, move |c| audit::insert(c, &entry)).await {
            tracing::error!(error = %e, "cannot write an audit entry");
        }
    });
}

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
    caller: Caller,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.validate()?;
    let scope = (!caller.is_admin()).then(|| caller.tenant.clone());
    let (rows, total) = crate::db::run(&state.pool, move |c| {
        audit::list(c, scope.as_ref(), page.offset(), page.limit)
    })
    .await?;
    let items: Vec<AuditData> = rows
        .into_iter()
        .map(|e| AuditData {
            created_at: envelope::timestamp(&e.created_at),
            id: e.id,
            tenant: e.tenant_id,
            key_id: e.key_id,
            key_label: e.key_label,
            action: e.action,
            target: e.target,
            client_addr: e.client_addr,
            request_id: e.request_id,
        })
        .collect();
    Ok(envelope::page(&req, items, &page, total))
}
