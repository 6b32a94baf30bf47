//! Forks: a new session whose conversation is another's up to one of its
//! turns, and whose workspace is that session's workspace as it was at the
//! end of that turn (its snapshot, see `snapshots`). The original is left
//! as it is. Also which session a session was forked from, and its forks.
//!
//! The conversation is copied as the CLI's `--fork-session` copies it: the
//! mirrored transcript up to the turn's last entry, under a new
//! conversation id. The server does it itself so that the fork's whole
//! conversation is in the database under its own id: any node can rebuild
//! its transcript file and take it up with `--resume`.

use serde_json::Value;

use super::sessions::{load, validate_name, Seed};
use super::{Requester, Services};
use crate::cli::protocol::MirrorEntry;
use crate::db::models::session::Session;
use crate::db::models::session_fork::{self, SessionFork};
use crate::db::models::turn_snapshot::{self, state, TurnSnapshot};
use crate::domain::session::SessionSpec;
use crate::error::ServiceError;
use crate::snapshots::{self, Manifest, SessionStore};

/// What a fork is asked to be.
pub struct ForkRequest {
    pub new_name: String,
    /// Default: the latest completed turn.
    pub at_turn: Option<i64>,
}

/// Forks the caller's session `name` at a turn into a new session, which
/// keeps the original's spec and budget and counts against the tenant's
/// session cap. Audited.
pub async fn fork(
    services: &Services,
    who: &Requester,
    name: &str,
    request: ForkRequest,
) -> Result<(Session, SessionFork), ServiceError> {
    let ForkRequest { new_name, at_turn } = request;
    validate_name(&new_name)?;
    let parent = load(services, who, name).await?;
    let at = turn_in_range(&parent, at_turn)?;
    let (tenant, parent_id) = (who.tenant().clone(), parent.id.clone());
    let (turn, binding) = crate::db::run(&services.pool, move |c| {
        Ok((
            turn_snapshot::find(c, &parent_id, at)?,
            crate::db::models::session_repo::find(c, &tenant, &parent_id)?,
        ))
    })
    .await?;
    let turn = usable(services, name, at, turn)?;
    let entry = turn.entry_uuid.clone().ok_or_else(|| {
        ServiceError::Conflict(format!(
            "turn {at} of session {name:?} left no conversation entry to fork at"
        ))
    })?;
    let (parent_id, cli_id) = (parent.id.clone(), turn.cli_session_id.clone());
    let lines = crate::db::run(&services.pool, move |c| {
        crate::db::models::transcript::lines_through(c, &parent_id, &cli_id, &entry)
    })
    .await?
    .ok_or_else(|| {
        ServiceError::Conflict(format!(
            "the conversation of turn {at} of session {name:?} is not stored yet; try again"
        ))
    })?;
    let store = SessionStore::new(&snapshots::store_root(&services.workspace_root), &parent.id);
    let manifest = crate::blocking::run(move || store.manifest(at).map(|m| (store, m)))
        .await
        .map_err(ServiceError::internal)?
        .map_err(ServiceError::internal)?;
    let (store, Some(manifest)) = manifest else {
        return Err(expired(services, name, at));
    };

    let spec: SessionSpec = serde_json::from_str(&parent.spec).map_err(ServiceError::internal)?;
    if let Some(servers) = &spec.mcp_servers {
        super::mcp_servers::check(services, who.tenant(), servers).await?;
    }
    let owner = services
        .sandbox
        .owner(who.tenant().as_str())
        .await
        .map_err(|e| ServiceError::internal(format!("no agent user for the tenant: {e}")))?;
    let cli_session_id = uuid::Uuid::new_v4().to_string();
    let workspace =
        crate::workspace::session_dir(&services.workspace_root, who.tenant().as_str(), &new_name);
    let entries = fork_entries(
        &lines,
        &cli_session_id,
        &parent.workspace,
        &workspace.to_string_lossy(),
    );
    let link = SessionFork {
        session_id: String::new(),
        tenant_id: who.tenant().0.clone(),
        parent_session_id: parent.id.clone(),
        parent_name: parent.name.clone(),
        at_turn: at,
        created_at: crate::db::now(),
    };
    let stored_link = link.clone();
    let conversation = cli_session_id.clone();
    let seed = Seed {
        fill: Box::new(move |dir| fill_workspace(&store, &manifest, dir, owner)),
        cli_session_id,
        with_row: Box::new(move |c, row| {
            let pairs = entries.iter().map(|e| (e.key.as_str(), e.line.as_str()));
            crate::db::models::transcript::append(c, &row.id, &conversation, pairs)?;
            session_fork::insert(
                c,
                &SessionFork {
                    session_id: row.id.clone(),
                    ..stored_link
                },
            )
        }),
    };
    // A private session's fork is private too (to the one who forks it).
    let new = super::sessions::NewSession {
        name: new_name,
        spec,
        budget_micros: parent.budget_micros,
        repo: None,
        private: parent.private_to.is_some(),
    };
    let row = super::sessions::insert(services, who, new, Some(seed)).await?;
    // A repository session's fork works on a branch of its own.
    if let Some(binding) = &binding {
        if let Err(e) = super::git::bind_fork(services, binding, &row).await {
            if let Err(cleanup) = super::sessions::delete(services, who, &row.name).await {
                tracing::warn!(session = %row.name, error = %cleanup, "cannot remove a half-made fork");
            }
            return Err(e);
        }
    }
    let target = format!("{} (from {} at turn {at})", row.name, parent.name);
    super::audit::record(services, who, "session.fork", &target).await;
    crate::metrics::session_forked();
    super::ownership::warm(services, &row).await;
    let link = SessionFork {
        session_id: row.id.clone(),
        ..link
    };
    Ok((row, link))
}

/// `at_turn`, or the latest completed turn, within the parent's turns.
fn turn_in_range(parent: &Session, at_turn: Option<i64>) -> Result<i64, ServiceError> {
    let turns = parent.turns;
    if turns == 0 {
        return Err(ServiceError::Validation(format!(
            "session {:?} has no completed turn to fork at yet",
            parent.name
        )));
    }
    let at = at_turn.unwrap_or(turns);
    if !(1..=turns).contains(&at) {
        return Err(ServiceError::Validation(format!(
            "at_turn must be from 1 to {turns} (the completed turns of session {:?}); got {at}",
            parent.name
        )));
    }
    Ok(at)
}

/// The turn's row when its workspace snapshot is there to fork from; why
/// not (a 409) otherwise.
fn usable(
    services: &Services,
    name: &str,
    at: i64,
    turn: Option<TurnSnapshot>,
) -> Result<TurnSnapshot, ServiceError> {
    let Some(turn) = turn else {
        return Err(ServiceError::Conflict(format!(
            "turn {at} of session {name:?} has no workspace snapshot (it ended without an answer, or before forks existed)"
        )));
    };
    match turn.snapshot.as_str() {
        state::STORED => Ok(turn),
        state::EXPIRED => Err(expired(services, name, at)),
        _ => Err(ServiceError::Conflict(format!(
            "turn {at} of session {name:?} has no workspace snapshot: {}",
            turn.reason.as_deref().unwrap_or("it was not taken")
        ))),
    }
}

fn expired(services: &Services, name: &str, at: i64) -> ServiceError {
    ServiceError::Conflict(format!(
        "the workspace snapshot of turn {at} of session {name:?} is no longer kept: only the last {} turns are (SNAPSHOT_KEEP_TURNS)",
        services.settings.files.snapshots.keep_turns
    ))
}

/// The parent's transcript `lines` as the fork's own: each entry moved to
/// the conversation `cli_session_id`, and its working folder to the fork's,
/// as `--fork-session` does. Lines that are not JSON objects are left out.
fn fork_entries(
    lines: &[String],
    cli_session_id: &str,
    parent_workspace: &str,
    workspace: &str,
) -> Vec<MirrorEntry> {
    lines
        .iter()
        .filter_map(|line| {
            let mut entry: Value = serde_json::from_str(line).ok()?;
            let fields = entry.as_object_mut()?;
            if fields.contains_key("sessionId") {
                fields.insert("sessionId".into(), cli_session_id.into());
            }
            if fields.get("cwd").and_then(Value::as_str) == Some(parent_workspace) {
                fields.insert("cwd".into(), workspace.into());
            }
            Some(MirrorEntry::of(&entry))
        })
        .collect()
}

/// Makes the fork's new workspace `dir` the snapshot's files, given to the
/// agent user. Blocking.
fn fill_workspace(
    store: &SessionStore,
    manifest: &Manifest,
    dir: &std::path::Path,
    owner: crate::sandbox::Owner,
) -> std::io::Result<()> {
    let tree = crate::sandbox::Tree::open(dir)?;
    snapshots::restore(store, manifest, &tree, owner)?;
    if let Some(owner) = owner {
        tree.give_to(owner)?;
    }
    Ok(())
}

/// A page of the forks of the caller's session `name`, oldest first, each
/// with its link, and their total.
pub async fn children(
    services: &Services,
    who: &Requester,
    name: &str,
    offset: i64,
    limit: i64,
) -> Result<(Vec<(Session, SessionFork)>, i64), ServiceError> {
    let parent = load(services, who, name).await?;
    let (tenant, sight) = (who.tenant().clone(), who.sight());
    Ok(crate::db::run(&services.pool, move |c| {
        session_fork::children(c, &tenant, &sight, &parent.id, offset, limit)
    })
    .await?)
}

/// Where the caller's session `id` was forked from, if it is a fork.
pub async fn origin(
    services: &Services,
    who: &Requester,
    id: String,
) -> Result<Option<SessionFork>, ServiceError> {
    let tenant = who.tenant().clone();
    Ok(crate::db::read(&services.pool, move |c| {
        session_fork::of_session(c, &tenant, &id)
    })
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forked_entries_move_to_the_new_conversation_and_folder() {
        let lines = vec![
            r#"{"type":"user","uuid":"u1","sessionId":"old","cwd":"/ws/a/orig","message":{"content":"hi"}}"#.to_owned(),
            r#"{"type":"queue-operation","sessionId":"old"}"#.to_owned(),
            "not json".to_owned(),
        ];
        let entries = fork_entries(&lines, "new", "/ws/a/orig", "/ws/a/fork");
        assert_eq!(entries.len(), 2);
        let first: Value = serde_json::from_str(&entries[0].line).unwrap();
        assert_eq!(first["sessionId"], "new");
        assert_eq!(first["cwd"], "/ws/a/fork");
        assert_eq!(entries[0].key, "u1");
        assert!(entries[1].line.contains(r#""sessionId":"new""#));
        assert_ne!(entries[1].key, "u1");
    }
}
