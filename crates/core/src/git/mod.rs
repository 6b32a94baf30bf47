//! Git for sessions: a tenant's remotes, the server's bare mirror of each
//! (fetched and pushed by the server, with the stored credential), a
//! session's worktree made from the mirror, and what the server does in
//! that worktree, which it runs as the agent (see `worktree`). No
//! credential ever enters a worktree or the agent's sandbox.

pub mod diff;
pub mod kit;
pub mod mirror;
pub mod provider;
pub mod remote;
pub mod worktree;

/// What went wrong with a git operation, as the client should hear it.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// A branch, tag or commit that is not there.
    #[error("{0}")]
    RefNotFound(String),
    /// The remote refused the credential (or asked for one).
    #[error("the remote refused the credential: {0}")]
    AuthFailed(String),
    /// The remote moved on: a push that is not a fast-forward.
    #[error("the push was rejected: {0}")]
    Rejected(String),
    /// Nothing to commit, or nothing to push.
    #[error("{0}")]
    NothingToDo(String),
    #[error("the remote cannot be reached: {0}")]
    Unreachable(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("git failed: {0}")]
    Failed(String),
}

impl GitError {
    /// Sorts the stderr of a failed git command (`secret`, when given, is
    /// cut out of the message first).
    pub fn from_stderr(stderr: &[u8], secret: Option<&str>) -> GitError {
        let mut text = String::from_utf8_lossy(stderr).trim().to_owned();
        if let Some(secret) = secret.filter(|s| !s.is_empty()) {
            text = text.replace(secret, "***");
        }
        // The last lines say why; the first ones are progress.
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let short = lines[lines.len().saturating_sub(4)..].join("\n");
        let lower = text.to_ascii_lowercase();
        if lower.contains("authentication failed")
            || lower.contains("could not read username")
            || lower.contains("could not read password")
            || lower.contains("permission denied (publickey")
            || lower.contains("returned error: 401")
            || lower.contains("returned error: 403")
        {
            GitError::AuthFailed(short)
        } else if lower.contains("non-fast-forward")
            || lower.contains("[rejected]")
            || lower.contains("fetch first")
        {
            GitError::Rejected(short)
        } else if lower.contains("could not resolve host")
            || lower.contains("failed to connect")
            || lower.contains("connection refused")
            || lower.contains("connection timed out")
        {
            GitError::Unreachable(short)
        } else {
            GitError::Failed(short)
        }
    }
}

impl From<GitError> for crate::error::ServiceError {
    fn from(e: GitError) -> Self {
        use crate::error::ServiceError;
        match e {
            GitError::RefNotFound(m) => ServiceError::NotFound(m),
            GitError::NothingToDo(m) => ServiceError::Conflict(m),
            GitError::Rejected(_) => ServiceError::Conflict(e.to_string()),
            GitError::AuthFailed(_) | GitError::Unreachable(_) => {
                ServiceError::Upstream(e.to_string())
            }
            GitError::TooLarge(m) => ServiceError::PayloadTooLarge(m),
            GitError::Failed(_) => ServiceError::Upstream(e.to_string()),
        }
    }
}

/// Whether `name` may be a branch name (`git check-ref-format --branch`,
/// checked here without a process, conservatively).
pub fn valid_branch(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with(['-', '/', '.'])
        && !name.ends_with(['/', '.'])
        && !name.ends_with(".lock")
        && !name.contains("..")
        && !name.contains("//")
        && !name.contains("@{")
        && !name.contains("/.")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

/// Whether `reference` may name a branch, tag or commit to start from.
pub fn valid_ref(reference: &str) -> bool {
    valid_branch(reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_are_checked() {
        for ok in ["main", "cca/fix-1", "release/2.0", "a_b"] {
            assert!(valid_branch(ok), "{ok}");
        }
        for bad in [
            "",
            "-x",
            "a..b",
            "a b",
            "x.lock",
            "a//b",
            "/a",
            "a/",
            "a@{1}",
            "a/.b",
            "--upload-pack=x",
        ] {
            assert!(!valid_branch(bad), "{bad}");
        }
    }

    #[test]
    fn errors_are_sorted_and_secrets_cut() {
        let e = GitError::from_stderr(
            b"fatal: Authentication failed for 'https://h/r.git/' tok123",
            Some("tok123"),
        );
        assert!(
            matches!(&e, GitError::AuthFailed(m) if !m.contains("tok123")),
            "{e:?}"
        );
        let e = GitError::from_stderr(b" ! [rejected]        main -> main (fetch first)", None);
        assert!(matches!(e, GitError::Rejected(_)));
    }
}
