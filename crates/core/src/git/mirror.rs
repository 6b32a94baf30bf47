//! The server's bare mirror of each registered repository, one per tenant
//! and repository (`DATA_DIR/git/<tenant>/<repo id>.git`): cloned once,
//! fetched (never re-cloned) before a session starts from it, and the only
//! place the server runs git with a credential. Sessions' worktrees borrow
//! its objects (read-only, bound into their sandboxes); what a session
//! pushes is taken in as a bundle under `refs/cca-sessions/<session id>`
//! and pushed from here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::remote::Transport;
use super::GitError;

/// How a session's pushed work is kept in the mirror.
const SESSION_REFS: &str = "refs/cca-sessions";
/// A fetch this recent serves a new session as well (parallel creates on one
/// repository cost one fetch).
const FRESH_FOR: Duration = Duration::from_secs(2);

/// The tenant's mirrors (bound read-only into its agents' sandboxes).
pub fn tenant_dir(data_dir: &Path, tenant_id: &str) -> PathBuf {
    data_dir.join("git").join(tenant_id)
}

/// The credential the server uses for a remote, opened from its seal.
#[derive(Clone)]
pub enum Credential {
    /// HTTPS basic auth (`username` by provider: GitHub `x-access-token`,
    /// GitLab `oauth2`), or `user:token` as given.
    Token { username: String, token: String },
    /// A private SSH key (PEM / OpenSSH format).
    SshKey(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credential::Token { .. } => "Credential::Token(..)",
            Credential::SshKey(_) => "Credential::SshKey(..)",
        })
    }
}

impl Credential {
    /// A stored credential's text: an SSH key, `user:token`, or a token
    /// (the username the provider expects).
    pub fn from_text(text: &str, provider: Option<&str>) -> Credential {
        if text.trim_start().starts_with("-----BEGIN") {
            return Credential::SshKey(text.to_owned());
        }
        match text.split_once(':') {
            Some((user, token)) if !user.is_empty() && !user.contains('/') => Credential::Token {
                username: user.to_owned(),
                token: token.to_owned(),
            },
            _ => Credential::Token {
                username: match provider {
                    Some("github") => "x-access-token",
                    Some("gitlab") => "oauth2",
                    _ => "git",
                }
                .to_owned(),
                token: text.to_owned(),
            },
        }
    }

    /// What must never show in a message.
    pub fn secret(&self) -> &str {
        match self {
            Credential::Token { token, .. } => token,
            Credential::SshKey(key) => key,
        }
    }

    /// Kind as stored: `token` or `ssh_key`.
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::Token { .. } => "token",
            Credential::SshKey(_) => "ssh_key",
        }
    }
}

/// One repository as the server reaches it.
#[derive(Debug, Clone)]
pub struct Access {
    pub tenant_id: String,
    pub repo_id: String,
    pub url: String,
    pub transport: Transport,
    pub credential: Option<Credential>,
}

/// The mirrors of this server, and who is fetching which.
pub struct Mirrors {
    root: PathBuf,
    timeout: Duration,
    /// Per mirror: held while it is cloned, fetched or pushed; holds when it
    /// was last fetched.
    locks: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<Option<Instant>>>>>,
}

impl std::fmt::Debug for Mirrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirrors").field("root", &self.root).finish()
    }
}

impl Mirrors {
    pub fn new(data_dir: &Path, timeout: Duration) -> Mirrors {
        Mirrors {
            root: data_dir.join("git"),
            timeout,
            locks: Mutex::new(HashMap::new()),
        }
    }

    pub fn path(&self, tenant_id: &str, repo_id: &str) -> PathBuf {
        self.root.join(tenant_id).join(format!("{repo_id}.git"))
    }

    fn lock(&self, mirror: &Path) -> Arc<tokio::sync::Mutex<Option<Instant>>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(mirror.to_path_buf()).or_default().clone()
    }

    /// The remote's default branch (`ls-remote --symref`), which also proves
    /// the credential works.
    pub async fn default_branch(&self, access: &Access) -> Result<String, GitError> {
        let out = self
            .git(
                None,
                access,
                &["ls-remote", "--symref", "--", &access.url, "HEAD"],
            )
            .await?;
        let text = String::from_utf8_lossy(&out);
        text.lines()
            .find_map(|l| l.strip_prefix("ref: refs/heads/"))
            .and_then(|rest| rest.split('\t').next())
            .map(str::to_owned)
            .ok_or_else(|| {
                GitError::RefNotFound(
                    "the remote has no default branch (an empty repository?): give default_branch"
                        .into(),
                )
            })
    }

    /// The mirror, cloned when missing and fetched unless a fetch finished
    /// after `since` (so parallel callers share one fetch).
    pub async fn fresh(&self, access: &Access, since: Instant) -> Result<PathBuf, GitError> {
        let mirror = self.path(&access.tenant_id, &access.repo_id);
        let lock = self.lock(&mirror);
        let mut fetched = lock.lock().await;
        if fetched.is_some_and(|at| at >= since || at.elapsed() < FRESH_FOR) && mirror.is_dir() {
            return Ok(mirror);
        }
        if mirror.join("HEAD").is_file() {
            self.git(
                Some(&mirror),
                access,
                &["fetch", "--prune", "--tags", "--force", "origin"],
            )
            .await?;
        } else {
            self.clone_into(&mirror, access).await?;
        }
        *fetched = Some(Instant::now());
        Ok(mirror)
    }

    async fn clone_into(&self, mirror: &Path, access: &Access) -> Result<(), GitError> {
        let (Some(parent), Some(name)) = (mirror.parent(), mirror.file_name()) else {
            return Err(GitError::Failed(format!(
                "{} is no mirror path",
                mirror.display()
            )));
        };
        std::fs::create_dir_all(parent).map_err(|e| GitError::Failed(e.to_string()))?;
        // Cloned beside, then renamed: a half clone is never taken for a mirror.
        let partial = parent.join(format!(
            ".{}.partial-{}",
            name.to_string_lossy(),
            uuid::Uuid::new_v4().simple()
        ));
        let result = async {
            self.git(
                None,
                access,
                &[
                    "clone",
                    "--bare",
                    "--quiet",
                    "--template=",
                    "--",
                    &access.url,
                    &partial.to_string_lossy(),
                ],
            )
            .await?;
            // Branches and tags only; the server's own refs never go back.
            for (key, value) in [
                ("remote.origin.fetch", "+refs/heads/*:refs/heads/*"),
                ("gc.auto", "0"),
                ("core.logAllRefUpdates", "false"),
            ] {
                self.git(Some(&partial), access, &["config", key, value])
                    .await?;
            }
            std::fs::rename(&partial, mirror).map_err(|e| GitError::Failed(e.to_string()))
        }
        .await;
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&partial);
        }
        result
    }

    /// The commit `reference` (a branch, tag or commit id) names in the mirror.
    pub async fn resolve(
        &self,
        mirror: &Path,
        access: &Access,
        reference: &str,
    ) -> Result<String, GitError> {
        let candidates = [
            format!("refs/heads/{reference}^{{commit}}"),
            format!("refs/tags/{reference}^{{commit}}"),
            format!("{reference}^{{commit}}"),
        ];
        for candidate in &candidates {
            if let Ok(out) = self
                .git(
                    Some(mirror),
                    access,
                    &[
                        "rev-parse",
                        "--verify",
                        "--quiet",
                        "--end-of-options",
                        candidate,
                    ],
                )
                .await
            {
                let id = String::from_utf8_lossy(&out).trim().to_owned();
                if !id.is_empty() {
                    return Ok(id);
                }
            }
        }
        Err(GitError::RefNotFound(format!(
            "{reference:?} is no branch, tag or commit of the repository"
        )))
    }

    /// Takes in the bundle a session made of its branch (its objects, the
    /// agent's work), as `refs/cca-sessions/<session_id>`; the commit.
    pub async fn receive(
        &self,
        mirror: &Path,
        access: &Access,
        bundle: &Path,
        branch: &str,
        session_id: &str,
    ) -> Result<String, GitError> {
        let target = format!("{SESSION_REFS}/{session_id}");
        let lock = self.lock(mirror);
        let _held = lock.lock().await;
        self.git(
            Some(mirror),
            access,
            &[
                "-c",
                "fetch.fsckObjects=true",
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                "--",
                &bundle.to_string_lossy(),
                &format!("+refs/heads/{branch}:{target}"),
            ],
        )
        .await?;
        let out = self
            .git(
                Some(mirror),
                access,
                &["rev-parse", "--verify", "--end-of-options", &target],
            )
            .await?;
        Ok(String::from_utf8_lossy(&out).trim().to_owned())
    }

    /// Pushes the session's received work to the remote's `branch` (a
    /// fast-forward only: a remote that moved on is a `Rejected`).
    pub async fn push(
        &self,
        mirror: &Path,
        access: &Access,
        session_id: &str,
        branch: &str,
    ) -> Result<(), GitError> {
        let lock = self.lock(mirror);
        let _held = lock.lock().await;
        self.git(
            Some(mirror),
            access,
            &[
                "push",
                "--",
                &access.url,
                &format!("{SESSION_REFS}/{session_id}:refs/heads/{branch}"),
            ],
        )
        .await
        .map(|_| ())
    }

    /// Forgets a deleted session's received work.
    pub async fn forget_session(&self, mirror: &Path, access: &Access, session_id: &str) {
        if mirror.is_dir() {
            let _ = self
                .git(
                    Some(mirror),
                    access,
                    &["update-ref", "-d", &format!("{SESSION_REFS}/{session_id}")],
                )
                .await;
        }
    }

    /// Removes a deleted repository's mirror.
    pub async fn remove(&self, tenant_id: &str, repo_id: &str) {
        let mirror = self.path(tenant_id, repo_id);
        let lock = self.lock(&mirror);
        let _held = lock.lock().await;
        let _ = crate::blocking::run(move || std::fs::remove_dir_all(&mirror)).await;
    }

    /// Runs git as the server, in `dir` (a mirror: the server's own folder),
    /// with the credential given through the environment (never on the
    /// command line, in a config file or in a URL) and nothing of the
    /// operator's or the system's git configuration. Its stdout.
    async fn git(
        &self,
        dir: Option<&Path>,
        access: &Access,
        args: &[&str],
    ) -> Result<Vec<u8>, GitError> {
        let mut config: Vec<(String, String)> = vec![
            ("protocol.allow".into(), "never".into()),
            ("core.hooksPath".into(), "/dev/null".into()),
            ("credential.helper".into(), String::new()),
        ];
        let protocol = match access.transport {
            Transport::Https => "https",
            Transport::Http => "http",
            Transport::Ssh => "ssh",
            Transport::Local => "file",
        };
        config.push((format!("protocol.{protocol}.allow"), "always".into()));
        // A bundle is read as a file.
        config.push(("protocol.file.allow".into(), "always".into()));
        let mut env: Vec<(String, String)> = Vec::new();
        let mut key_file = None;
        match &access.credential {
            Some(Credential::Token { username, token }) => {
                let basic =
                    base64::engine::general_purpose::STANDARD.encode(format!("{username}:{token}"));
                config.push((
                    "http.extraHeader".into(),
                    format!("Authorization: Basic {basic}"),
                ));
            }
            Some(Credential::SshKey(key)) => {
                let file = self
                    .write_key(key)
                    .map_err(|e| GitError::Failed(e.to_string()))?;
                env.push((
                    "GIT_SSH_COMMAND".into(),
                    format!(
                        "ssh -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={}",
                        file.path().display(),
                        self.root.join("known_hosts").display()
                    ),
                ));
                key_file = Some(file);
            }
            None => {}
        }
        let mut command = tokio::process::Command::new("git");
        command
            .args(args)
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env("HOME", &self.root)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "/bin/false")
            .env("GIT_CONFIG_COUNT", config.len().to_string())
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (i, (key, value)) in config.iter().enumerate() {
            command.env(format!("GIT_CONFIG_KEY_{i}"), key);
            command.env(format!("GIT_CONFIG_VALUE_{i}"), value);
        }
        if let Some(dir) = dir {
            command.current_dir(dir).env("GIT_DIR", dir);
        }
        let output = tokio::time::timeout(self.timeout, command.output()).await;
        drop(key_file);
        let output = match output {
            Ok(out) => out.map_err(|e| GitError::Failed(format!("cannot run git: {e}")))?,
            Err(_) => {
                return Err(GitError::Unreachable(format!(
                    "git {} took longer than GIT_TIMEOUT_SECONDS ({}s)",
                    args.first().copied().unwrap_or(""),
                    self.timeout.as_secs()
                )))
            }
        };
        if output.status.success() {
            Ok(output.stdout)
        } else {
            let secret = access.credential.as_ref().map(Credential::secret);
            Err(GitError::from_stderr(&output.stderr, secret))
        }
    }

    /// An SSH key in a file of the server's (0600), removed when dropped.
    fn write_key(&self, key: &str) -> std::io::Result<tempfile::NamedTempFile> {
        use std::io::Write as _;
        let dir = self.root.join(".keys");
        std::fs::create_dir_all(&dir)?;
        let mut file = tempfile::Builder::new()
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .tempfile_in(&dir)?;
        file.write_all(key.as_bytes())?;
        if !key.ends_with('\n') {
            file.write_all(b"\n")?;
        }
        file.flush()?;
        Ok(file)
    }
}
