//! A session's worktree: its `.git` made by the server once, in a fresh
//! folder no agent has seen, from the mirror (its objects borrowed, not
//! copied); its files checked out as the agent, and from then on the
//! agent's. Everything the server does in it later
//! (status, diff, commit, bundling the branch for a push) runs as the
//! agent in its sandbox with no network (`Sandbox::run_offline`): hooks,
//! config and links planted there act with the agent's rights, never the
//! server's, and no credential is there to take.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::GitError;
use crate::sandbox::{OfflineCommand, Owner, Sandbox, Tree};

/// Makes `dir` (new, empty, the server's) a clone of `mirror` sharing its
/// objects with nothing checked out (the repository's files are written as
/// the agent: `Worktree::checkout`), its `origin` shown as `public_url` (no
/// credential), and `author` the identity of the agent's own commits.
/// Blocking.
pub fn create(
    mirror: &Path,
    dir: &Path,
    public_url: &str,
    author: (&str, &str),
) -> Result<(), GitError> {
    let run = |args: &[&str], cwd: Option<&Path>| -> Result<(), GitError> {
        let mut command = std::process::Command::new("git");
        command
            .args([
                "-c",
                "core.hooksPath=/dev/null",
                "-c",
                "protocol.allow=never",
                "-c",
                "protocol.file.allow=always",
            ])
            .args(args)
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env("HOME", "/nonexistent")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(std::process::Stdio::null());
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        }
        let out = command
            .output()
            .map_err(|e| GitError::Failed(format!("cannot run git: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(GitError::from_stderr(&out.stderr, None))
        }
    };
    run(
        &[
            "clone",
            "--shared",
            "--no-checkout",
            "--quiet",
            "--template=",
            "--",
            &mirror.to_string_lossy(),
            &dir.to_string_lossy(),
        ],
        None,
    )?;
    run(&["remote", "set-url", "origin", public_url], Some(dir))?;
    run(&["config", "user.name", author.0], Some(dir))?;
    run(&["config", "user.email", author.1], Some(dir))
}

/// Where a worktree is worked on as its agent.
pub struct Worktree<'a> {
    pub sandbox: &'a Sandbox,
    pub tree: &'a Tree,
    pub path: &'a Path,
    pub owner: Owner,
    /// The tenant's mirrors (the worktree's borrowed objects).
    pub mirrors: PathBuf,
    pub timeout: Duration,
    /// The largest bundle a push takes from the worktree.
    pub max_bundle_bytes: u64,
}

/// `GET /sessions/{name}/git`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Status {
    /// The checked-out branch (`null` when detached).
    pub branch: Option<String>,
    /// The commit checked out.
    pub head: Option<String>,
    /// Commits on the branch that the base does not have.
    pub ahead: u64,
    /// Commits of the base that the branch does not have.
    pub behind: u64,
    /// Changed files not committed yet.
    pub dirty: Vec<DirtyFile>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DirtyFile {
    pub path: String,
    /// `git status --porcelain`'s two letters (`??` untracked, ` M` changed, …).
    pub status: String,
}

/// What the agent's hooks, filters and external tools could make the
/// server's commands run: all off (they would run as the agent anyway).
const SAFE_CONFIG: &[&str] = &[
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "diff.external=",
    "-c",
    "core.pager=cat",
    "-c",
    "protocol.allow=never",
];

impl Worktree<'_> {
    /// Runs `script` with `sh` in the worktree as the agent; its stdout, at
    /// most `max` bytes (more is a `TooLarge`). Exit status 3 means "nothing
    /// to do" (the script's own convention).
    async fn sh(&self, script: &str, args: &[&str], max: usize) -> Result<Vec<u8>, GitError> {
        self.tree_to_agent()?;
        let mut argv = vec!["-c".to_owned(), script.to_owned(), "sh".to_owned()];
        argv.extend(args.iter().map(|a| a.to_string()));
        let read_only = [self.mirrors.clone()];
        let read_only: &[PathBuf] = if self.mirrors.is_dir() {
            &read_only
        } else {
            &[]
        };
        let out = self
            .sandbox
            .run_offline(OfflineCommand {
                workspace: (self.tree, self.path),
                read_only,
                owner: self.owner,
                program: "sh",
                args: argv,
                env: vec![
                    ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
                    ("GIT_CONFIG_GLOBAL".into(), "/dev/null".into()),
                    ("GIT_TERMINAL_PROMPT".into(), "0".into()),
                    ("GIT_OPTIONAL_LOCKS".into(), "0".into()),
                    ("GIT_SAFE".into(), SAFE_CONFIG.join(" ")),
                ],
                stdout: None,
                max_stdout: Some(max),
                max_file_bytes: None,
                timeout: self.timeout,
            })
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::FileTooLarge => GitError::TooLarge(e.to_string()),
                _ => GitError::Failed(e.to_string()),
            })?;
        match out.status.code() {
            Some(0) => Ok(out.stdout),
            Some(3) => Err(GitError::NothingToDo(
                String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            )),
            _ => Err(GitError::from_stderr(&out.stderr, None)),
        }
    }

    /// The worktree is the agent's before anything runs in it as the agent.
    fn tree_to_agent(&self) -> Result<(), GitError> {
        self.sandbox.hand_over(self.tree, self.owner).map_err(|e| {
            GitError::Failed(format!("cannot give the worktree to the agent user: {e}"))
        })
    }

    /// Branch, head, ahead/behind of `base` (a commit), and dirty files.
    pub async fn status(&self, base: &str) -> Result<Status, GitError> {
        let script = r#"
git $GIT_SAFE symbolic-ref --short -q HEAD || echo
git $GIT_SAFE rev-parse -q --verify HEAD || echo
git $GIT_SAFE rev-list --left-right --count "$1...HEAD" 2>/dev/null || printf '0\t0\n'
git $GIT_SAFE status --porcelain=v1 -z --untracked-files=all
"#;
        let out = self.sh(script, &[base], 64 << 20).await?;
        let text = String::from_utf8_lossy(&out);
        let mut lines = text.splitn(4, '\n');
        let branch = lines.next().unwrap_or("").trim().to_owned();
        let head = lines.next().unwrap_or("").trim().to_owned();
        let counts = lines.next().unwrap_or("");
        let mut counts = counts
            .split_whitespace()
            .map(|n| n.parse::<u64>().unwrap_or(0));
        let (behind, ahead) = (counts.next().unwrap_or(0), counts.next().unwrap_or(0));
        let mut dirty = Vec::new();
        let mut entries = lines
            .next()
            .unwrap_or("")
            .split('\0')
            .filter(|e| e.len() > 3);
        while let Some(entry) = entries.next() {
            let (status, path) = entry.split_at(2);
            if status.starts_with('R') || status.starts_with('C') {
                // The next entry is the old name.
                entries.next();
            }
            dirty.push(DirtyFile {
                path: path[1..].to_owned(),
                status: status.to_owned(),
            });
        }
        Ok(Status {
            branch: (!branch.is_empty()).then_some(branch),
            head: (!head.is_empty()).then_some(head),
            ahead,
            behind,
            dirty,
        })
    }

    /// The unified diff of the working folder (committed or not, new files
    /// included) against `base`; `numstat` for the summary instead.
    pub async fn diff(&self, base: &str, numstat: bool, max: usize) -> Result<Vec<u8>, GitError> {
        // A private index in the sandbox's own /tmp: the agent's index is
        // left as it was; new files are marked intent-to-add so they show.
        let script = r#"
set -e
export GIT_INDEX_FILE=/tmp/cca-diff-index
git $GIT_SAFE read-tree HEAD
git $GIT_SAFE add --all --intent-to-add . >/dev/null 2>&1 || true
exec git $GIT_SAFE diff --no-color --no-ext-diff --no-textconv --find-renames $2 "$1" --
"#;
        let mode = if numstat { "--numstat" } else { "--patch" };
        self.sh(script, &[base, mode], max).await
    }

    /// Commits everything in the folder on the current branch; the new
    /// commit. Nothing changed is a `NothingToDo`.
    pub async fn commit(
        &self,
        message: &str,
        author_name: &str,
        author_email: &str,
    ) -> Result<String, GitError> {
        let script = r#"
set -e
git $GIT_SAFE add --all .
if git $GIT_SAFE diff --cached --quiet; then echo "nothing to commit: the working folder has no changes"; exit 3; fi
git $GIT_SAFE -c user.name="$2" -c user.email="$3" commit --quiet --no-verify --no-gpg-sign -m "$1"
git $GIT_SAFE rev-parse HEAD
"#;
        let out = self
            .sh(script, &[message, author_name, author_email], 1 << 20)
            .await?;
        Ok(String::from_utf8_lossy(&out).trim().to_owned())
    }

    /// Starts `branch` at the commit checked out, keeping the working
    /// folder's changes (a fork's own branch); the commit it starts at.
    pub async fn start_branch(&self, branch: &str) -> Result<String, GitError> {
        let script = r#"
set -e
git $GIT_SAFE check-ref-format --branch "$1" >/dev/null
git $GIT_SAFE switch --quiet --create "$1"
git $GIT_SAFE rev-parse HEAD
"#;
        let out = self.sh(script, &[branch], 1 << 20).await?;
        Ok(String::from_utf8_lossy(&out).trim().to_owned())
    }

    /// The commit `branch` points at in the worktree.
    pub async fn branch_head(&self, branch: &str) -> Result<String, GitError> {
        let script = r#"git $GIT_SAFE rev-parse --verify -q "refs/heads/$1^{commit}" || { echo "the branch $1 is gone from the worktree"; exit 3; }"#;
        let out = self.sh(script, &[branch], 1 << 20).await?;
        Ok(String::from_utf8_lossy(&out).trim().to_owned())
    }

    /// Writes a bundle of `branch` (the commits the mirror lacks) into
    /// `into`, a file of the server's the agent cannot name. Nothing new is
    /// a `NothingToDo`.
    pub async fn bundle(
        &self,
        branch: &str,
        base: &str,
        into: std::fs::File,
    ) -> Result<(), GitError> {
        self.tree_to_agent()?;
        let script = r#"
set -e
if [ "$(git $GIT_SAFE rev-parse -q --verify "refs/heads/$1^{commit}")" = "$2" ]; then
  echo "nothing to push: the branch has no commits beyond its base" >&2; exit 3
fi
exec git $GIT_SAFE bundle create --quiet - "refs/heads/$1" "^$2" --not --remotes
"#;
        let read_only = [self.mirrors.clone()];
        let out = self
            .sandbox
            .run_offline(OfflineCommand {
                workspace: (self.tree, self.path),
                read_only: if self.mirrors.is_dir() {
                    &read_only
                } else {
                    &[]
                },
                owner: self.owner,
                program: "sh",
                args: vec![
                    "-c".into(),
                    script.into(),
                    "sh".into(),
                    branch.into(),
                    base.into(),
                ],
                env: vec![
                    ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
                    ("GIT_CONFIG_GLOBAL".into(), "/dev/null".into()),
                    ("GIT_SAFE".into(), SAFE_CONFIG.join(" ")),
                ],
                stdout: Some(into),
                max_stdout: None,
                max_file_bytes: Some(self.max_bundle_bytes),
                timeout: self.timeout,
            })
            .await
            .map_err(|e| GitError::Failed(e.to_string()))?;
        match out.status.code() {
            Some(0) => Ok(()),
            Some(3) => Err(GitError::NothingToDo(
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            )),
            _ => Err(GitError::from_stderr(&out.stderr, None)),
        }
    }
}

impl Worktree<'_> {
    /// The subject line of `branch`'s last commit.
    pub async fn subject(&self, branch: &str) -> Result<String, GitError> {
        let out = self
            .sh(
                r#"git $GIT_SAFE log -1 --format=%s "refs/heads/$1" --"#,
                &[branch],
                64 * 1024,
            )
            .await?;
        Ok(String::from_utf8_lossy(&out).trim().to_owned())
    }
}

impl Worktree<'_> {
    /// Checks out a new `branch` at `commit`: the worktree's first files,
    /// written as the agent.
    pub async fn checkout(&self, branch: &str, commit: &str) -> Result<(), GitError> {
        self.sh(
            r#"git $GIT_SAFE checkout --quiet -b "$1" "$2" --"#,
            &[branch, commit],
            1 << 20,
        )
        .await
        .map(|_| ())
    }
}
