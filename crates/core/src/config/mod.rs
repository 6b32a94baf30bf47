//! Typed settings: defaults, then a `.env` file, then the environment.
//! Names follow the Python original where it had them. A bad value stops
//! startup with a message naming the variable.
//!
//! `Settings` is nested by subsystem (`settings.server`, `settings.sessions`,
//! …), one file per part; every variable, its default and its description
//! are in one table (`table.rs`), from which `config/example.env` and the
//! documentation's table are generated.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod agent;
mod cluster;
pub mod git;
mod jobs;
mod limits;
pub mod mcp;
mod model;
pub mod oidc;
mod parse;
mod server;
mod sessions;
mod storage;
pub mod table;

pub use agent::DiskSettings;
pub use cluster::{ClusterSettings, NodeSettings};
pub use jobs::{JobSettings, PipelineSettings, ScheduleSettings, WebhookSettings};
pub use limits::{ApprovalSettings, FileSettings, SnapshotSettings, TenancySettings};
pub use model::ModelSettings;
pub use server::{LogFormat, ServerSettings};
pub use sessions::SessionSettings;
pub use storage::StorageSettings;

/// Every setting of the server, by part. Built once and injected; there is
/// no global. A component takes the part it needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Binding, API keys, rate limits, client addresses, logs and metrics.
    pub server: ServerSettings,
    /// The server's state and the workspaces' root.
    pub storage: StorageSettings,
    /// The heartbeat, and the cluster this server may be one node of.
    pub node: NodeSettings,
    /// The CLI, session defaults and the life of CLI processes.
    pub sessions: SessionSettings,
    /// Jobs (`JOB_*`).
    pub jobs: JobSettings,
    /// Webhook deliveries (`WEBHOOK_*`).
    pub webhooks: WebhookSettings,
    /// Tool approvals (`APPROVAL_*`).
    pub approvals: ApprovalSettings,
    /// Uploads and downloads.
    pub files: FileSettings,
    /// Default limits and budgets of tenants.
    pub tenancy: TenancySettings,
    /// The model API and the server's credential for it. None of it reaches
    /// the CLI, which talks to the model gateway with a per-process token.
    pub model: ModelSettings,
    /// How each CLI process is confined (`AGENT_*`).
    pub sandbox: crate::sandbox::SandboxSettings,
    /// `AGENT_NETWORK`: what a sandboxed agent's network is, and the egress
    /// proxy's limits (`AGENT_EGRESS_*`).
    pub network: crate::sandbox::network::NetworkSettings,
    /// `AGENT_DISK_MAX_MB`: what a tenant's agents may keep on disk.
    pub disk: DiskSettings,
    /// Repositories, their credentials and `SECRETS_KEY` (`GIT_*`).
    pub git: git::GitSettings,
    /// Remote MCP servers reached through the server (`MCP_*`).
    pub mcp: mcp::McpSettings,
    /// Console sign-in with an OpenID Connect provider (`OIDC_*`, `PUBLIC_URL`).
    pub oidc: oidc::OidcSettings,
}

/// A secret setting: its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The CLI's own login refreshes here (found in the pinned CLI).
pub const DEFAULT_OAUTH_TOKEN_URL: &str = "https://platform.claude.com/v1/oauth/token";

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {name}={value:?}: {reason}")]
pub struct ConfigError {
    pub name: String,
    pub value: String,
    pub reason: String,
}

/// The server variables the CLI may see, by exact name: no prefix, because
/// a prefix such as `ANTHROPIC_` also passes credentials nobody listed
/// (`ANTHROPIC_FOUNDRY_API_KEY`, …). What a program needs, and the CLI's
/// switches that hold no secret; anything else only through
/// `CLAUDE_ENV_PASSTHROUGH`.
const CLI_ENV_NAMES: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TMPDIR",
    "TERM",
    "TZ",
    "IS_SANDBOX",
    "ANTHROPIC_MODEL",
    "ANTHROPIC_SMALL_FAST_MODEL",
    "ANTHROPIC_DEFAULT_OPUS_MODEL",
    "ANTHROPIC_DEFAULT_SONNET_MODEL",
    "ANTHROPIC_DEFAULT_HAIKU_MODEL",
    "CLAUDE_CODE_MAX_OUTPUT_TOKENS",
    "CLAUDE_CODE_MAX_RETRIES",
    "DISABLE_TELEMETRY",
    "DISABLE_AUTOUPDATER",
    "DISABLE_ERROR_REPORTING",
];
/// Model credentials and the model's address: the gateway's alone, never the
/// CLI's (the server sets its own values for the CLI).
pub const MODEL_ACCESS_NAMES: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_CUSTOM_HEADERS",
];

impl Settings {
    /// Reads `.env` (if present) and the process environment.
    pub fn from_env() -> Result<Settings, ConfigError> {
        // A missing .env is normal; a broken one is the operator's to see.
        if let Err(e) = dotenvy::dotenv() {
            if !e.not_found() {
                return Err(ConfigError {
                    name: ".env".into(),
                    value: String::new(),
                    reason: e.to_string(),
                });
            }
        }
        let vars: BTreeMap<String, String> = std::env::vars().collect();
        Settings::from_vars(&vars)
    }

    /// Builds settings from a map of variables (the environment, or a test's).
    pub fn from_vars(vars: &BTreeMap<String, String>) -> Result<Settings, ConfigError> {
        Settings::read(&parse::Env::new(vars))
    }

    fn read(env: &parse::Env) -> Result<Settings, ConfigError> {
        Ok(Settings {
            server: ServerSettings::read(env)?,
            storage: StorageSettings::read(env)?,
            node: NodeSettings::read(env)?,
            sessions: SessionSettings::read(env)?,
            jobs: JobSettings::read(env)?,
            webhooks: WebhookSettings::read(env)?,
            approvals: ApprovalSettings::read(env)?,
            files: FileSettings::read(env)?,
            tenancy: TenancySettings::read(env)?,
            model: ModelSettings::read(env)?,
            sandbox: agent::sandbox(env)?,
            network: agent::network(env)?,
            disk: DiskSettings::read(env)?,
            git: git::GitSettings::read(env)?,
            mcp: mcp::McpSettings::read(env)?,
            oidc: oidc::OidcSettings::read(env)?,
        })
    }

    /// Makes every path setting absolute against `cwd` (the server's working
    /// directory), once at start: the CLI runs with its workspace as working
    /// directory, where a relative path would name something else.
    pub fn with_absolute_paths(mut self, cwd: &Path) -> Settings {
        let absolute = |path: &Path| absolute_from(cwd, path);
        let storage = &mut self.storage;
        storage.approved_directory = absolute(&storage.approved_directory);
        storage.data_dir = absolute(&storage.data_dir);
        if let Some(path) = &storage.database_url {
            // A SQLite file path (not a URL) is a path like the others.
            if !path.contains("://") {
                storage.database_url =
                    Some(absolute(Path::new(path)).to_string_lossy().into_owned());
            }
        }
        let sessions = &mut self.sessions;
        sessions.templates_dir = sessions.templates_dir.as_deref().map(absolute);
        sessions.add_dirs = sessions.add_dirs.iter().map(|d| absolute(d)).collect();
        self.model.login_dir = self.model.login_dir.as_deref().map(absolute);
        self.model.prices_file = self.model.prices_file.as_deref().map(absolute);
        self.git.allowed_paths = self.git.allowed_paths.iter().map(|d| absolute(d)).collect();
        let cli = self.sessions.resolved_cli_path_from(cwd);
        self.sessions.cli_path = Some(cli);
        self
    }
}

impl SessionSettings {
    /// The CLI to run: `CLAUDE_CLI_PATH`, else `claude` on PATH, else the
    /// project-local install made by `scripts/install-cli.sh`. Absolute once
    /// `with_absolute_paths` has run.
    pub fn resolved_cli_path(&self) -> PathBuf {
        match std::env::current_dir() {
            Ok(cwd) => self.resolved_cli_path_from(&cwd),
            Err(_) => self.resolved_cli_path_from(Path::new(".")),
        }
    }

    fn resolved_cli_path_from(&self, cwd: &Path) -> PathBuf {
        if let Some(path) = &self.cli_path {
            if path.is_absolute() {
                return path.clone();
            }
            // A bare name is looked up on PATH, as a shell would.
            if path.components().count() == 1 {
                if let Some(found) = self
                    .cli_env
                    .get("PATH")
                    .and_then(|p| find_on_path(p, &path.to_string_lossy()))
                {
                    return absolute_from(cwd, &found);
                }
            }
            return absolute_from(cwd, path);
        }
        if let Some(found) = self
            .cli_env
            .get("PATH")
            .and_then(|p| find_on_path(p, "claude"))
        {
            return absolute_from(cwd, &found);
        }
        let local = cwd.join(".claude-cli/node_modules/.bin/claude");
        if local.exists() {
            return local;
        }
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.claude-cli/node_modules/.bin/claude")
    }
}

/// The allowlisted part of `vars`: the server's own secrets never reach the agent.
pub fn cli_env(
    vars: &BTreeMap<String, String>,
    passthrough: &[String],
) -> BTreeMap<String, String> {
    vars.iter()
        .filter(|(name, _)| !MODEL_ACCESS_NAMES.contains(&name.as_str()))
        .filter(|(name, _)| {
            CLI_ENV_NAMES.contains(&name.as_str()) || passthrough.iter().any(|p| p == *name)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `path` against `cwd`, without the `./` parts (`./data` → `<cwd>/data`).
pub fn absolute_from(cwd: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    let mut out = cwd.to_path_buf();
    out.extend(
        path.components()
            .filter(|c| !matches!(c, std::path::Component::CurDir)),
    );
    out
}

fn find_on_path(path: &str, name: &str) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Hides the password of a URL for error messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***{}", &url[..scheme_end], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_example_env_file_is_valid_settings() {
        let text = include_str!("../../../../config/example.env");
        let pairs: Vec<(&str, &str)> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .collect();
        assert!(pairs.len() > 30);
        Settings::from_vars(&vars(&pairs)).expect("config/example.env is valid");
    }

    #[test]
    fn every_variable_of_the_table_is_read() {
        let vars = vars(&[
            ("DATABASE_URL", "postgres://u@db/cca"),
            ("NODE_ADVERTISE_URL", "http://10.0.0.5:8000/"),
            ("CLUSTER_SECRET", "0123456789abcdef"),
        ]);
        let env = parse::Env::new(&vars);
        Settings::read(&env).unwrap();
        let read = env.read.borrow();
        for var in table::VARS {
            assert!(
                read.contains(var.name),
                "{} is listed but never read",
                var.name
            );
        }
    }

    #[test]
    fn a_secret_value_never_appears_in_an_error() {
        let err =
            Settings::from_vars(&vars(&[("ANTHROPIC_CUSTOM_HEADERS", "sk-ant-xyz")])).unwrap_err();
        assert_eq!(err.name, "ANTHROPIC_CUSTOM_HEADERS");
        assert!(!err.to_string().contains("sk-ant-xyz"), "{err}");
    }

    #[test]
    fn a_cluster_needs_postgresql_a_secret_and_an_http_url() {
        let pg = ("DATABASE_URL", "postgres://u@db/cca");
        let url = ("NODE_ADVERTISE_URL", "http://10.0.0.5:8000/");
        let secret = ("CLUSTER_SECRET", "0123456789abcdef");
        let alone = Settings::from_vars(&vars(&[pg])).unwrap();
        assert!(alone.node.cluster.is_none());
        assert_eq!(alone.node.heartbeat, Duration::from_secs(10));
        let node = Settings::from_vars(&vars(&[pg, url, secret])).unwrap();
        let cluster = node.node.cluster.as_ref().unwrap();
        assert_eq!(cluster.advertise_url, "http://10.0.0.5:8000");
        assert_eq!(node.node.heartbeat, Duration::from_secs(2));
        assert_eq!(node.node.lease_ttl(), Duration::from_secs(6));
        let refused = |pairs: &[(&str, &str)], name: &str| {
            let e = Settings::from_vars(&vars(pairs)).unwrap_err();
            assert_eq!(e.name, name, "{e:?}");
        };
        refused(&[url, secret], "NODE_ADVERTISE_URL");
        refused(
            &[("DATABASE_URL", "./data/x.db"), url, secret],
            "NODE_ADVERTISE_URL",
        );
        refused(&[pg, url], "CLUSTER_SECRET");
        refused(&[pg, url, ("CLUSTER_SECRET", "short")], "CLUSTER_SECRET");
        refused(
            &[pg, ("NODE_ADVERTISE_URL", "10.0.0.5:8000"), secret],
            "NODE_ADVERTISE_URL",
        );
    }

    #[test]
    fn relative_paths_become_absolute_against_the_working_directory() {
        let dir = tempfile::tempdir().unwrap();
        let cli = dir.path().join(".claude-cli/node_modules/.bin/claude");
        std::fs::create_dir_all(cli.parent().unwrap()).unwrap();
        std::fs::write(&cli, "").unwrap();
        let s = Settings::from_vars(&vars(&[
            ("PATH", "/nonexistent"),
            ("CLAUDE_ADD_DIRS", "shared,/abs"),
            ("TEMPLATES_DIR", "./tpl"),
        ]))
        .unwrap()
        .with_absolute_paths(dir.path());
        assert_eq!(s.storage.data_dir, dir.path().join("data"));
        assert_eq!(s.storage.approved_directory, dir.path().join("workspaces"));
        assert_eq!(s.sessions.templates_dir, Some(dir.path().join("tpl")));
        assert_eq!(
            s.sessions.add_dirs,
            vec![dir.path().join("shared"), PathBuf::from("/abs")]
        );
        // The project-local install, found from the working directory.
        assert_eq!(s.sessions.resolved_cli_path(), cli);
        let s = Settings::from_vars(&vars(&[("CLAUDE_CLI_PATH", "bin/claude")]))
            .unwrap()
            .with_absolute_paths(Path::new("/srv"));
        assert_eq!(s.sessions.resolved_cli_path(), Path::new("/srv/bin/claude"));
    }

    #[test]
    fn defaults_apply_when_unset() {
        let s = Settings::from_vars(&vars(&[])).expect("defaults are valid");
        assert_eq!(s.server.host, "127.0.0.1");
        assert_eq!(s.server.port, 8000);
        assert_eq!(s.sessions.max_turns, 25);
        assert_eq!(s.sessions.max_live, 8);
        assert_eq!(s.sessions.timeout, Duration::from_secs(300));
        assert_eq!(s.sessions.idle_timeout, Duration::from_secs(600));
        assert!(s.sessions.warm_on_create);
        assert_eq!(s.jobs.max_attempts, 2);
        assert_eq!(s.tenancy.max_running_turns, 4);
        assert_eq!(s.tenancy.max_cost_per_user_micros, None);
        let budget = Settings::from_vars(&vars(&[("CLAUDE_MAX_COST_PER_USER", "12.5")])).unwrap();
        assert_eq!(budget.tenancy.max_cost_per_user_micros, Some(12_500_000));
        let err = Settings::from_vars(&vars(&[("CLAUDE_MAX_COST_PER_REQUEST", "-1")])).unwrap_err();
        assert_eq!(err.name, "CLAUDE_MAX_COST_PER_REQUEST");
        assert_eq!(s.webhooks.timeout, Duration::from_secs(15));
        // At least 8 attempts over at least 24 hours.
        assert!(s.webhooks.retry_schedule.len() + 1 >= 8);
        let total: Duration = s.webhooks.retry_schedule.iter().sum();
        assert!(total >= Duration::from_secs(24 * 3600), "{total:?}");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = Settings::from_vars(&vars(&[("API_PORT", "eighty")])).unwrap_err();
        assert_eq!(err.name, "API_PORT");
        let err = Settings::from_vars(&vars(&[("MAX_LIVE_SESSIONS", "0")])).unwrap_err();
        assert_eq!(err.name, "MAX_LIVE_SESSIONS");
        let err = Settings::from_vars(&vars(&[("CLAUDE_PERMISSION_MODE", "yolo")])).unwrap_err();
        assert_eq!(err.name, "CLAUDE_PERMISSION_MODE");
        let err = Settings::from_vars(&vars(&[("WEBHOOK_SECRET", "whsec_%%%")])).unwrap_err();
        assert_eq!(err.name, "WEBHOOK_SECRET");
        let err =
            Settings::from_vars(&vars(&[("WEBHOOK_RETRY_SCHEDULE_SECONDS", "1,x")])).unwrap_err();
        assert_eq!(err.name, "WEBHOOK_RETRY_SCHEDULE_SECONDS");
        let err = Settings::from_vars(&vars(&[("DATABASE_URL", "mysql://u:pw@h/db")])).unwrap_err();
        assert_eq!(err.name, "DATABASE_URL");
        assert!(!err.to_string().contains("pw"), "password must be redacted");
    }

    #[test]
    fn upload_limit_and_templates_dir() {
        let s = Settings::from_vars(&vars(&[])).unwrap();
        assert_eq!(s.files.max_upload_bytes, 25 * 1024 * 1024);
        assert_eq!(s.sessions.templates_dir, None);
        let s =
            Settings::from_vars(&vars(&[("MAX_UPLOAD_MB", "2"), ("TEMPLATES_DIR", "/t")])).unwrap();
        assert_eq!(s.files.max_upload_bytes, 2 * 1024 * 1024);
        assert_eq!(s.sessions.templates_dir.as_deref(), Some(Path::new("/t")));
        let err = Settings::from_vars(&vars(&[("MAX_UPLOAD_MB", "0")])).unwrap_err();
        assert_eq!(err.name, "MAX_UPLOAD_MB");
        let err = Settings::from_vars(&vars(&[("MAX_UPLOAD_MB", "lots")])).unwrap_err();
        assert_eq!(err.name, "MAX_UPLOAD_MB");
    }

    #[test]
    fn cli_env_is_an_allowlist() {
        let env = cli_env(
            &vars(&[
                ("PATH", "/bin"),
                ("LC_ALL", "C"),
                ("ANTHROPIC_BASE_URL", "http://x"),
                ("ANTHROPIC_API_KEY", "sk-ant-real"),
                ("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat-real"),
                ("ANTHROPIC_MODEL", "m"),
                ("CLAUDE_CODE_MAX_RETRIES", "1"),
                ("DISABLE_TELEMETRY", "1"),
                ("DATABASE_URL", "postgres://secret"),
                ("API_KEYS", "k1"),
                ("WEBHOOK_SECRET", "whsec_x"),
                ("MY_TOOL_TOKEN", "t"),
                ("ANTHROPIC_AUTH_TOKEN", "t"),
                ("ANTHROPIC_FOUNDRY_API_KEY", "sk-foundry"),
                ("CLAUDE_CODE_SOMETHING", "s"),
                ("DISABLE_SOMETHING", "d"),
                ("LC_SECRET", "l"),
                ("OTHER", "o"),
            ]),
            &[
                "MY_TOOL_TOKEN".to_string(),
                "ANTHROPIC_AUTH_TOKEN".to_string(),
            ],
        );
        // Model credentials stay with the gateway, even when listed.
        let names: Vec<&str> = env.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "ANTHROPIC_MODEL",
                "CLAUDE_CODE_MAX_RETRIES",
                "DISABLE_TELEMETRY",
                "LC_ALL",
                "MY_TOOL_TOKEN",
                "PATH"
            ]
        );
    }
}
