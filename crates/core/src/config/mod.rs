//! Typed settings: defaults, then a `.env` file, then the environment.
//! Names follow the Python original where it had them. A bad value stops
//! startup with a message naming the variable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::domain::session::PermissionMode;

/// Every setting of the server. Built once and injected; there is no global.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `API_HOST`: address to bind (default 127.0.0.1).
    pub api_host: String,
    /// `API_PORT`: port to bind (default 8000; 0 picks a free one).
    pub api_port: u16,
    /// `API_KEYS`: comma-separated keys, each its own tenant.
    pub api_keys: Vec<String>,
    /// `APPROVED_DIRECTORY`: root of all workspaces (default ./workspaces).
    pub approved_directory: PathBuf,
    /// `DATA_DIR`: server state: SQLite file, CLI config dirs, pid files (default ./data).
    pub data_dir: PathBuf,
    /// `DATABASE_URL`: postgres://… for PostgreSQL; unset → SQLite in `DATA_DIR`.
    pub database_url: Option<String>,
    /// `CLAUDE_CLI_PATH`: the CLI binary (else `claude` on PATH, else the project-local install).
    pub claude_cli_path: Option<PathBuf>,
    /// `CLAUDE_MODEL`: default model for new sessions.
    pub claude_model: Option<String>,
    /// `CLAUDE_MAX_TURNS`: default model round-trips per turn (25).
    pub claude_max_turns: u32,
    /// `CLAUDE_TIMEOUT_SECONDS`: a turn with no CLI output for this long fails with 504 (300).
    pub claude_timeout: Duration,
    /// `CLAUDE_PERMISSION_MODE`: default permission mode (bypassPermissions).
    pub claude_permission_mode: PermissionMode,
    /// `CLAUDE_ALLOWED_PERMISSION_MODES`: the modes any session, template or
    /// turn may use (default: all); a tenant may be narrowed further.
    pub allowed_permission_modes: Vec<PermissionMode>,
    /// `CLAUDE_ALLOWED_TOOLS`: default allowed tools, comma-separated.
    pub claude_allowed_tools: Vec<String>,
    /// `CLAUDE_DISALLOWED_TOOLS`: default disallowed tools, comma-separated.
    pub claude_disallowed_tools: Vec<String>,
    /// `CLAUDE_ENV_PASSTHROUGH`: extra variable names passed to the CLI.
    pub claude_env_passthrough: Vec<String>,
    /// `MAX_LIVE_SESSIONS`: cap on live CLI processes (8).
    pub max_live_sessions: usize,
    /// `SESSION_IDLE_TIMEOUT_SECONDS`: an idle CLI process is stopped after this (600).
    pub session_idle_timeout: Duration,
    /// `WARM_ON_CREATE`: start a session's CLI process when the session is
    /// created (or its event stream opened) and a live slot is free, so its
    /// first turn does not wait for the start (true).
    pub warm_on_create: bool,
    /// `SHUTDOWN_GRACE_SECONDS`: how long running turns may finish on SIGTERM (30).
    pub shutdown_grace: Duration,
    /// `STORE_RETRY_SECONDS`: how long a failed session write is tried
    /// again before a turn's record goes to the spool (60).
    pub store_retry: Duration,
    /// `JOB_MAX_ATTEMPTS`: runs of a job cut short by a crash before it ends `interrupted` (2).
    pub job_max_attempts: u32,
    /// `WEBHOOK_SECRET`: `whsec_<base64>` signing secret; unset → generated once and stored.
    pub webhook_secret: Option<String>,
    /// `WEBHOOK_ALLOWED_HOSTS`: hosts exempt from the internal-address refusal.
    pub webhook_allowed_hosts: Vec<String>,
    /// `WEBHOOK_TIMEOUT_SECONDS`: one delivery attempt's time limit (15).
    pub webhook_timeout: Duration,
    /// `WEBHOOK_RETRY_SCHEDULE_SECONDS`: delays before each retry; its length + 1 attempts in all.
    pub webhook_retry_schedule: Vec<Duration>,
    /// `WEBHOOK_POLL_INTERVAL_MS`: how often due deliveries are looked for (1000).
    pub webhook_poll_interval: Duration,
    /// `NODE_ADVERTISE_URL` with a PostgreSQL `DATABASE_URL`: this server is
    /// one node of a cluster (see `cluster`); `None` runs alone.
    pub cluster: Option<ClusterSettings>,
    /// `NODE_HEARTBEAT_SECONDS`: how often this server says it is alive (2
    /// in a cluster, 10 alone); three missed beats and it counts as dead.
    pub node_heartbeat: Duration,
    /// `EVENT_RETENTION_HOURS`: stored stream events older than this are purged (72).
    pub event_retention: Duration,
    /// `APPROVAL_TIMEOUT_SECONDS`: a tool approval not answered in this time is denied (600).
    pub approval_timeout: Duration,
    /// `APPROVAL_HOLD_SECONDS`: how long a sync chat waiting on an approval holds
    /// the request before answering 202 with the approval's URL (5).
    pub approval_hold: Duration,
    /// `TEMPLATES_DIR`: folder of agent templates (else `templates/` in the
    /// working directory, else the set built into the binary).
    pub templates_dir: Option<PathBuf>,
    /// `MAX_UPLOAD_MB`: largest file upload, in bytes (25 MiB).
    pub max_upload_bytes: u64,
    /// `ARCHIVE_STALL_SECONDS`: an archive download whose client takes no data
    /// for this long is abandoned, freeing the thread that writes it (60).
    pub archive_stall: Duration,
    /// `CLAUDE_MAX_COST_PER_USER`: budget (micro-USD) of tenants made from `API_KEYS`; unset = none.
    pub max_cost_per_user_micros: Option<i64>,
    /// `CLAUDE_MAX_COST_PER_REQUEST`: cap (micro-USD) of one turn, passed as `--max-budget-usd`.
    pub max_cost_per_request_micros: Option<i64>,
    /// `BUDGET_RESERVATION_USD`: held per running turn of a budgeted tenant when no per-request cap is set (1.0).
    pub budget_reservation_micros: i64,
    /// `MAX_SESSIONS_PER_TENANT`: default cap on a tenant's sessions (100).
    pub max_sessions_per_tenant: i64,
    /// `MAX_RUNNING_TURNS_PER_TENANT`: default cap on a tenant's concurrently running turns (4).
    pub max_running_turns_per_tenant: i64,
    /// `CHAT_QUEUE_TIMEOUT_SECONDS`: how long a chat waits for one of its tenant's turn permits before a 429 (60).
    pub chat_queue_timeout: Duration,
    /// `RATE_LIMIT_REQUESTS` per `RATE_LIMIT_WINDOW` seconds, per key (120 per 60).
    pub rate_limit_requests: u32,
    pub rate_limit_window: Duration,
    /// `AUTH_FAILURE_LIMIT`: failed authentications per minute from one client
    /// address before its requests with a key get a 429 (20; 0: no limit).
    pub auth_failure_limit: u32,
    /// `TRUSTED_PROXIES`: addresses or networks of reverse proxies whose
    /// `X-Forwarded-For` names the client (none: the socket's peer is the client).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `DENY_PATTERNS`: case-insensitive substrings refused in prompts (a guard rail, off by default).
    pub deny_patterns: Vec<String>,
    /// `CLAUDE_ADD_DIRS`: extra directories every CLI may read and write (`--add-dir`).
    pub claude_add_dirs: Vec<PathBuf>,
    /// `METRICS_ADDR`: `host:port` of a separate listener serving Prometheus
    /// `/metrics` (unset: no metrics endpoint). Keep it on a private address.
    pub metrics_addr: Option<String>,
    /// `LOG_LEVEL`: tracing filter (info).
    pub log_level: String,
    /// `LOG_FORMAT`: `text` or `json`.
    pub log_format: LogFormat,
    /// The environment the CLI is started with, already filtered through the
    /// allowlist. Tests set it directly.
    pub cli_env: BTreeMap<String, String>,
    /// The model API and the server's credential for it. None of it reaches
    /// the CLI, which talks to the model gateway with a per-process token.
    pub model: ModelSettings,
    /// How each CLI process is confined (`AGENT_*`).
    pub sandbox: crate::sandbox::SandboxSettings,
    /// `AGENT_NETWORK` (`proxy`): what a sandboxed agent's network is, and
    /// the egress proxy's limits (`AGENT_EGRESS_*`).
    pub agent_network: crate::sandbox::network::NetworkSettings,
    /// `AGENT_DISK_MAX_MB`: what a tenant's agents may keep on disk (its
    /// workspaces and CLI state), MiB, unless the tenant has its own (10240).
    pub agent_disk_max_mb: u64,
}

/// Where the model API is, and the server's own credential for it.
#[derive(Debug, Clone)]
pub struct ModelSettings {
    /// `ANTHROPIC_BASE_URL`: the model API the gateway forwards to
    /// (default `https://api.anthropic.com`).
    pub base_url: String,
    /// `ANTHROPIC_API_KEY`.
    pub api_key: Option<Secret>,
    /// `ANTHROPIC_AUTH_TOKEN`: a bearer token (e.g. of an LLM proxy).
    pub auth_token: Option<Secret>,
    /// `CLAUDE_CODE_OAUTH_TOKEN`: a long-lived token from `claude setup-token`.
    pub oauth_token: Option<Secret>,
    /// `ANTHROPIC_CUSTOM_HEADERS`: extra `Name: value` lines sent upstream.
    pub custom_headers: Vec<(String, String)>,
    /// The server user's Claude config folder (`CLAUDE_CONFIG_DIR`, else
    /// `~/.claude`): its `.credentials.json` is the `claude auth login`.
    pub login_dir: Option<PathBuf>,
    /// `CLAUDE_OAUTH_TOKEN_URL`: where a login's access token is refreshed.
    pub oauth_token_url: String,
    /// `MODEL_GATEWAY_ADDR`: the gateway's loopback address (`127.0.0.1:0`:
    /// any free port).
    pub gateway_addr: String,
    /// `MODEL_PRICES_FILE`: the price table instead of the built-in one.
    pub prices_file: Option<PathBuf>,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

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
        let get = |name: &str| {
            vars.get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let passthrough = list(get("CLAUDE_ENV_PASSTHROUGH"));
        let settings = Settings {
            api_host: get("API_HOST").unwrap_or_else(|| "127.0.0.1".into()),
            api_port: parse(&get, "API_PORT", 8000)?,
            api_keys: list(get("API_KEYS")),
            approved_directory: get("APPROVED_DIRECTORY")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("./workspaces")),
            data_dir: get("DATA_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("./data")),
            database_url: get("DATABASE_URL"),
            claude_cli_path: get("CLAUDE_CLI_PATH").map(PathBuf::from),
            claude_model: get("CLAUDE_MODEL"),
            claude_max_turns: parse_bounded(&get, "CLAUDE_MAX_TURNS", 25, 1, 1000)?,
            claude_timeout: Duration::from_secs(parse_bounded(
                &get,
                "CLAUDE_TIMEOUT_SECONDS",
                300,
                1,
                86_400,
            )?),
            claude_permission_mode: parse(
                &get,
                "CLAUDE_PERMISSION_MODE",
                PermissionMode::BypassPermissions,
            )?,
            allowed_permission_modes: match get("CLAUDE_ALLOWED_PERMISSION_MODES") {
                None => crate::domain::session::ALL_PERMISSION_MODES.to_vec(),
                Some(raw) => {
                    crate::domain::session::parse_modes(&raw).map_err(|reason| ConfigError {
                        name: "CLAUDE_ALLOWED_PERMISSION_MODES".into(),
                        value: raw.clone(),
                        reason,
                    })?
                }
            },
            claude_allowed_tools: list(get("CLAUDE_ALLOWED_TOOLS")),
            claude_disallowed_tools: list(get("CLAUDE_DISALLOWED_TOOLS")),
            max_live_sessions: parse_bounded(&get, "MAX_LIVE_SESSIONS", 8, 1, 10_000)?,
            session_idle_timeout: Duration::from_secs(parse_bounded(
                &get,
                "SESSION_IDLE_TIMEOUT_SECONDS",
                600,
                1,
                u64::MAX / 2,
            )?),
            warm_on_create: parse(&get, "WARM_ON_CREATE", true)?,
            shutdown_grace: Duration::from_secs(parse_bounded(
                &get,
                "SHUTDOWN_GRACE_SECONDS",
                30,
                0,
                3600,
            )?),
            store_retry: Duration::from_secs(parse_bounded(
                &get,
                "STORE_RETRY_SECONDS",
                60,
                0,
                3600,
            )?),
            job_max_attempts: parse_bounded(&get, "JOB_MAX_ATTEMPTS", 2, 1, 100)?,
            webhook_secret: match get("WEBHOOK_SECRET") {
                None => None,
                Some(raw) => {
                    crate::webhooks::signing::WebhookSecret::parse(&raw).map_err(|reason| {
                        ConfigError {
                            name: "WEBHOOK_SECRET".into(),
                            value: "(hidden)".into(),
                            reason,
                        }
                    })?;
                    Some(raw)
                }
            },
            webhook_allowed_hosts: list(get("WEBHOOK_ALLOWED_HOSTS")),
            webhook_timeout: Duration::from_secs(parse_bounded(
                &get,
                "WEBHOOK_TIMEOUT_SECONDS",
                15,
                1,
                300,
            )?),
            webhook_retry_schedule: retry_schedule(get("WEBHOOK_RETRY_SCHEDULE_SECONDS"))?,
            webhook_poll_interval: Duration::from_millis(parse_bounded(
                &get,
                "WEBHOOK_POLL_INTERVAL_MS",
                1000,
                10,
                60_000,
            )?),
            cluster: cluster_settings(&get)?,
            node_heartbeat: Duration::from_secs_f64(parse_bounded(
                &get,
                "NODE_HEARTBEAT_SECONDS",
                if get("NODE_ADVERTISE_URL").is_some() {
                    2.0
                } else {
                    10.0
                },
                0.2,
                60.0,
            )?),
            event_retention: Duration::from_secs(
                parse_bounded(&get, "EVENT_RETENTION_HOURS", 72u64, 1, 24 * 365 * 10)? * 3600,
            ),
            approval_timeout: Duration::from_secs(parse_bounded(
                &get,
                "APPROVAL_TIMEOUT_SECONDS",
                600,
                1,
                86_400,
            )?),
            approval_hold: Duration::from_secs(parse_bounded(
                &get,
                "APPROVAL_HOLD_SECONDS",
                5,
                0,
                3600,
            )?),
            templates_dir: get("TEMPLATES_DIR").map(PathBuf::from),
            archive_stall: Duration::from_secs(parse_bounded(
                &get,
                "ARCHIVE_STALL_SECONDS",
                60,
                1,
                86_400,
            )?),
            max_upload_bytes: parse_bounded(&get, "MAX_UPLOAD_MB", 25u64, 1, 1024 * 1024)?
                * 1024
                * 1024,
            max_cost_per_user_micros: usd_micros(&get, "CLAUDE_MAX_COST_PER_USER")?,
            max_cost_per_request_micros: usd_micros(&get, "CLAUDE_MAX_COST_PER_REQUEST")?,
            budget_reservation_micros: usd_micros(&get, "BUDGET_RESERVATION_USD")?
                .unwrap_or(1_000_000),
            max_sessions_per_tenant: parse_bounded(
                &get,
                "MAX_SESSIONS_PER_TENANT",
                100,
                1,
                1_000_000,
            )?,
            max_running_turns_per_tenant: parse_bounded(
                &get,
                "MAX_RUNNING_TURNS_PER_TENANT",
                4,
                1,
                10_000,
            )?,
            chat_queue_timeout: Duration::from_secs(parse_bounded(
                &get,
                "CHAT_QUEUE_TIMEOUT_SECONDS",
                60,
                1,
                86_400,
            )?),
            rate_limit_requests: parse_bounded(&get, "RATE_LIMIT_REQUESTS", 120, 1, 1_000_000)?,
            rate_limit_window: Duration::from_secs(parse_bounded(
                &get,
                "RATE_LIMIT_WINDOW",
                60,
                1,
                86_400,
            )?),
            auth_failure_limit: parse_bounded(&get, "AUTH_FAILURE_LIMIT", 20, 0, 1_000_000)?,
            trusted_proxies: {
                let raw = list(get("TRUSTED_PROXIES"));
                crate::security::client::parse_networks(&raw).map_err(|reason| ConfigError {
                    name: "TRUSTED_PROXIES".into(),
                    value: raw.join(","),
                    reason,
                })?
            },
            deny_patterns: list(get("DENY_PATTERNS"))
                .into_iter()
                .map(|p| p.to_lowercase())
                .collect(),
            claude_add_dirs: list(get("CLAUDE_ADD_DIRS"))
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            metrics_addr: get("METRICS_ADDR"),
            log_level: get("LOG_LEVEL").unwrap_or_else(|| "info".into()),
            log_format: match get("LOG_FORMAT").as_deref() {
                None | Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(other) => {
                    return Err(ConfigError {
                        name: "LOG_FORMAT".into(),
                        value: other.into(),
                        reason: "expected text or json".into(),
                    })
                }
            },
            cli_env: cli_env(vars, &passthrough),
            claude_env_passthrough: passthrough,
            model: ModelSettings {
                base_url: get("ANTHROPIC_BASE_URL")
                    .unwrap_or_else(|| "https://api.anthropic.com".into()),
                api_key: get("ANTHROPIC_API_KEY").map(Secret),
                auth_token: get("ANTHROPIC_AUTH_TOKEN").map(Secret),
                oauth_token: get("CLAUDE_CODE_OAUTH_TOKEN").map(Secret),
                custom_headers: custom_headers(get("ANTHROPIC_CUSTOM_HEADERS"))?,
                login_dir: get("CLAUDE_CONFIG_DIR")
                    .map(PathBuf::from)
                    .or_else(|| get("HOME").map(|home| Path::new(&home).join(".claude"))),
                oauth_token_url: get("CLAUDE_OAUTH_TOKEN_URL")
                    .unwrap_or_else(|| DEFAULT_OAUTH_TOKEN_URL.into()),
                gateway_addr: get("MODEL_GATEWAY_ADDR").unwrap_or_else(|| "127.0.0.1:0".into()),
                prices_file: get("MODEL_PRICES_FILE").map(PathBuf::from),
            },
            sandbox: crate::sandbox::SandboxSettings {
                mode: parse(&get, "AGENT_SANDBOX", crate::sandbox::Mode::Auto)?,
                agent_uid: parse_bounded(&get, "AGENT_UID", 10_900, 1, u32::MAX - 1)?,
                agent_gid: parse_bounded(&get, "AGENT_GID", 10_900, 1, u32::MAX - 1)?,
                agent_uid_count: parse_bounded(&get, "AGENT_UID_COUNT", 10_000, 1, 1 << 24)?,
                seccomp: parse(&get, "AGENT_SECCOMP", true)?,
                tmp_max_mb: parse_bounded(&get, "AGENT_TMP_MAX_MB", 512, 1, 1 << 20)?,
                limits: crate::sandbox::Limits {
                    memory_max_mb: parse_bounded(&get, "AGENT_MEMORY_MAX_MB", 2048, 64, 1 << 20)?,
                    pids_max: parse_bounded(&get, "AGENT_PIDS_MAX", 512, 16, 1 << 22)?,
                    cpu_max: match get("AGENT_CPU_MAX") {
                        None => None,
                        Some(_) => Some(parse_bounded(&get, "AGENT_CPU_MAX", 1.0, 0.05, 1024.0)?),
                    },
                },
            },
            agent_network: crate::sandbox::network::NetworkSettings {
                mode: parse(
                    &get,
                    "AGENT_NETWORK",
                    crate::sandbox::network::NetworkMode::Proxy,
                )?,
                relay_program: None,
                egress: crate::egress::EgressSettings {
                    private_hosts: list(get("AGENT_EGRESS_PRIVATE_HOSTS")),
                    max_connections: parse_bounded(
                        &get,
                        "AGENT_EGRESS_MAX_CONNECTIONS",
                        64,
                        1,
                        4096,
                    )?,
                    idle_timeout: Duration::from_secs(parse_bounded(
                        &get,
                        "AGENT_EGRESS_IDLE_TIMEOUT_SECONDS",
                        300,
                        1,
                        86_400,
                    )?),
                },
            },
            agent_disk_max_mb: parse_bounded(&get, "AGENT_DISK_MAX_MB", 10_240, 1, 1 << 30)?,
        };
        if !settings
            .allowed_permission_modes
            .contains(&settings.claude_permission_mode)
        {
            return Err(ConfigError {
                name: "CLAUDE_PERMISSION_MODE".into(),
                value: settings.claude_permission_mode.as_str().into(),
                reason: "the default mode must be one of CLAUDE_ALLOWED_PERMISSION_MODES".into(),
            });
        }
        if url::Url::parse(&settings.model.base_url).is_err() {
            return Err(ConfigError {
                name: "ANTHROPIC_BASE_URL".into(),
                value: settings.model.base_url.clone(),
                reason: "expected an http(s) URL".into(),
            });
        }
        if let Some(url) = &settings.database_url {
            let known = ["postgres://", "postgresql://", "sqlite://"];
            if url.contains("://") && !known.iter().any(|s| url.starts_with(s)) {
                return Err(ConfigError {
                    name: "DATABASE_URL".into(),
                    value: redact_url(url),
                    reason: "expected postgres://…, postgresql://…, sqlite://… or a file path"
                        .into(),
                });
            }
        }
        Ok(settings)
    }

    /// A session lease's length: three heartbeats.
    pub fn lease_ttl(&self) -> Duration {
        self.node_heartbeat * 3
    }

    /// The database URL in force: `DATABASE_URL`, else the SQLite file.
    pub fn effective_database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            self.data_dir
                .join("claude-code-api.db")
                .to_string_lossy()
                .into_owned()
        })
    }

    /// Makes every path setting absolute against `cwd` (the server's working
    /// directory), once at start: the CLI runs with its workspace as working
    /// directory, where a relative path would name something else.
    pub fn with_absolute_paths(mut self, cwd: &Path) -> Settings {
        let absolute = |path: &Path| absolute_from(cwd, path);
        self.approved_directory = absolute(&self.approved_directory);
        self.data_dir = absolute(&self.data_dir);
        self.templates_dir = self.templates_dir.as_deref().map(absolute);
        self.claude_add_dirs = self.claude_add_dirs.iter().map(|d| absolute(d)).collect();
        if let Some(path) = &self.database_url {
            // A SQLite file path (not a URL) is a path like the others.
            if !path.contains("://") {
                self.database_url = Some(absolute(Path::new(path)).to_string_lossy().into_owned());
            }
        }
        self.model.login_dir = self.model.login_dir.as_deref().map(absolute);
        self.model.prices_file = self.model.prices_file.as_deref().map(absolute);
        let cli = self.resolved_cli_path_from(cwd);
        self.claude_cli_path = Some(cli);
        self
    }

    /// `effective_database_url` with any password hidden, for logs and `/health`.
    pub fn effective_database_url_redacted(&self) -> String {
        redact_url(&self.effective_database_url())
    }

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
        if let Some(path) = &self.claude_cli_path {
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

/// `Name: value` lines (newline-separated), as the CLI reads them.
fn custom_headers(value: Option<String>) -> Result<Vec<(String, String)>, ConfigError> {
    let Some(raw) = value else {
        return Ok(Vec::new());
    };
    raw.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| match line.split_once(':') {
            Some((name, value)) if !name.trim().is_empty() => {
                Ok((name.trim().to_owned(), value.trim().to_owned()))
            }
            _ => Err(ConfigError {
                name: "ANTHROPIC_CUSTOM_HEADERS".into(),
                value: "(hidden)".into(),
                reason: "expected one `Name: value` per line".into(),
            }),
        })
        .collect()
}

/// Delays between webhook attempts: quick at first, then hours; 9 attempts
/// over about 24.3 hours by default.
const DEFAULT_RETRY_SCHEDULE: &str = "5,30,120,900,3600,10800,28800,43200";

fn retry_schedule(value: Option<String>) -> Result<Vec<Duration>, ConfigError> {
    let raw = value.unwrap_or_else(|| DEFAULT_RETRY_SCHEDULE.to_owned());
    let delays: Result<Vec<u64>, _> = raw.split(',').map(|s| s.trim().parse::<u64>()).collect();
    match delays {
        Ok(delays) if !delays.is_empty() && delays.len() <= 50 => {
            Ok(delays.into_iter().map(Duration::from_secs).collect())
        }
        _ => Err(ConfigError {
            name: "WEBHOOK_RETRY_SCHEDULE_SECONDS".into(),
            value: raw,
            reason: "expected 1 to 50 comma-separated whole seconds".into(),
        }),
    }
}

/// An amount of USD given as a decimal, as micro-USD; must be positive.
fn usd_micros(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
) -> Result<Option<i64>, ConfigError> {
    let Some(raw) = get(name) else {
        return Ok(None);
    };
    match raw.parse::<f64>() {
        Ok(usd) if usd.is_finite() && usd > 0.0 && usd < 1e9 => {
            Ok(Some((usd * 1_000_000.0).round() as i64))
        }
        _ => Err(ConfigError {
            name: name.into(),
            value: raw,
            reason: "expected a positive amount of USD, e.g. 12.50".into(),
        }),
    }
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

fn list(value: Option<String>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn parse<T: FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: T,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match get(name) {
        None => Ok(default),
        Some(raw) => raw.parse().map_err(|e: T::Err| ConfigError {
            name: name.into(),
            value: raw.clone(),
            reason: e.to_string(),
        }),
    }
}

fn parse_bounded<T>(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + std::fmt::Display + Copy,
    T::Err: std::fmt::Display,
{
    let value = parse(get, name, default)?;
    if value < min || value > max {
        return Err(ConfigError {
            name: name.into(),
            value: value.to_string(),
            reason: format!("must be between {min} and {max}"),
        });
    }
    Ok(value)
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

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_example_env_file_is_valid_settings() {
        let text = include_str!("../../../config/example.env");
        let pairs: Vec<(&str, &str)> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .collect();
        assert!(pairs.len() > 30);
        Settings::from_vars(&vars(&pairs)).expect("config/example.env is valid");
    }

    #[test]
    fn a_cluster_needs_postgresql_a_secret_and_an_http_url() {
        let pg = ("DATABASE_URL", "postgres://u@db/cca");
        let url = ("NODE_ADVERTISE_URL", "http://10.0.0.5:8000/");
        let secret = ("CLUSTER_SECRET", "0123456789abcdef");
        let alone = Settings::from_vars(&vars(&[pg])).unwrap();
        assert!(alone.cluster.is_none());
        assert_eq!(alone.node_heartbeat, Duration::from_secs(10));
        let node = Settings::from_vars(&vars(&[pg, url, secret])).unwrap();
        let cluster = node.cluster.as_ref().unwrap();
        assert_eq!(cluster.advertise_url, "http://10.0.0.5:8000");
        assert_eq!(node.node_heartbeat, Duration::from_secs(2));
        assert_eq!(node.lease_ttl(), Duration::from_secs(6));
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
        assert_eq!(s.data_dir, dir.path().join("data"));
        assert_eq!(s.approved_directory, dir.path().join("workspaces"));
        assert_eq!(s.templates_dir, Some(dir.path().join("tpl")));
        assert_eq!(
            s.claude_add_dirs,
            vec![dir.path().join("shared"), PathBuf::from("/abs")]
        );
        // The project-local install, found from the working directory.
        assert_eq!(s.resolved_cli_path(), cli);
        let s = Settings::from_vars(&vars(&[("CLAUDE_CLI_PATH", "bin/claude")]))
            .unwrap()
            .with_absolute_paths(Path::new("/srv"));
        assert_eq!(s.resolved_cli_path(), Path::new("/srv/bin/claude"));
    }

    #[test]
    fn defaults_apply_when_unset() {
        let s = Settings::from_vars(&vars(&[])).expect("defaults are valid");
        assert_eq!(s.api_host, "127.0.0.1");
        assert_eq!(s.api_port, 8000);
        assert_eq!(s.claude_max_turns, 25);
        assert_eq!(s.max_live_sessions, 8);
        assert_eq!(s.claude_timeout, Duration::from_secs(300));
        assert_eq!(s.session_idle_timeout, Duration::from_secs(600));
        assert!(s.warm_on_create);
        assert_eq!(s.job_max_attempts, 2);
        assert_eq!(s.max_running_turns_per_tenant, 4);
        assert_eq!(s.max_cost_per_user_micros, None);
        let budget = Settings::from_vars(&vars(&[("CLAUDE_MAX_COST_PER_USER", "12.5")])).unwrap();
        assert_eq!(budget.max_cost_per_user_micros, Some(12_500_000));
        let err = Settings::from_vars(&vars(&[("CLAUDE_MAX_COST_PER_REQUEST", "-1")])).unwrap_err();
        assert_eq!(err.name, "CLAUDE_MAX_COST_PER_REQUEST");
        assert_eq!(s.webhook_timeout, Duration::from_secs(15));
        // At least 8 attempts over at least 24 hours.
        assert!(s.webhook_retry_schedule.len() + 1 >= 8);
        let total: Duration = s.webhook_retry_schedule.iter().sum();
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
        assert_eq!(s.max_upload_bytes, 25 * 1024 * 1024);
        assert_eq!(s.templates_dir, None);
        let s =
            Settings::from_vars(&vars(&[("MAX_UPLOAD_MB", "2"), ("TEMPLATES_DIR", "/t")])).unwrap();
        assert_eq!(s.max_upload_bytes, 2 * 1024 * 1024);
        assert_eq!(s.templates_dir.as_deref(), Some(Path::new("/t")));
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

/// How this node of a cluster is reached and proves itself to the others.
#[derive(Clone)]
pub struct ClusterSettings {
    /// `NODE_ADVERTISE_URL`: where the other nodes reach this one
    /// (`http://10.0.0.5:8000`), for the requests they forward.
    pub advertise_url: String,
    /// `CLUSTER_SECRET`: shared by every node; signs forwarded requests.
    pub secret: Secret,
}

impl std::fmt::Debug for ClusterSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSettings")
            .field("advertise_url", &self.advertise_url)
            .finish_non_exhaustive()
    }
}

/// The cluster settings: all or nothing. `NODE_ADVERTISE_URL` asks for a
/// cluster, which needs PostgreSQL (the only coordinator) and a secret.
fn cluster_settings(
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<ClusterSettings>, ConfigError> {
    let Some(advertise_url) = get("NODE_ADVERTISE_URL") else {
        return Ok(None);
    };
    let bad = |name: &str, value: &str, reason: &str| ConfigError {
        name: name.into(),
        value: value.into(),
        reason: reason.into(),
    };
    match url::Url::parse(&advertise_url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        _ => {
            return Err(bad(
                "NODE_ADVERTISE_URL",
                &advertise_url,
                "expected an http(s) URL",
            ))
        }
    }
    let postgres = get("DATABASE_URL")
        .is_some_and(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"));
    if !postgres {
        return Err(bad(
            "NODE_ADVERTISE_URL",
            &advertise_url,
            "a cluster needs a PostgreSQL DATABASE_URL shared by its nodes",
        ));
    }
    let secret = get("CLUSTER_SECRET").unwrap_or_default();
    if secret.len() < 16 {
        return Err(bad(
            "CLUSTER_SECRET",
            "(hidden)",
            "a cluster needs a secret of at least 16 characters, the same on every node",
        ));
    }
    Ok(Some(ClusterSettings {
        advertise_url: advertise_url.trim_end_matches('/').to_owned(),
        secret: Secret(secret),
    }))
}
