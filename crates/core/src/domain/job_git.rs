//! A job's git step: what the server does with a repository session's
//! worktree once the job's turn has ended well.

use serde::{Deserialize, Serialize};

/// `git` of a job: what the server does with the session's worktree once
/// the job's turn has ended well (the session must come from a repository).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobGit {
    /// Commit what the agent changed (message: `commit_message`, default
    /// the job's first line).
    #[serde(default)]
    pub commit: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_message: Option<String>,
    /// Push the session's branch.
    #[serde(default)]
    pub push: bool,
    /// Open a pull request (pushes first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<JobPullRequest>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobPullRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default)]
    pub draft: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
}
