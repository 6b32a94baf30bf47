//! Opening a session's pull request, its title and body asked of the agent
//! when not given.

use super::*;

/// `POST /sessions/{name}/pull-request`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PullRequestRequest {
    /// Default: the subject of the branch's last commit.
    #[serde(default)]
    pub title: Option<String>,
    /// Default: a summary of the diff.
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub draft: bool,
    /// Default: the branch the session started from (or the repository's
    /// default branch when it started from a tag or commit).
    #[serde(default)]
    pub base: Option<String>,
}

/// Pushes the branch when it has commits not pushed yet, then opens the
/// pull request through the provider's API.
pub async fn pull_request(
    services: &Services,
    who: &Requester,
    name: &str,
    request: PullRequestRequest,
) -> Result<PullRequest, ServiceError> {
    let mut events = Vec::new();
    let result = pull_request_step(services, who, name, request, true, &mut events).await;
    announce_all(services, who, name, events).await;
    result
}

/// `pull_request`, its events collected rather than told.
pub(super) async fn pull_request_step(
    services: &Services,
    who: &Requester,
    name: &str,
    request: PullRequestRequest,
    ask_agent: bool,
    events: &mut Vec<StreamEvent>,
) -> Result<PullRequest, ServiceError> {
    let (session, binding) = binding(services, who, name).await?;
    let repo = repo_of(services, who, &binding).await?;
    let provider: Provider = repo
        .provider
        .as_deref()
        .ok_or_else(|| {
            ServiceError::Conflict(
                "the repository has no provider: PATCH it with provider and api_url".into(),
            )
        })?
        .parse()
        .map_err(ServiceError::Conflict)?;
    let api_url = repo
        .api_url
        .clone()
        .ok_or_else(|| ServiceError::Conflict("the repository has no api_url".into()))?;
    crate::git::remote::check_api_url(&api_url, &services.settings.git)
        .await
        .map_err(ServiceError::Conflict)?;
    let access = repos::access(services, &repo).await?;
    let token = match &access.credential {
        Some(crate::git::mirror::Credential::Token { token, .. }) => token.clone(),
        _ => {
            return Err(ServiceError::Conflict(
                "opening a pull request needs a token as the repository's credential".into(),
            ))
        }
    };
    let base = match request.base {
        Some(base) => base,
        None if binding.base_ref.len() == 40
            && binding.base_ref.chars().all(|c| c.is_ascii_hexdigit()) =>
        {
            repo.default_branch.clone()
        }
        None => binding.base_ref.clone(),
    };
    if !crate::git::valid_branch(&base) {
        return Err(ServiceError::Validation("base is not a branch name".into()));
    }
    let head = in_worktree(services, &session, async |w| {
        w.branch_head(&binding.branch).await
    })
    .await?;
    if binding.pushed_commit.as_deref() != Some(head.as_str()) {
        push_step(services, who, name, events).await?;
    }
    let stat = match diff(services, who, name, true, false).await? {
        DiffAnswer::Files(view) => view.stat,
        DiffAnswer::Patch(_) => DiffStat::default(),
    };
    // Not given: asked of the agent (a turn of the session's), when it may
    // be; else the last commit's subject and a summary of the diff.
    let asked = match (&request.title, &request.body, ask_agent) {
        (Some(_), Some(_), _) | (_, _, false) => None,
        _ => agent_pr_text(services, who, name, &binding.branch, &base, &stat).await,
    };
    let (asked_title, asked_body) = asked.unzip();
    let title = match request.title.or(asked_title) {
        Some(title) => title,
        None => default_title(services, &session, &binding.branch).await,
    };
    let body = request.body.or(asked_body).unwrap_or_else(|| {
        format!(
            "Changes of session `{name}` on branch `{}`: {} files changed, {} insertions(+), {} deletions(-).",
            binding.branch, stat.files, stat.additions, stat.deletions
        )
    });
    if title.trim().is_empty() || title.len() > 1000 || body.len() > MAX_MESSAGE {
        return Err(ServiceError::Validation(
            "title must be 1 to 1000 bytes, body at most 64 KiB".into(),
        ));
    }
    let opened = provider::open(
        &services.git.http,
        provider,
        &api_url,
        &token,
        &provider::NewPullRequest {
            project_path: &crate::git::remote::parse(&repo.url, &services.settings.git)
                .map_err(ServiceError::Validation)?
                .project_path,
            head: &binding.branch,
            base: &base,
            title: &title,
            body: &body,
            draft: request.draft,
        },
    )
    .await?;
    events.push(StreamEvent::PullRequestOpened(PullRequestOpened {
        repo: repo.name.clone(),
        branch: binding.branch.clone(),
        base,
        number: opened.number,
        url: opened.url.clone(),
    }));
    crate::services::audit::record(services, who, "session.git.pull_request", name).await;
    Ok(opened)
}

/// The subject of the branch's last commit.
async fn default_title(services: &Services, session: &Session, branch: &str) -> String {
    let subject = in_worktree(services, session, async |w| w.subject(branch).await).await;
    match subject {
        Ok(s) if !s.trim().is_empty() => s.trim().to_owned(),
        _ => format!("Changes of session {}", session.name),
    }
}

/// How the server asks (the test model knows this opening).
const PULL_REQUEST_PROMPT: &str = "Describe these changes as a pull request";

/// The title and body the agent gives for the branch's changes, asked in a
/// turn of the session's (charged and kept in its history like any other);
/// `None` when it does not answer in that shape.
async fn agent_pr_text(
    services: &Services,
    who: &Requester,
    name: &str,
    branch: &str,
    base: &str,
    stat: &DiffStat,
) -> Option<(String, String)> {
    use crate::services::turns::{self, Answer, Reply, Target};
    let request = crate::domain::turn::TurnRequest {
        attachments: Vec::new(),
        message: format!(
            "{PULL_REQUEST_PROMPT}: branch `{branch}` against `{base}`, {} files changed \
             (+{} -{}). Look at them with `git diff` and `git log` if you need to. Give a title \
             of one line under 72 characters and a short description in Markdown.",
            stat.files, stat.additions, stat.deletions
        ),
        overrides: crate::domain::session::TurnOverrides {
            json_schema: Some(serde_json::json!({
                "type": "object",
                "properties": {"title": {"type": "string"}, "body": {"type": "string"}},
                "required": ["title", "body"],
            })),
            ..Default::default()
        },
    };
    let submitted = turns::submit(services, who, Target::Named(name), request, Reply::Whole)
        .await
        .ok()?;
    let Answer::Done(response) = turns::answer(services, submitted).await.ok()? else {
        return None;
    };
    let output = response.structured_output?;
    let title = output["title"].as_str()?.trim().to_owned();
    let body = output["body"].as_str()?.to_owned();
    (!title.is_empty() && !title.contains('\n')).then_some((title, body))
}
