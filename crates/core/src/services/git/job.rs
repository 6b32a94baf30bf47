//! A job's git step: commit, push and pull request once its turn ended.

use super::*;

/// A job's git step, run by the session's actor after the job's turn.
pub struct JobGitPhase {
    services: Services,
}

impl std::fmt::Debug for JobGitPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JobGitPhase")
    }
}

impl JobGitPhase {
    pub fn new(services: Services) -> JobGitPhase {
        JobGitPhase { services }
    }
}

impl crate::actors::JobGitRunner for JobGitPhase {
    fn run(
        &self,
        tenant_id: String,
        session_name: String,
        job_message: String,
        options: crate::domain::job_git::JobGit,
    ) -> futures_util::future::LocalBoxFuture<'static, crate::actors::JobGitOutcome> {
        let services = self.services.clone();
        Box::pin(async move {
            let tenant = crate::db::models::TenantId(tenant_id);
            // The step acts for the session's own job: on a private session,
            // as the one it is private to (who else would not see it).
            let lookup = (tenant.clone(), session_name.clone());
            let private_to = crate::db::run(&services.pool, move |c| {
                crate::db::models::session::find_by_name(c, &lookup.0, &lookup.1)
            })
            .await
            .ok()
            .flatten()
            .and_then(|s| s.private_to);
            let who = Requester {
                caller: crate::security::auth::Caller {
                    tenant,
                    key_id: private_to.unwrap_or_else(|| "job".into()),
                    key_label: "a job's git step".into(),
                    role: crate::domain::role::Role::Member.as_str().into(),
                    person: None,
                },
                client_addr: None,
                request_id: String::new(),
            };
            let mut events = Vec::new();
            let (git, failure) = job_git(
                &services,
                &who,
                &session_name,
                &job_message,
                &options,
                &mut events,
            )
            .await;
            crate::actors::JobGitOutcome {
                git,
                failure,
                events,
            }
        })
    }
}

/// Commit, push, pull request as `options` asks; the job's `git` object and
/// the failure that fails the job, if any. A job that changed nothing says
/// so and opens nothing.
async fn job_git(
    services: &Services,
    who: &Requester,
    name: &str,
    job_message: &str,
    options: &crate::domain::job_git::JobGit,
    events: &mut Vec<StreamEvent>,
) -> (serde_json::Value, Option<String>) {
    use serde_json::json;
    let mut git = json!({"changed": false, "commit": null, "pushed": false, "pull_request": null});
    let fail = |mut git: serde_json::Value, step: &str, e: ServiceError| {
        let message = format!("git {step}: {e}");
        git["error"] = json!(message);
        (git, Some(message))
    };
    let binding = match binding(services, who, name).await {
        Ok((_, binding)) => binding,
        Err(e) => return fail(git, "step", e),
    };
    git["branch"] = json!(binding.branch);
    if options.commit {
        let message = options.commit_message.clone().unwrap_or_else(|| {
            let first: String = job_message
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .chars()
                .take(72)
                .collect();
            if first.is_empty() {
                format!("Changes of session {name}")
            } else {
                first
            }
        });
        let request = CommitRequest {
            message: Some(message),
            author: None,
        };
        match commit_step(services, who, name, request, events).await {
            Ok(view) => git["commit"] = json!(view.commit),
            // Nothing to commit: the agent may have committed itself.
            Err(ServiceError::Conflict(_)) => {}
            Err(e) => return fail(git, "commit", e),
        }
    }
    let stat = match diff(services, who, name, true, false).await {
        Ok(DiffAnswer::Files(view)) => view.stat,
        Ok(DiffAnswer::Patch(_)) => DiffStat::default(),
        Err(e) => return fail(git, "diff", e),
    };
    let changed = stat.files > 0;
    git["diff_stat"] = json!(stat);
    git["changed"] = json!(changed);
    if !changed {
        git["message"] = json!("the job changed nothing: nothing was pushed or opened");
        return (git, None);
    }
    if options.push && options.pull_request.is_none() {
        match push_step(services, who, name, events).await {
            Ok(view) => {
                git["pushed"] = json!(true);
                git["commit"] = json!(view.commit);
            }
            Err(e) => return fail(git, "push", e),
        }
    }
    if let Some(pr) = &options.pull_request {
        let request = PullRequestRequest {
            title: pr.title.clone(),
            body: pr.body.clone(),
            draft: pr.draft,
            base: pr.base.clone(),
        };
        // The job's own turn has just ended and the actor waits for this
        // step: no second turn can run now. Its first line is the title.
        let request = PullRequestRequest {
            title: request.title.or_else(|| first_line(job_message)),
            ..request
        };
        match super::pull_request::pull_request_step(services, who, name, request, false, events)
            .await
        {
            Ok(opened) => {
                git["pushed"] = json!(true);
                git["pull_request"] = json!(opened);
            }
            Err(e) => return fail(git, "pull request", e),
        }
    }
    (git, None)
}

/// Refuses a job's `git` on a session not made from a repository (409:
/// the session's state, not the request, is what is wrong).
pub async fn check_job_git(
    services: &Services,
    who: &Requester,
    name: &str,
) -> Result<(), ServiceError> {
    let session = crate::services::sessions::load(services, who, name).await?;
    let (tenant, id) = (who.tenant().clone(), session.id.clone());
    let bound = db::run(&services.pool, move |c| session_repo::find(c, &tenant, &id))
        .await?
        .is_some();
    if bound {
        Ok(())
    } else {
        Err(ServiceError::Conflict(format!(
            "git: session {name:?} was not made from a repository (POST /sessions with \"repo\")"
        )))
    }
}

/// The first line of `text`, at most 72 characters, if it has one.
fn first_line(text: &str) -> Option<String> {
    let line: String = text.lines().next()?.trim().chars().take(72).collect();
    (!line.is_empty()).then_some(line)
}
