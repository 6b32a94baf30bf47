//! A session's repository work: its worktree made at create, then status,
//! diff, commit, push and pull request. The worktree is the agent's: the
//! server works in it only as the agent (`git::worktree`); its credential
//! is used only against the server's mirror and the provider's API.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{repos, Requester, Services};
use crate::db::models::repo::Repo;
use crate::db::models::session::Session;
use crate::db::models::session_repo::{self, SessionRepo};
use crate::db::{self};
use crate::domain::event::{GitCommit, GitPush, PullRequestOpened, StreamEvent};
use crate::error::ServiceError;
use crate::git::diff::{self, DiffStat, FileDiff};
use crate::git::provider::{self, Provider, PullRequest};
use crate::git::worktree::{self, Worktree};
use crate::git::GitError;

mod job;
mod pull_request;
mod setup;

pub use job::{check_job_git, JobGitPhase};
pub use pull_request::{pull_request, PullRequestRequest};
pub use setup::{check_choice, forget_session, make_worktree, record, Prepared, RepoChoice};

/// The session's repository binding; a session not made from one is a 404.
async fn binding(
    services: &Services,
    who: &Requester,
    name: &str,
) -> Result<(Session, SessionRepo), ServiceError> {
    let session = crate::services::named_session::load(services, who, name).await?;
    let (tenant, id) = (who.tenant().clone(), session.id.clone());
    let binding = db::run(&services.pool, move |c| session_repo::find(c, &tenant, &id))
        .await?
        .ok_or_else(|| {
            ServiceError::NotFound(format!(
                "session {name:?} was not made from a repository (POST /sessions with \"repo\")"
            ))
        })?;
    Ok((session, binding))
}

/// The repository of a binding, still registered (a deleted one cannot be
/// pushed to).
async fn repo_of(
    services: &Services,
    who: &Requester,
    binding: &SessionRepo,
) -> Result<Repo, ServiceError> {
    let (tenant, id) = (who.tenant().clone(), binding.repo_id.clone());
    db::run(&services.pool, move |c| {
        crate::db::models::repo::find_by_id(c, &tenant, &id)
    })
    .await?
    .ok_or_else(|| {
        ServiceError::Conflict(
            "the session's repository was deleted: it cannot be pushed to".into(),
        )
    })
}

/// Runs `work` on the session's worktree, as its agent.
async fn in_worktree<T>(
    services: &Services,
    session: &Session,
    work: impl for<'w> AsyncFnOnce(&'w Worktree<'w>) -> Result<T, GitError>,
) -> Result<T, ServiceError> {
    let path = std::path::PathBuf::from(&session.workspace);
    in_folder(services, &session.tenant_id, &path, work).await
}

/// Runs `work` in `path`, a folder of the tenant's area, as its agent.
async fn in_folder<T>(
    services: &Services,
    tenant_id: &str,
    path: &std::path::Path,
    work: impl for<'w> AsyncFnOnce(&'w Worktree<'w>) -> Result<T, GitError>,
) -> Result<T, ServiceError> {
    let (tree, owner) = open_folder(services, tenant_id, path).await?;
    let worktree = worktree_of(services, tenant_id, &tree, path, owner);
    Ok(work(&worktree).await?)
}

/// `path` opened beneath the tenant's area without following links, and
/// the tenant's agent user.
async fn open_folder(
    services: &Services,
    tenant_id: &str,
    path: &std::path::Path,
) -> Result<(crate::sandbox::Tree, crate::sandbox::Owner), ServiceError> {
    let (root, tenant, open) = (
        services.workspace_root.clone(),
        tenant_id.to_owned(),
        path.to_path_buf(),
    );
    let tree = crate::blocking::run(move || crate::workspace::open_tree(&root, &tenant, &open))
        .await?
        .map_err(|e| {
            ServiceError::Conflict(format!("the session's worktree cannot be opened: {e}"))
        })?;
    let owner = services
        .sandbox
        .owner(tenant_id)
        .await
        .map_err(ServiceError::internal)?;
    Ok((tree, owner))
}

fn worktree_of<'a>(
    services: &'a Services,
    tenant_id: &str,
    tree: &'a crate::sandbox::Tree,
    path: &'a std::path::Path,
    owner: crate::sandbox::Owner,
) -> Worktree<'a> {
    let settings = &services.settings;
    Worktree {
        sandbox: &services.sandbox,
        tree,
        path,
        owner,
        mirrors: crate::git::mirror::tenant_dir(&settings.storage.data_dir, tenant_id),
        timeout: settings.git.timeout,
        max_bundle_bytes: settings.git.max_push_bytes,
    }
}

/// Resolves the remote's host again before the server reaches it (a name
/// may point elsewhere since it was registered).
async fn check_reachable(services: &Services, repo: &Repo) -> Result<(), ServiceError> {
    let settings = &services.settings.git;
    let remote = crate::git::remote::parse(&repo.url, settings).map_err(ServiceError::Conflict)?;
    crate::git::remote::check_host(&remote, settings)
        .await
        .map_err(ServiceError::Conflict)
}

/// `GET /sessions/{name}/git`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GitView {
    /// The repository's name (`null` once it was deleted).
    pub repo: Option<String>,
    /// The session's branch.
    pub branch: String,
    /// What the session started from.
    pub base: BaseView,
    /// The branch checked out now (the agent may switch; `null` when detached).
    pub checked_out: Option<String>,
    /// The commit checked out.
    pub head: Option<String>,
    /// Commits on the branch that the base does not have.
    pub ahead: u64,
    /// Commits of the base that the branch does not have.
    pub behind: u64,
    /// Files changed and not committed.
    pub dirty: Vec<crate::git::worktree::DirtyFile>,
    /// The last commit the server pushed, if any.
    pub pushed_commit: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BaseView {
    #[serde(rename = "ref")]
    pub reference: String,
    pub commit: String,
}

/// A fork of a repository session: its own branch `cca/<fork>`, started
/// (as the agent) where its restored workspace stands, and a binding to the
/// parent's repository and base, so status, diff, push and pull requests
/// work on it as on any repository session.
pub async fn bind_fork(
    services: &Services,
    parent: &SessionRepo,
    fork: &Session,
) -> Result<SessionRepo, ServiceError> {
    let branch = format!("cca/{}", fork.name);
    in_worktree(services, fork, async |w| w.start_branch(&branch).await).await?;
    let row = SessionRepo {
        session_id: fork.id.clone(),
        tenant_id: fork.tenant_id.clone(),
        repo_id: parent.repo_id.clone(),
        branch,
        base_ref: parent.base_ref.clone(),
        base_commit: parent.base_commit.clone(),
        pushed_commit: None,
        created_at: db::now(),
    };
    let insert = row.clone();
    db::run(&services.pool, move |c| session_repo::insert(c, &insert)).await?;
    Ok(row)
}

pub async fn status(
    services: &Services,
    who: &Requester,
    name: &str,
) -> Result<GitView, ServiceError> {
    let (session, binding) = binding(services, who, name).await?;
    let repo_name = repo_of(services, who, &binding).await.ok().map(|r| r.name);
    let base = binding.base_commit.clone();
    let status = in_worktree(services, &session, async |w| w.status(&base).await).await?;
    Ok(GitView {
        repo: repo_name,
        branch: binding.branch,
        base: BaseView {
            reference: binding.base_ref,
            commit: binding.base_commit,
        },
        checked_out: status.branch,
        head: status.head,
        ahead: status.ahead,
        behind: status.behind,
        dirty: status.dirty,
        pushed_commit: binding.pushed_commit,
    })
}

/// `GET /sessions/{name}/diff` as JSON.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DiffView {
    /// The commit the diff is against (where the session started).
    pub base: String,
    pub stat: DiffStat,
    pub files: Vec<FileDiff>,
}

/// The diff of the worktree against its base: the unified text, or parsed
/// (`stat`: counts only).
pub enum DiffAnswer {
    Patch(Vec<u8>),
    Files(DiffView),
}

pub async fn diff(
    services: &Services,
    who: &Requester,
    name: &str,
    stat: bool,
    patch_text: bool,
) -> Result<DiffAnswer, ServiceError> {
    let (session, binding) = binding(services, who, name).await?;
    let base = binding.base_commit.clone();
    let max = services.settings.git.max_diff_bytes;
    let numstat = stat && !patch_text;
    let out = in_worktree(services, &session, async |w| {
        w.diff(&base, numstat, max).await
    })
    .await
    .map_err(|e| match e {
        ServiceError::PayloadTooLarge(_) => ServiceError::PayloadTooLarge(format!(
            "the diff is larger than GIT_MAX_DIFF_MB ({} MiB): ask for ?stat=true",
            max / (1024 * 1024)
        )),
        other => other,
    })?;
    if patch_text {
        return Ok(DiffAnswer::Patch(out));
    }
    let text = String::from_utf8_lossy(&out);
    let files = if numstat {
        diff::parse_numstat(&text)
    } else {
        diff::parse_patch(&text)
    };
    Ok(DiffAnswer::Files(DiffView {
        base: binding.base_commit,
        stat: diff::stat_of(&files),
        files,
    }))
}

/// `POST /sessions/{name}/commit`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitRequest {
    /// Default: "Changes of session <name>".
    #[serde(default)]
    pub message: Option<String>,
    /// Default: the repository's author, else the tenant.
    #[serde(default)]
    pub author: Option<repos::Author>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CommitView {
    pub branch: String,
    pub commit: String,
}

/// Longest commit message, PR title and body accepted.
const MAX_MESSAGE: usize = 64 * 1024;

pub async fn commit(
    services: &Services,
    who: &Requester,
    name: &str,
    request: CommitRequest,
) -> Result<CommitView, ServiceError> {
    let mut events = Vec::new();
    let result = commit_step(services, who, name, request, &mut events).await;
    announce_all(services, who, name, events).await;
    result
}

/// `commit`, its event collected rather than told.
async fn commit_step(
    services: &Services,
    who: &Requester,
    name: &str,
    request: CommitRequest,
    events: &mut Vec<StreamEvent>,
) -> Result<CommitView, ServiceError> {
    let (session, binding) = binding(services, who, name).await?;
    let message = request
        .message
        .unwrap_or_else(|| format!("Changes of session {name}"));
    if message.trim().is_empty() || message.len() > MAX_MESSAGE || message.contains('\0') {
        return Err(ServiceError::Validation(format!(
            "message must be 1 to {MAX_MESSAGE} bytes of text"
        )));
    }
    let repo = repo_of(services, who, &binding).await.ok();
    let author = match (request.author, &repo) {
        (Some(author), _) => author,
        (None, Some(repo)) => default_author(repo, who.tenant().as_str()),
        (None, None) => repos::Author {
            name: who.tenant().as_str().to_owned(),
            email: format!("{}@claude-code-api.invalid", who.tenant().as_str()),
        },
    };
    if author.name.contains(['<', '>', '\n']) || author.email.contains(['<', '>', '\n']) {
        return Err(ServiceError::Validation(
            "author: no '<', '>' or line breaks".into(),
        ));
    }
    let commit = in_worktree(services, &session, async |w| {
        w.commit(&message, &author.name, &author.email).await
    })
    .await?;
    events.push(StreamEvent::GitCommit(GitCommit {
        branch: binding.branch.clone(),
        commit: commit.clone(),
        message: message.lines().next().unwrap_or("").to_owned(),
    }));
    crate::services::audit::record(services, who, "session.git.commit", name).await;
    Ok(CommitView {
        branch: binding.branch,
        commit,
    })
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PushView {
    pub repo: String,
    pub branch: String,
    pub commit: String,
}

/// Pushes the session's branch: bundled in the worktree as the agent,
/// taken into the mirror, pushed from there with the credential.
pub async fn push(
    services: &Services,
    who: &Requester,
    name: &str,
) -> Result<PushView, ServiceError> {
    let mut events = Vec::new();
    let result = push_step(services, who, name, &mut events).await;
    announce_all(services, who, name, events).await;
    result
}

/// `push`, its event collected rather than told.
async fn push_step(
    services: &Services,
    who: &Requester,
    name: &str,
    events: &mut Vec<StreamEvent>,
) -> Result<PushView, ServiceError> {
    let (session, binding) = binding(services, who, name).await?;
    let repo = repo_of(services, who, &binding).await?;
    let access = repos::access(services, &repo).await?;
    check_reachable(services, &repo).await?;
    let mirror = services.git.mirrors.path(&repo.tenant_id, &repo.id);
    if !mirror.is_dir() {
        services.git.mirrors.fresh(&access, Instant::now()).await?;
    }
    let spool = services
        .settings
        .storage
        .data_dir
        .join("git")
        .join(".bundles");
    std::fs::create_dir_all(&spool).map_err(ServiceError::internal)?;
    let bundle = tempfile::Builder::new()
        .suffix(".bundle")
        .tempfile_in(&spool)
        .map_err(ServiceError::internal)?;
    let file = bundle.reopen().map_err(ServiceError::internal)?;
    let (branch, base) = (binding.branch.clone(), binding.base_commit.clone());
    let head = in_worktree(services, &session, async |w| w.branch_head(&branch).await).await?;
    if binding.pushed_commit.as_deref() == Some(head.as_str()) {
        return Err(ServiceError::Conflict(format!(
            "nothing to push: {branch} is at {head}, pushed already"
        )));
    }
    in_worktree(services, &session, async |w| {
        w.bundle(&branch, &base, file).await
    })
    .await?;
    let commit = services
        .git
        .mirrors
        .receive(
            &mirror,
            &access,
            bundle.path(),
            &binding.branch,
            &session.id,
        )
        .await?;
    services
        .git
        .mirrors
        .push(&mirror, &access, &session.id, &binding.branch)
        .await?;
    let (id, pushed) = (session.id.clone(), commit.clone());
    db::run(&services.pool, move |c| {
        session_repo::set_pushed(c, &id, &pushed)
    })
    .await?;
    events.push(StreamEvent::GitPush(GitPush {
        repo: repo.name.clone(),
        branch: binding.branch.clone(),
        commit: commit.clone(),
    }));
    crate::services::audit::record(services, who, "session.git.push", name).await;
    Ok(PushView {
        repo: repo.name,
        branch: binding.branch,
        commit,
    })
}

/// Tells the session's event stream (stored, numbered like a turn's
/// events); what was done stays done even when the stream cannot be told.
async fn announce_all(services: &Services, who: &Requester, name: &str, events: Vec<StreamEvent>) {
    if events.is_empty() {
        return;
    }
    let Ok(session) = crate::services::named_session::load(services, who, name).await else {
        return;
    };
    match crate::services::ownership::actor(services, &session).await {
        Ok(actor) => {
            for event in events {
                let _ = actor
                    .send(crate::actors::session::messages::Announce(event))
                    .await;
            }
        }
        Err(e) => tracing::warn!(session = %name, error = %e, "cannot announce a git event"),
    }
}

/// Who the server's commits (and the agent's, by default) are by: the
/// repository's `author`, else the tenant.
fn default_author(repo: &Repo, tenant_id: &str) -> repos::Author {
    match (&repo.author_name, &repo.author_email) {
        (Some(name), Some(email)) => repos::Author {
            name: name.clone(),
            email: email.clone(),
        },
        _ => repos::Author {
            name: tenant_id.to_owned(),
            email: format!("{tenant_id}@claude-code-api.invalid"),
        },
    }
}
