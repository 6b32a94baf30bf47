//! Recording what callers do, and reading it back (`GET /audit`).

use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};

use super::envelope::{self, PageQuery, Paged};
use super::middleware::RequestId;
use super::AppState;
use crate::db::models::audit::{self, AuditEntry};
use crate::error::{ApiError, Problem};
use crate::security::auth::Caller;

/// How much of a prompt the audit log keeps, in characters.
pub const PROMPT_CHARS: usize = 500;

/// Appends an audit entry for an action (off the request's path; a failure
/// is logged). Its content is a one-line description, role `system`.
pub fn record(state: &AppState, req: &HttpRequest, caller: &Caller, action: &str, target: &str) {
    write(state, req, caller, action, target, None);
}

/// Appends the audit entry of a chat or job: role `user` and its prompt,
/// cut at `PROMPT_CHARS` characters.
pub fn record_prompt(
    state: &AppState,
    req: &HttpRequest,
    caller: &Caller,
    action: &str,
    target: &str,
    prompt: &str,
) {
    write(state, req, caller, action, target, Some(prompt));
}

fn write(
    state: &AppState,
    req: &HttpRequest,
    caller: &Caller,
    action: &str,
    target: &str,
    prompt: Option<&str>,
) {
    let (role, content) = match prompt {
        Some(prompt) => ("user", prompt.chars().take(PROMPT_CHARS).collect()),
        None => ("system", describe(action, target)),
    };
    let entry = AuditEntry {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: caller.tenant.0.clone(),
        key_id: caller.key_id.clone(),
        key_label: caller.key_label.clone(),
        action: action.to_owned(),
        target: target.to_owned(),
        client_addr: crate::security::client::client_ip(req, &state.settings.trusted_proxies)
            .map(|ip| ip.to_string()),
        request_id: req
            .extensions()
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default(),
        created_at: crate::db::now(),
        session_name: session_of(action, target),
        role: role.to_owned(),
        content,
    };
    let pool = state.pool.clone();
    actix_web::rt::spawn(async move {
        if let Err(e) = crate::db::run(&pool, move |c| audit::insert(c, &entry)).await {
            tracing::error!(error = %e, "cannot write an audit entry");
        }
    });
}

/// The session an action touched: session-scoped targets are `name` or
/// `name/…` (names never hold a `/`).
fn session_of(action: &str, target: &str) -> Option<String> {
    let scoped = action == "chat"
        || ["session.", "job.", "file."]
            .iter()
            .any(|p| action.starts_with(p));
    scoped.then(|| target.split('/').next().unwrap_or(target).to_owned())
}

/// One line saying what an action did, for the entry's `content`.
fn describe(action: &str, target: &str) -> String {
    let rest = || target.split_once('/').map_or("", |(_, r)| r);
    match action {
        "session.create" => format!("created session {target}"),
        "session.delete" => format!("deleted session {target}"),
        "job.cancel" => format!("cancelled job {}", rest()),
        "file.upload" => format!("uploaded {}", rest()),
        "file.download" => format!("downloaded {}", rest()),
        "file.delete" => format!("deleted {}", rest()),
        "tenant.create" => format!("created tenant {target}"),
        "tenant.update" => format!("updated tenant {target}"),
        "key.create" => format!("created key {target}"),
        "key.revoke" => format!("revoked key {target}"),
        "webhook.secret.rotate" => format!("rotated the webhook secret of {target}"),
        other => format!("{other} {target}"),
    }
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
            session_name: e.session_name,
            role: e.role,
            content: e.content,
        })
        .collect();
    Ok(envelope::page(&req, items, &page, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_scoped_actions_name_their_session() {
        assert_eq!(
            session_of("file.upload", "demo/a/b.txt").as_deref(),
            Some("demo")
        );
        assert_eq!(session_of("chat", "demo").as_deref(), Some("demo"));
        assert_eq!(session_of("key.create", "key_1"), None);
        assert_eq!(describe("file.delete", "demo/a/b.txt"), "deleted a/b.txt");
        assert_eq!(describe("session.create", "demo"), "created session demo");
    }
}
