//! `settings.git`: repositories, their credentials and the key that
//! encrypts them.

use std::path::PathBuf;
use std::time::Duration;

use super::parse::Env;
use super::ConfigError;

#[derive(Debug, Clone)]
pub struct GitSettings {
    /// `SECRETS_KEY`: 32 bytes, base64; `None` → generated into `DATA_DIR`.
    pub secrets_key: Option<[u8; 32]>,
    /// `GIT_ALLOWED_HOSTS`: hosts a remote (or a provider API) may be on
    /// even when plain `http://`, on loopback or on a private address.
    pub allowed_hosts: Vec<String>,
    /// `GIT_ALLOWED_PATHS`: folders of the host whose repositories may be
    /// registered by local path.
    pub allowed_paths: Vec<PathBuf>,
    /// `GIT_TIMEOUT_SECONDS`: one clone, fetch or push.
    pub timeout: Duration,
    /// `GIT_MAX_REPOS`: repositories one tenant may register.
    pub max_repos: i64,
    /// `GIT_MAX_DIFF_MB`: the largest diff a session's `/diff` answers.
    pub max_diff_bytes: usize,
    /// `GIT_MAX_PUSH_MB`: the largest bundle of new commits a push takes
    /// from a worktree.
    pub max_push_bytes: u64,
}

impl GitSettings {
    pub(super) fn read(env: &Env) -> Result<GitSettings, ConfigError> {
        let secrets_key = match env.get("SECRETS_KEY") {
            Some(raw) => Some(parse_key(&raw).map_err(|reason| ConfigError {
                name: "SECRETS_KEY".into(),
                // A credential: never echoed.
                value: "<hidden>".into(),
                reason,
            })?),
            None => None,
        };
        Ok(GitSettings {
            secrets_key,
            allowed_hosts: env.list("GIT_ALLOWED_HOSTS"),
            allowed_paths: env
                .list("GIT_ALLOWED_PATHS")
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            timeout: env.seconds("GIT_TIMEOUT_SECONDS", 5, 3600)?,
            max_repos: env.bounded("GIT_MAX_REPOS", 1, 10_000)?,
            max_diff_bytes: env.bounded::<usize>("GIT_MAX_DIFF_MB", 1, 1024)? * 1024 * 1024,
            max_push_bytes: env.bounded::<u64>("GIT_MAX_PUSH_MB", 1, 1 << 20)? * 1024 * 1024,
        })
    }
}

/// 32 bytes of standard base64 (padded or not).
pub fn parse_key(raw: &str) -> Result<[u8; 32], String> {
    use base64::Engine as _;
    let raw = raw.trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(raw))
        .map_err(|_| "expected 32 bytes in base64 (openssl rand -base64 32)".to_owned())?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("expected 32 bytes, got {}", b.len()))
}
