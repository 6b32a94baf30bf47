//! Tool approvals: the pending ones of a session, and answering one.

use super::{Requester, Services};
use crate::actors::session::approvals::{Decision, ResolveError};
use crate::actors::session::messages::ResolveApproval;
use crate::db::models::approval::{self, Approval};
use crate::db::models::session::Session;
use crate::domain::approval::Resolved;
use crate::error::ServiceError;

/// The session's pending approvals, oldest first, with the session.
pub async fn pending(
    services: &Services,
    who: &Requester,
    name: &str,
) -> Result<(Vec<Approval>, Session), ServiceError> {
    let session = super::sessions::load(services, who, name).await?;
    let (tenant, session_id) = (who.tenant().clone(), session.id.clone());
    let rows = crate::db::run(&services.pool, move |c| {
        approval::list_pending(c, &tenant, &session_id)
    })
    .await?;
    Ok((rows, session))
}

/// Answers a pending approval; the reply comes once the decision is stored
/// and on its way to the CLI. One no longer pending is a 409; an edited
/// input naming a path outside the workspace is a 422.
pub async fn decide(
    services: &Services,
    who: &Requester,
    name: &str,
    id: &str,
    decision: Decision,
) -> Result<Resolved, ServiceError> {
    let session = super::sessions::load(services, who, name).await?;
    let (session_id, approval_id, tenant) =
        (session.id.clone(), id.to_owned(), who.tenant().clone());
    let row = crate::db::run(&services.pool, move |c| {
        approval::find(c, &tenant, &session_id, &approval_id)
    })
    .await?
    .ok_or_else(|| ServiceError::NotFound(format!("no approval {id:?} in this session")))?;
    if row.status != approval::PENDING {
        return Err(ServiceError::Conflict(format!(
            "the approval is no longer pending: {}",
            row.status
        )));
    }
    let actor = super::ownership::actor(services, &session).await?;
    let resolved = actor
        .send(ResolveApproval {
            id: id.to_owned(),
            decision,
        })
        .await?;
    resolved.map_err(|e| match e {
        ResolveError::NotPending => ServiceError::Conflict(
            "the approval is no longer pending (answered, expired, or its turn ended)".into(),
        ),
        ResolveError::OutsideWorkspace(path) => ServiceError::Validation(format!(
            "updated_input names {path}, which is outside the session's workspace"
        )),
    })
}
