//! `settings.sessions`: the CLI, the defaults of a session, and the life of
//! its process.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::parse::Env;
use super::{cli_env, ConfigError};
use crate::domain::session::PermissionMode;

#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// `CLAUDE_CLI_PATH`: the CLI binary (else `claude` on PATH, else the
    /// project-local install); absolute once `with_absolute_paths` has run.
    pub cli_path: Option<PathBuf>,
    /// `CLAUDE_MODEL`: default model for new sessions.
    pub model: Option<String>,
    /// `CLAUDE_MAX_TURNS`: default model round-trips per turn.
    pub max_turns: u32,
    /// `CLAUDE_TIMEOUT_SECONDS`: a turn with no CLI output for this long fails with 504.
    pub timeout: Duration,
    /// `CLAUDE_PERMISSION_MODE`: default permission mode.
    pub permission_mode: PermissionMode,
    /// `CLAUDE_ALLOWED_PERMISSION_MODES`: the modes any session, template or
    /// turn may use (default: all); a tenant may be narrowed further.
    pub allowed_permission_modes: Vec<PermissionMode>,
    /// `CLAUDE_ALLOWED_TOOLS`: default allowed tools.
    pub allowed_tools: Vec<String>,
    /// `CLAUDE_DISALLOWED_TOOLS`: default disallowed tools.
    pub disallowed_tools: Vec<String>,
    /// `CLAUDE_ENV_PASSTHROUGH`: extra variable names passed to the CLI.
    pub env_passthrough: Vec<String>,
    /// `CLAUDE_ADD_DIRS`: extra directories every CLI may read and write (`--add-dir`).
    pub add_dirs: Vec<PathBuf>,
    /// `MAX_LIVE_SESSIONS`: cap on live CLI processes.
    pub max_live: usize,
    /// `SESSION_IDLE_TIMEOUT_SECONDS`: an idle CLI process is stopped after this.
    pub idle_timeout: Duration,
    /// `WARM_ON_CREATE`: start a session's CLI process when the session is
    /// created (or its event stream opened) and a live slot is free, so its
    /// first turn does not wait for the start.
    pub warm_on_create: bool,
    /// `WARM_PRIME`: prime a process started ahead of a new conversation's
    /// first turn (see `actors::session::priming`).
    pub warm_prime: bool,
    /// `SHUTDOWN_GRACE_SECONDS`: how long running turns may finish on SIGTERM.
    pub shutdown_grace: Duration,
    /// `STORE_RETRY_SECONDS`: how long a failed session write is tried
    /// again before a turn's record goes to the spool.
    pub store_retry: Duration,
    /// `CHAT_QUEUE_TIMEOUT_SECONDS`: how long a chat waits for one of its
    /// tenant's turn permits before a 429.
    pub chat_queue_timeout: Duration,
    /// `EVENT_RETENTION_HOURS`: stored stream events older than this are purged.
    pub event_retention: Duration,
    /// `TEMPLATES_DIR`: folder of agent templates (else `templates/` in the
    /// working directory, else the set built into the binary).
    pub templates_dir: Option<PathBuf>,
    /// `DENY_PATTERNS`: case-insensitive substrings refused in prompts (a
    /// guard rail, off by default); lower-cased.
    pub deny_patterns: Vec<String>,
    /// The environment the CLI is started with, already filtered through the
    /// allowlist. Tests set it directly.
    pub cli_env: BTreeMap<String, String>,
}

impl SessionSettings {
    pub(super) fn read(env: &Env) -> Result<SessionSettings, ConfigError> {
        let passthrough = env.list("CLAUDE_ENV_PASSTHROUGH");
        let permission_mode: PermissionMode = env.parse("CLAUDE_PERMISSION_MODE")?;
        let allowed_permission_modes = match env.get("CLAUDE_ALLOWED_PERMISSION_MODES") {
            None => crate::domain::session::ALL_PERMISSION_MODES.to_vec(),
            Some(raw) => crate::domain::session::parse_modes(&raw)
                .map_err(|reason| env.error("CLAUDE_ALLOWED_PERMISSION_MODES", &raw, reason))?,
        };
        if !allowed_permission_modes.contains(&permission_mode) {
            return Err(env.error(
                "CLAUDE_PERMISSION_MODE",
                permission_mode.as_str(),
                "the default mode must be one of CLAUDE_ALLOWED_PERMISSION_MODES",
            ));
        }
        Ok(SessionSettings {
            cli_path: env.path("CLAUDE_CLI_PATH"),
            model: env.get("CLAUDE_MODEL"),
            max_turns: env.bounded("CLAUDE_MAX_TURNS", 1, 1000)?,
            timeout: env.seconds("CLAUDE_TIMEOUT_SECONDS", 1, 86_400)?,
            permission_mode,
            allowed_permission_modes,
            allowed_tools: env.list("CLAUDE_ALLOWED_TOOLS"),
            disallowed_tools: env.list("CLAUDE_DISALLOWED_TOOLS"),
            add_dirs: env
                .list("CLAUDE_ADD_DIRS")
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            max_live: env.bounded("MAX_LIVE_SESSIONS", 1, 10_000)?,
            idle_timeout: env.seconds("SESSION_IDLE_TIMEOUT_SECONDS", 1, u64::MAX / 2)?,
            warm_on_create: env.parse("WARM_ON_CREATE")?,
            warm_prime: env.parse("WARM_PRIME")?,
            shutdown_grace: env.seconds("SHUTDOWN_GRACE_SECONDS", 0, 3600)?,
            store_retry: env.seconds("STORE_RETRY_SECONDS", 0, 3600)?,
            chat_queue_timeout: env.seconds("CHAT_QUEUE_TIMEOUT_SECONDS", 1, 86_400)?,
            event_retention: Duration::from_secs(
                env.bounded("EVENT_RETENTION_HOURS", 1u64, 24 * 365 * 10)? * 3600,
            ),
            templates_dir: env.path("TEMPLATES_DIR"),
            deny_patterns: env
                .list("DENY_PATTERNS")
                .into_iter()
                .map(|p| p.to_lowercase())
                .collect(),
            cli_env: cli_env(env.vars(), &passthrough),
            env_passthrough: passthrough,
        })
    }
}
