//! Opening a pull request (a merge request on GitLab) through the
//! provider's API, with the repository's stored token.

use serde::Serialize;
use serde_json::{json, Value};

/// `github`, `gitlab` or `gitea` (Forgejo speaks Gitea's API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    GitHub,
    GitLab,
    Gitea,
}

impl std::str::FromStr for Provider {
    type Err = String;
    fn from_str(s: &str) -> Result<Provider, String> {
        match s {
            "github" => Ok(Provider::GitHub),
            "gitlab" => Ok(Provider::GitLab),
            "gitea" | "forgejo" => Ok(Provider::Gitea),
            other => Err(format!(
                "provider {other:?} is not one of github, gitlab, gitea"
            )),
        }
    }
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::GitLab => "gitlab",
            Provider::Gitea => "gitea",
        }
    }

    /// The public API of the hosted service, when there is one.
    pub fn default_api_url(self) -> Option<&'static str> {
        match self {
            Provider::GitHub => Some("https://api.github.com"),
            Provider::GitLab => Some("https://gitlab.com/api/v4"),
            Provider::Gitea => None,
        }
    }
}

/// What to open.
#[derive(Debug, Clone)]
pub struct NewPullRequest<'a> {
    pub project_path: &'a str,
    pub head: &'a str,
    pub base: &'a str,
    pub title: &'a str,
    pub body: &'a str,
    pub draft: bool,
}

/// An opened pull request: its number and the page a person opens.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PullRequest {
    pub number: u64,
    pub url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("the provider refused the token ({status}): {message}")]
    Auth { status: u16, message: String },
    #[error("the provider answered {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("the provider cannot be reached: {0}")]
    Unreachable(String),
}

impl From<ProviderError> for crate::error::ServiceError {
    fn from(e: ProviderError) -> Self {
        crate::error::ServiceError::Upstream(e.to_string())
    }
}

/// Opens the pull request; `api_url` is checked already.
pub async fn open(
    client: &reqwest::Client,
    provider: Provider,
    api_url: &str,
    token: &str,
    pr: &NewPullRequest<'_>,
) -> Result<PullRequest, ProviderError> {
    let api = api_url.trim_end_matches('/');
    let request = match provider {
        Provider::GitHub => client
            .post(format!("{api}/repos/{}/pulls", pr.project_path))
            .bearer_auth(token)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .json(&json!({
                "title": pr.title, "head": pr.head, "base": pr.base,
                "body": pr.body, "draft": pr.draft,
            })),
        Provider::GitLab => {
            let project: String =
                url::form_urlencoded::byte_serialize(pr.project_path.as_bytes()).collect();
            let title = if pr.draft {
                format!("Draft: {}", pr.title)
            } else {
                pr.title.to_owned()
            };
            client
                .post(format!("{api}/projects/{project}/merge_requests"))
                .header("PRIVATE-TOKEN", token)
                .json(&json!({
                    "source_branch": pr.head, "target_branch": pr.base,
                    "title": title, "description": pr.body,
                }))
        }
        Provider::Gitea => {
            let title = if pr.draft {
                format!("WIP: {}", pr.title)
            } else {
                pr.title.to_owned()
            };
            client
                .post(format!("{api}/repos/{}/pulls", pr.project_path))
                .header("Authorization", format!("token {token}"))
                .json(&json!({
                    "title": title, "head": pr.head, "base": pr.base, "body": pr.body,
                }))
        }
    };
    let response = request
        .header("User-Agent", "claude-code-api")
        .send()
        .await
        .map_err(|e| ProviderError::Unreachable(e.without_url().to_string()))?;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        let message = body
            .get("message")
            .or_else(|| body.get("error"))
            .map(|m| match m {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_else(|| "no message".into());
        let message: String = message.replace(token, "***").chars().take(500).collect();
        return Err(if status == 401 || status == 403 {
            ProviderError::Auth { status, message }
        } else {
            ProviderError::Refused { status, message }
        });
    }
    let number = match provider {
        Provider::GitLab => body.get("iid"),
        _ => body.get("number"),
    }
    .and_then(Value::as_u64);
    let url = match provider {
        Provider::GitLab => body.get("web_url"),
        _ => body.get("html_url"),
    }
    .and_then(Value::as_str);
    match (number, url) {
        (Some(number), Some(url)) => Ok(PullRequest {
            number,
            url: url.to_owned(),
        }),
        _ => Err(ProviderError::Refused {
            status,
            message: "the answer has no number and web address".into(),
        }),
    }
}
