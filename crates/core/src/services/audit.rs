//! The audit log: who did what, from where. Written before the action's
//! answer goes out, so `GET /audit` right after lists it; a failure to write
//! is logged and never fails the action.

use super::{Requester, Services};
use crate::db::models::audit::{self, AuditEntry};

/// How much of a prompt the audit log keeps, in characters.
pub const PROMPT_CHARS: usize = 500;

/// Appends an audit entry for an action (a failure is logged). Its content
/// is a one-line description, role `system`.
pub async fn record(services: &Services, who: &Requester, action: &str, target: &str) {
    write(services, who, action, target, None).await;
}

/// Appends the audit entry of a chat or job: role `user` and its prompt,
/// cut at `PROMPT_CHARS` characters.
pub async fn record_prompt(
    services: &Services,
    who: &Requester,
    action: &str,
    target: &str,
    prompt: &str,
) {
    write(services, who, action, target, Some(prompt)).await;
}

async fn write(
    services: &Services,
    who: &Requester,
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
        tenant_id: who.caller.tenant.0.clone(),
        key_id: who.caller.key_id.clone(),
        key_label: who.caller.key_label.clone(),
        action: action.to_owned(),
        target: target.to_owned(),
        client_addr: who.client_addr.clone(),
        request_id: who.request_id.clone(),
        created_at: crate::db::now(),
        session_name: session_of(action, target),
        role: role.to_owned(),
        content,
    };
    if let Err(e) = crate::db::run(&services.pool, move |c| audit::insert(c, &entry)).await {
        tracing::error!(error = %e, "cannot write an audit entry");
    }
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
        "member.role" => format!("changed the role of member {target}"),
        "member.remove" => format!("removed member {target}"),
        "member.sign_out" => format!("ended the console sign-ins of member {target}"),
        "member.invite" => format!("invited {target}"),
        "member.invitation.withdraw" => format!("withdrew invitation {target}"),
        "trust_rule.create" => format!("created trust rule {target}"),
        "trust_rule.delete" => format!("deleted trust rule {target}"),
        "webhook.secret.rotate" => format!("rotated the webhook secret of {target}"),
        other => format!("{other} {target}"),
    }
}

/// A page of the audit log, newest first, and the total: the owner reads
/// every tenant's entries, anyone else their own tenant's.
pub async fn list(
    services: &Services,
    who: &Requester,
    offset: i64,
    limit: i64,
) -> Result<(Vec<AuditEntry>, i64), crate::error::ServiceError> {
    let scope = (!who.is_owner()).then(|| who.tenant().clone());
    Ok(crate::db::run(&services.pool, move |c| {
        audit::list(c, scope.as_ref(), offset, limit)
    })
    .await?)
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
