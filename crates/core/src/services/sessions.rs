//! Sessions: create one (its workspace, then its row within the tenant's
//! cap), delete one, point it at another folder, and say where each stands
//! (a session named by a client is found in `named_session`).

use std::path::{Path, PathBuf};

use serde::Serialize;
use utoipa::ToSchema;

use super::{Requester, Services};
use crate::actors::session::messages::{Subscribe, Subscription};
use crate::actors::session::relocation::{ChangeWorkspace, ChangeWorkspaceError};
use crate::actors::supervisor::messages::CloseSession;
use crate::db::models::session::{self, Session};
use crate::db::models::session_page::{self, Listed};
use crate::domain::session::SessionSpec;
use crate::error::ServiceError;

pub use super::named_session::{load, load_listed, validate_name};

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// No turn has reached the CLI yet.
    Pending,
    /// Has a conversation; no turn runs now.
    Active,
    /// A turn runs now.
    Running,
    /// A running turn waits on a tool approval.
    WaitingForApproval,
}

/// A page of the caller's sessions, oldest first, each with its fork link,
/// and their total.
pub async fn list(
    services: &Services,
    who: &Requester,
    offset: i64,
    limit: i64,
) -> Result<(Vec<Listed>, i64), ServiceError> {
    let (tenant, sight) = (who.tenant().clone(), who.sight());
    Ok(crate::db::read(&services.pool, move |c| {
        session_page::list(c, &tenant, &sight, offset, limit)
    })
    .await?)
}

/// A page of the session's history (its messages, oldest first), the
/// total, and the session.
pub async fn history(
    services: &Services,
    who: &Requester,
    name: &str,
    offset: i64,
    limit: i64,
) -> Result<(Vec<crate::db::models::message::Message>, i64, Session), ServiceError> {
    let session = load(services, who, name).await?;
    let (tenant, session_id) = (who.tenant().clone(), session.id.clone());
    let (rows, total) = crate::db::run(&services.pool, move |c| {
        crate::db::models::message::list(c, &tenant, &session_id, offset, limit)
    })
    .await?;
    Ok((rows, total, session))
}

/// Where each of the caller's `rows` stands now.
pub async fn statuses(
    services: &Services,
    who: &Requester,
    rows: &[Session],
) -> Result<Vec<SessionStatus>, ServiceError> {
    let mut running = services.running_turns.of(who.tenant().as_str());
    // Alone, what runs is all in memory: the database is asked only about
    // a listed session that runs (does it wait on an approval?). In a
    // cluster, turns running on the other nodes are asked too, unless every
    // row is a session this node holds (its turns run here or nowhere).
    let tenant_id = who.tenant().as_str();
    let ask_elsewhere = services.node.is_clustered()
        && !rows
            .iter()
            .all(|r| services.held_leases.holds(tenant_id, &r.name));
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let waiting = if ask_elsewhere || ids.iter().any(|id| running.contains(id)) {
        let tenant = who.tenant().clone();
        let me = services.node.instance_id().to_owned();
        let here = running.clone();
        let (waiting, elsewhere) = crate::db::run(&services.pool, move |c| {
            let elsewhere = if ask_elsewhere {
                crate::db::models::lease::running_elsewhere(c, tenant.as_str(), &me)?
            } else {
                Vec::new()
            };
            let any_running = ids
                .iter()
                .any(|id| here.contains(id) || elsewhere.contains(id));
            let waiting = if any_running {
                crate::db::models::approval::sessions_waiting(c, &tenant)?
            } else {
                Default::default()
            };
            Ok((waiting, elsewhere))
        })
        .await?;
        running.extend(elsewhere);
        waiting
    } else {
        Default::default()
    };
    Ok(rows
        .iter()
        .map(|row| {
            // A pending row counts only while its turn runs: one left by a
            // process that is gone can no longer be answered.
            if running.contains(&row.id) && waiting.contains(&row.id) {
                SessionStatus::WaitingForApproval
            } else if running.contains(&row.id) {
                SessionStatus::Running
            } else if row.turns > 0 || row.cli_session_id.is_some() {
                SessionStatus::Active
            } else {
                SessionStatus::Pending
            }
        })
        .collect())
}

/// What a new session is made of (the name already validated).
pub struct NewSession {
    pub name: String,
    pub spec: SessionSpec,
    pub budget_micros: Option<i64>,
    /// A repository to start from: the workspace is its worktree.
    pub repo: Option<super::git::RepoChoice>,
    /// Seen only by its maker (and the tenant's admins), not by the tenant.
    pub private: bool,
}

/// A spend limit in USD as micro-USD; one that rounds to nothing, or is not
/// an amount, is refused.
pub fn budget_micros(usd: Option<f64>) -> Result<Option<i64>, ServiceError> {
    match usd {
        Some(usd) if !(usd.is_finite() && (0.000_001..1e9).contains(&usd)) => {
            Err(ServiceError::Validation(
                "budget_usd must be an amount from 0.000001 to 1e9 USD".into(),
            ))
        }
        Some(usd) => Ok(Some(crate::domain::money::usd_to_micros(usd))),
        None => Ok(None),
    }
}

/// Creates a session: its template applied (request fields > template >
/// server defaults), the permission ceiling checked, its workspace made,
/// then its row inserted within the tenant's cap. Audited.
pub async fn create(
    services: &Services,
    who: &Requester,
    new: NewSession,
) -> Result<Session, ServiceError> {
    let NewSession { name, spec, .. } = &new;
    tracing::Span::current().record("session", name.as_str());
    if let Some(agents) = &spec.agents {
        crate::domain::agent::validate("agents", agents).map_err(ServiceError::Validation)?;
    }
    if let Some(servers) = &spec.mcp_servers {
        super::mcp_servers::check(services, who.tenant(), servers).await?;
    }
    let spec = match spec.template.clone() {
        Some(template) if !crate::templates::valid_name(&template) => {
            return Err(ServiceError::Validation(format!(
                "invalid template name {template:?}: template names follow session names"
            )))
        }
        Some(template) => {
            let found = services.templates.get(&template).ok_or_else(|| {
                ServiceError::NotFound(format!(
                    "unknown template {template:?}; GET /api/v1/templates lists them"
                ))
            })?;
            spec.clone().with_template(&found)
        }
        None => spec.clone(),
    };
    let row = insert(services, who, NewSession { spec, ..new }, None).await?;
    super::audit::record(services, who, "session.create", &row.name).await;
    // Its CLI starts now if a slot is free, so the first chat pays no spawn.
    super::ownership::warm(services, &row).await;
    Ok(row)
}

/// The caller's session `name`, created with the server defaults when
/// missing (the OpenAI surface names sessions on first use).
pub async fn open_or_create(
    services: &Services,
    who: &Requester,
    name: &str,
) -> Result<Session, ServiceError> {
    match load(services, who, name).await {
        Err(ServiceError::NotFound(_)) => {
            let new = NewSession {
                name: name.to_owned(),
                spec: SessionSpec::default(),
                budget_micros: None,
                repo: None,
                private: false,
            };
            match insert(services, who, new, None).await {
                // A concurrent first use created it: use that one.
                Err(ServiceError::Conflict(_)) => load(services, who, name).await,
                other => other,
            }
        }
        other => other,
    }
}

/// Fills a new, empty workspace (blocking).
pub(super) type FillWorkspace = Box<dyn FnOnce(&Path) -> std::io::Result<()> + Send>;

/// Stores what goes with a new session's row, in the row's transaction.
pub(super) type WithRow =
    Box<dyn FnOnce(&mut crate::db::DbConnection, &Session) -> crate::db::DbResult<()> + Send>;

/// What a session made from another one (a fork) starts with, beyond a
/// new session's.
pub(super) struct Seed {
    /// Fills the new workspace before the row exists.
    pub fill: FillWorkspace,
    /// The conversation it takes up (`--resume`).
    pub cli_session_id: String,
    /// Stores what goes with the row, in the row's own transaction.
    pub with_row: WithRow,
}

/// Its workspace, then its row. A name taken already, or a tenant at its
/// session cap, is a 409.
pub(super) async fn insert(
    services: &Services,
    who: &Requester,
    new: NewSession,
    seed: Option<Seed>,
) -> Result<Session, ServiceError> {
    let NewSession {
        name,
        spec,
        budget_micros,
        repo,
        private,
    } = new;
    validate_name(&name)?;
    let spec = match super::tenant_defaults::of(services, who.tenant()).await? {
        Some(defaults) => spec.with_defaults(&defaults),
        None => spec,
    };
    let repo = match &repo {
        Some(choice) => Some(super::git::check_choice(services, who, choice, &name).await?),
        None => None,
    };
    let tenant_row = super::policy::tenant(services, who).await?;
    super::policy::check_permission_mode(
        services,
        tenant_row.as_ref(),
        spec.permission_mode,
        None,
    )?;
    let dir = crate::workspace::session_dir(&services.workspace_root, who.tenant().as_str(), &name);
    let now = crate::db::now();
    let row = Session {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: who.tenant().0.clone(),
        name: name.clone(),
        workspace: dir.to_string_lossy().into_owned(),
        owns_workspace: false,
        spec: serde_json::to_string(&spec).map_err(ServiceError::internal)?,
        cli_session_id: seed.as_ref().map(|seed| seed.cli_session_id.clone()),
        total_cost_micros: 0,
        turns: 0,
        input_tokens: 0,
        output_tokens: 0,
        created_at: now,
        updated_at: now,
        budget_micros,
        created_by: Some(who.key_id.clone()),
        created_by_label: Some(who.key_label.clone()),
        private_to: private.then(|| who.principal()),
    };
    let cap = tenant_row
        .and_then(|t| t.max_sessions)
        .unwrap_or(services.settings.tenancy.max_sessions);
    let tenant = who.tenant().clone();
    let lookup = name.clone();
    // A first look, so a refused create makes no workspace.
    let (exists, count) = crate::db::run(&services.pool, move |c| {
        Ok((
            session::find_by_name(c, &tenant, &lookup)?.is_some(),
            session::count(c, &tenant)?,
        ))
    })
    .await?;
    if exists {
        return Err(name_taken(&name));
    }
    if count >= cap {
        return Err(at_cap(count));
    }
    let workspace = dir.clone();
    let owns_workspace = crate::blocking::run(move || crate::workspace::create(&workspace))
        .await?
        .map_err(|e| ServiceError::internal(format!("cannot create workspace {dir:?}: {e}")))?;
    // A worktree is made only in a folder the server has just created: one
    // that was there already may hold anything.
    let prepared = match &repo {
        Some(_) if !owns_workspace => {
            return Err(ServiceError::Conflict(format!(
                "a folder for session {name:?} exists already; a session from a repository needs a new one"
            )))
        }
        Some((repo, reference, branch)) => {
            match super::git::make_worktree(services, repo, reference, branch, &dir).await {
                Ok(prepared) => Some(prepared),
                Err(e) => {
                    let _ = crate::workspace::remove(&dir);
                    return Err(e);
                }
            }
        }
        None => None,
    };
    let with_row = match seed {
        Some(_) if !owns_workspace => {
            return Err(ServiceError::Conflict(format!(
                "a folder for session {name:?} exists already; a fork needs a new one"
            )))
        }
        Some(Seed { fill, with_row, .. }) => {
            let workspace = dir.clone();
            let filled = crate::blocking::run(move || fill(&workspace)).await;
            if let Err(e) = filled.map_err(ServiceError::internal).and_then(|r| {
                r.map_err(|e| ServiceError::internal(format!("cannot fill workspace {dir:?}: {e}")))
            }) {
                let _ = crate::workspace::remove(&dir);
                return Err(e);
            }
            Some(with_row)
        }
        None => None,
    };
    let row = Session {
        owns_workspace,
        ..row
    };
    let insert = row.clone();
    // The workspace it created is the only one deleting the session removes.
    let created = owns_workspace.then(|| row.workspace.clone());
    let default_cap = services.settings.tenancy.max_sessions;
    // Checked again with the insert, in one transaction: a create running in
    // parallel may have taken the name or the last place meanwhile.
    let stored = crate::db::run(&services.pool, move |c| {
        session::insert_within_cap(c, &insert, created.as_deref(), default_cap, |c| {
            with_row.map_or(Ok(()), |with_row| with_row(c, &insert))
        })
    })
    .await;
    let refusal = match stored {
        Ok(Ok(())) => None,
        Ok(Err(session::NotInserted::NameTaken)) => Some(name_taken(&name)),
        Ok(Err(session::NotInserted::AtCap { count })) => Some(at_cap(count)),
        // Lost a race with a concurrent create of the same name.
        Err(e) if e.is_unique_violation() => Some(name_taken(&name)),
        Err(e) => Some(e.into()),
    };
    if let Some(refusal) = refusal {
        if owns_workspace {
            let _ = crate::workspace::remove(&dir);
        }
        return Err(refusal);
    }
    if let Some(prepared) = prepared {
        if let Err(e) = super::git::record(services, &row, prepared).await {
            // Not half a session: without its binding it is removed again.
            let (tenant, id) = (who.tenant().clone(), row.id.clone());
            let _ = crate::db::run(&services.pool, move |c| session::delete(c, &tenant, &id)).await;
            let _ = crate::workspace::remove(&dir);
            return Err(e);
        }
    }
    Ok(row)
}

fn name_taken(name: &str) -> ServiceError {
    ServiceError::Conflict(format!("a session named {name:?} already exists"))
}

/// Never make room by deleting an old session: that is the client's call.
fn at_cap(count: i64) -> ServiceError {
    ServiceError::Conflict(format!(
        "this tenant has {count} sessions, its limit; delete one first"
    ))
}

/// Stops the session's CLI (its processes are gone before anything else
/// happens), removes the workspace it created (never a folder it was pointed
/// at) and deletes its history and jobs. The delete finishes: a folder that
/// cannot be removed now is recorded with the deletion, in one transaction,
/// for the sweeper. Audited.
pub async fn delete(services: &Services, who: &Requester, name: &str) -> Result<(), ServiceError> {
    let row = load(services, who, name).await?;
    let binding = {
        let (tenant, id) = (who.tenant().clone(), row.id.clone());
        crate::db::run(&services.pool, move |c| {
            crate::db::models::session_repo::find(c, &tenant, &id)
        })
        .await?
    };
    services
        .supervisor
        .send(CloseSession {
            session_id: row.id.clone(),
        })
        .await?;
    let (id, tenant) = (row.id.clone(), who.tenant().clone());
    let created = {
        let (id, tenant) = (id.clone(), tenant.clone());
        crate::db::run(&services.pool, move |c| {
            crate::db::models::workspace::created(c, &tenant, &id)
        })
        .await?
    };
    let left = match created {
        Some(created) => {
            let dir = PathBuf::from(&created);
            match crate::blocking::run(move || crate::workspace::remove(&dir)).await? {
                Ok(()) => None,
                Err(e) => {
                    tracing::warn!(session = %row.name, path = %created, error = %e, "the workspace cannot be removed now; the sweeper will try again");
                    Some((created, e.to_string()))
                }
            }
        }
        None => None,
    };
    let recorded = left.is_some();
    crate::db::run(&services.pool, move |c| {
        crate::db::write_transaction(c, |c| {
            session::delete_rows(c, &tenant, &id)?;
            if let Some((path, error)) = &left {
                crate::db::models::leftover::record(c, path, tenant.as_str(), error)?;
            }
            Ok(())
        })
    })
    .await?;
    if recorded {
        services.leftovers.note_recorded();
    }
    if let Some(binding) = binding {
        super::git::forget_session(services, who.tenant(), &binding).await;
    }
    crate::snapshots::forget(&services.workspace_root, &row.id, &row.name).await;
    services.disk.forget_usage(who.tenant().as_str()).await;
    super::audit::record(services, who, "session.delete", &row.name).await;
    Ok(())
}

/// Subscribes to the session's live events (see `Subscribe`), with the
/// session they belong to.
pub async fn subscribe(
    services: &Services,
    who: &Requester,
    name: &str,
) -> Result<(Session, Subscription), ServiceError> {
    let session = load(services, who, name).await?;
    // Someone watching is about to talk to it: warm it if a slot is free.
    super::ownership::warm(services, &session).await;
    let actor = super::ownership::actor(services, &session).await?;
    let subscription = actor.send(Subscribe).await?;
    Ok((session, subscription))
}

/// Why a `working_dir` cannot be used.
#[derive(Debug)]
pub enum WorkingDirError {
    /// Not a path at all (blank, a NUL byte): the request is wrong.
    Invalid(String),
    /// No folder there: missing, or a file.
    NotFound(String),
    /// The folder is, holds or lies in another session's workspace.
    Taken(String),
    /// The area itself cannot be read.
    Unavailable(String),
}

impl From<WorkingDirError> for ServiceError {
    fn from(e: WorkingDirError) -> Self {
        match e {
            WorkingDirError::Invalid(m) => ServiceError::Validation(m),
            WorkingDirError::NotFound(m) => ServiceError::NotFound(m),
            // Not a folder this session may have: the request is wrong
            // whatever runs (a 422, like a folder outside the area).
            WorkingDirError::Taken(m) => ServiceError::Validation(m),
            WorkingDirError::Unavailable(m) => ServiceError::internal(m),
        }
    }
}

/// `raw` (absolute, or relative to the tenant's area) as a folder strictly
/// inside the area, resolved without following a link: every component is
/// opened beneath the area with `O_NOFOLLOW`, so a link (planted by an
/// agent, or anyone) is refused rather than followed. A folder that is, is
/// inside, or holds one of `others` (the tenant's other sessions'
/// workspaces) is refused too: one session's agent would change another's
/// files. Blocking.
pub fn resolve_working_dir(
    area: &Path,
    raw: &str,
    others: &[(String, String)],
) -> Result<PathBuf, WorkingDirError> {
    use WorkingDirError::*;
    if raw.trim().is_empty() {
        return Err(Invalid("working_dir must not be empty".into()));
    }
    if raw.contains('\0') {
        return Err(Invalid("working_dir contains a NUL byte".into()));
    }
    let outside = || {
        Invalid(format!(
            "working_dir {raw:?} is not a folder inside your area {} (no '..', no links)",
            area.display()
        ))
    };
    let rel = crate::sandbox::tree::relative_beneath(area, Path::new(raw)).ok_or_else(outside)?;
    let tree = crate::sandbox::Tree::open(area)
        .map_err(|e| Unavailable(format!("the tenant's area is not available: {e}")))?;
    match tree.subtree(&rel, None) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(NotFound(format!("working_dir {raw:?} does not exist")))
        }
        Err(e) => {
            // Only to word the answer: was a link on the way (refused), or
            // is something else than a folder there?
            let mut prefix = area.to_path_buf();
            let linked = rel.components().any(|c| {
                prefix.push(c);
                std::fs::symlink_metadata(&prefix).is_ok_and(|m| m.file_type().is_symlink())
            });
            if linked || e.raw_os_error() != Some(libc::ENOTDIR) {
                return Err(outside());
            }
            return Err(NotFound(format!("working_dir {raw:?} is not a folder")));
        }
    }
    let dir = area.join(&rel);
    for (name, other) in others {
        let other = Path::new(other);
        if dir.starts_with(other) || other.starts_with(&dir) {
            return Err(Taken(format!(
                "working_dir {raw:?} overlaps the workspace of session {name:?}; pick a folder of its own"
            )));
        }
    }
    Ok(dir)
}

/// Points the session at another existing folder of the tenant's area; the
/// CLI restarts there on the same conversation. A running turn is a 409.
pub async fn change_folder(
    services: &Services,
    who: &Requester,
    name: &str,
    raw: String,
) -> Result<Session, ServiceError> {
    let row = load(services, who, name).await?;
    let area = services.workspace_root.join(who.tenant().as_str());
    let (tenant, id) = (who.tenant().clone(), row.id.clone());
    let others = crate::db::run(&services.pool, move |c| {
        crate::db::models::workspace::of_other_sessions(c, &tenant, &id)
    })
    .await?;
    // A folder of a session the caller cannot see is refused all the same,
    // without its name.
    let sight = who.sight();
    let others = others
        .into_iter()
        .map(
            |(name, folder, private_to)| match sight.sees_private_to(private_to.as_deref()) {
                true => (name, folder),
                false => ("another session".to_owned(), folder),
            },
        )
        .collect::<Vec<_>>();
    let dir = crate::blocking::run(move || resolve_working_dir(&area, &raw, &others)).await??;
    let addr = super::ownership::actor(services, &row).await?;
    addr.send(ChangeWorkspace { workspace: dir })
        .await?
        .map_err(|e| match e {
            ChangeWorkspaceError::Busy => ServiceError::Conflict(e.to_string()),
            ChangeWorkspaceError::Failed(cause) => ServiceError::internal(cause),
        })?;
    load(services, who, &row.name).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_dirs_stay_in_the_tenant_area() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let area = root.join("alice");
        std::fs::create_dir_all(area.join("repo/sub")).unwrap();
        std::fs::create_dir_all(area.join("other/inner")).unwrap();
        std::fs::create_dir_all(root.join("bob/repo")).unwrap();
        std::fs::write(area.join("file.txt"), "x").unwrap();
        std::os::unix::fs::symlink(root.join("bob/repo"), area.join("to-bob")).unwrap();
        std::os::unix::fs::symlink("/tmp", area.join("to-tmp")).unwrap();
        std::os::unix::fs::symlink(area.join("repo"), area.join("to-repo")).unwrap();
        std::os::unix::fs::symlink("/", area.join("repo/root")).unwrap();
        let others = vec![(
            "o".to_owned(),
            area.join("other").to_string_lossy().into_owned(),
        )];

        let ok = |raw: &str| resolve_working_dir(&area, raw, &others).unwrap();
        assert_eq!(ok("repo"), area.join("repo"));
        assert_eq!(
            ok(area.join("repo/sub").to_str().unwrap()),
            area.join("repo/sub")
        );
        let invalid = |raw: &str| {
            matches!(
                resolve_working_dir(&area, raw, &others),
                Err(WorkingDirError::Invalid(_))
            )
        };
        for bad in [
            "",
            "to-bob",
            "to-tmp",
            // A link is refused even when it points inside.
            "to-repo",
            "repo/root",
            "repo/root/etc",
            "..",
            "repo/../..",
            ".",
            "/etc",
            "a\0b",
            area.to_str().unwrap(),
            root.join("bob/repo").to_str().unwrap(),
        ] {
            assert!(invalid(bad), "{bad:?}");
        }
        for missing in ["missing", "file.txt"] {
            assert!(matches!(
                resolve_working_dir(&area, missing, &others),
                Err(WorkingDirError::NotFound(_))
            ));
        }
        // A folder holding another session's workspace is refused too.
        let holder = vec![(
            "o".to_owned(),
            area.join("repo/sub").to_string_lossy().into_owned(),
        )];
        assert!(resolve_working_dir(&area, "repo", &holder).is_err());
    }
}
