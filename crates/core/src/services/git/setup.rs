//! A session's worktree made with the session, and forgotten with it.

use super::*;

/// `repo` of `POST /sessions`: the repository to start from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepoChoice {
    /// A repository of the tenant (`POST /repos`).
    pub name: String,
    /// Branch, tag or commit to start from (default: the repository's
    /// default branch, freshly fetched).
    #[serde(default, rename = "ref")]
    pub reference: Option<String>,
    /// The session's new branch (default `cca/<session>`).
    #[serde(default)]
    pub branch: Option<String>,
}

/// What a session's worktree was made of, to store with the session.
pub struct Prepared {
    pub repo_id: String,
    pub branch: String,
    pub base_ref: String,
    pub base_commit: String,
}

/// Checks `choice` before anything is made: a 404 for an unknown
/// repository, a 422 for a bad ref or branch.
pub async fn check_choice(
    services: &Services,
    who: &Requester,
    choice: &RepoChoice,
    session_name: &str,
) -> Result<(Repo, String, String), ServiceError> {
    let repo = repos::load(services, who, &choice.name).await?;
    let branch = choice
        .branch
        .clone()
        .unwrap_or_else(|| format!("cca/{session_name}"));
    if !crate::git::valid_branch(&branch) {
        return Err(ServiceError::Validation(format!(
            "repo.branch {branch:?} is not a branch name"
        )));
    }
    let reference = choice
        .reference
        .clone()
        .unwrap_or_else(|| repo.default_branch.clone());
    if !crate::git::valid_ref(&reference) {
        return Err(ServiceError::Validation(format!(
            "repo.ref {reference:?} is not a branch, tag or commit"
        )));
    }
    Ok((repo, reference, branch))
}

/// Makes `dir` (just created by the server, empty) the session's worktree:
/// the mirror fetched, `reference` resolved, a new `branch` checked out.
pub async fn make_worktree(
    services: &Services,
    repo: &Repo,
    reference: &str,
    branch: &str,
    dir: &std::path::Path,
) -> Result<Prepared, ServiceError> {
    let access = repos::access(services, repo).await?;
    check_reachable(services, repo).await?;
    let mirror = services.git.mirrors.fresh(&access, Instant::now()).await?;
    let commit = services
        .git
        .mirrors
        .resolve(&mirror, &access, reference)
        .await?;
    let public_url = repo.url.clone();
    let (mirror_dir, folder) = (mirror.clone(), dir.to_path_buf());
    let author = default_author(repo, &repo.tenant_id);
    crate::blocking::run(move || {
        worktree::create(
            &mirror_dir,
            &folder,
            &public_url,
            (&author.name, &author.email),
        )
    })
    .await??;
    // The repository's files are the tenant's content: written as its agent.
    let (tree, owner) = open_folder(services, &repo.tenant_id, dir).await?;
    worktree_of(services, &repo.tenant_id, &tree, dir, owner)
        .checkout(branch, &commit)
        .await?;
    Ok(Prepared {
        repo_id: repo.id.clone(),
        branch: branch.to_owned(),
        base_ref: reference.to_owned(),
        base_commit: commit,
    })
}

/// Stores what `make_worktree` made, with the session.
pub async fn record(
    services: &Services,
    session: &Session,
    prepared: Prepared,
) -> Result<(), ServiceError> {
    let row = SessionRepo {
        session_id: session.id.clone(),
        tenant_id: session.tenant_id.clone(),
        repo_id: prepared.repo_id,
        branch: prepared.branch,
        base_ref: prepared.base_ref,
        base_commit: prepared.base_commit,
        pushed_commit: None,
        created_at: db::now(),
    };
    db::run(&services.pool, move |c| session_repo::insert(c, &row)).await?;
    Ok(())
}

/// A deleted session's work leaves the mirror; a mirror whose repository
/// is gone and which no session uses any more is removed.
pub async fn forget_session(
    services: &Services,
    tenant: &crate::db::models::TenantId,
    binding: &SessionRepo,
) {
    let mirror = services.git.mirrors.path(tenant.as_str(), &binding.repo_id);
    let (t, repo_id) = (tenant.clone(), binding.repo_id.clone());
    let state = db::run(&services.pool, move |c| {
        Ok((
            crate::db::models::repo::find_by_id(c, &t, &repo_id)?,
            session_repo::count_for_repo(c, &repo_id)?,
        ))
    })
    .await;
    match state {
        Ok((Some(repo), _)) => {
            if let Ok(access) = repos::access(services, &repo).await {
                services
                    .git
                    .mirrors
                    .forget_session(&mirror, &access, &binding.session_id)
                    .await;
            }
        }
        Ok((None, 0)) => {
            services
                .git
                .mirrors
                .remove(tenant.as_str(), &binding.repo_id)
                .await
        }
        _ => {}
    }
}
