//! The one list of the server's variables. The parser reads names and
//! defaults from it; `config/example.env` (`claude-code-api config
//! example-env`) and the table of the configuration chapter (`claude-code-api
//! config docs-table`) are generated from it, and a test keeps both in step.

/// Which part of [`super::Settings`] a variable belongs to, in the order the
/// generated file and table list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Server,
    Storage,
    Cluster,
    Sessions,
    Model,
    Sandbox,
    Network,
    Disk,
    Approvals,
    Files,
    Jobs,
    Webhooks,
    Git,
    Mcp,
    SignIn,
    Tenancy,
    Logs,
}

impl Part {
    pub const ALL: [Part; 17] = [
        Part::Server,
        Part::Storage,
        Part::Cluster,
        Part::Sessions,
        Part::Model,
        Part::Sandbox,
        Part::Network,
        Part::Disk,
        Part::Approvals,
        Part::Files,
        Part::Jobs,
        Part::Webhooks,
        Part::Git,
        Part::Mcp,
        Part::SignIn,
        Part::Tenancy,
        Part::Logs,
    ];

    /// The heading of its section in `config/example.env`.
    pub fn title(self) -> &'static str {
        match self {
            Part::Server => "HTTP (settings.server)",
            Part::Storage => "Storage (settings.storage)",
            Part::Cluster => "Cluster (settings.node)",
            Part::Sessions => "Sessions and the Claude Code CLI (settings.sessions)",
            Part::Model => "Model access through the server's gateway (settings.model)",
            Part::Sandbox => "The agent's sandbox (settings.sandbox)",
            Part::Network => "The agent's network (settings.network)",
            Part::Disk => "The agent's disk (settings.disk)",
            Part::Approvals => "Tool approvals (settings.approvals)",
            Part::Files => "Files (settings.files)",
            Part::Jobs => "Jobs (settings.jobs)",
            Part::Webhooks => "Webhooks (settings.webhooks)",
            Part::Git => "Repositories and their credentials (settings.git)",
            Part::Mcp => "Remote MCP servers of sessions (settings.mcp)",
            Part::SignIn => "Console sign-in with an OpenID Connect provider (settings.oidc)",
            Part::Tenancy => "Tenants, limits, budgets (settings.tenancy)",
            Part::Logs => "Logs and metrics (settings.server)",
        }
    }
}

/// What an unset variable means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfUnset {
    /// This value, read exactly as if it were set.
    Value(&'static str),
    /// No value; the text says what that means ("" = nothing).
    Unset(&'static str),
}

/// One variable.
#[derive(Debug, Clone, Copy)]
pub struct Var {
    pub name: &'static str,
    pub part: Part,
    pub default: IfUnset,
    /// One line: the documentation table's "What it does".
    pub about: &'static str,
    /// More comment for `config/example.env` (wrapped there), or "".
    pub more: &'static str,
    /// The line in `config/example.env`; "" = `NAME=<default>` (commented
    /// out for a secret).
    pub example: &'static str,
    /// A credential: its value never appears in an error.
    pub secret: bool,
}

const fn var(name: &'static str, part: Part, default: IfUnset, about: &'static str) -> Var {
    Var {
        name,
        part,
        default,
        about,
        more: "",
        example: "",
        secret: false,
    }
}

impl Var {
    const fn more(self, more: &'static str) -> Var {
        Var { more, ..self }
    }

    const fn example(self, example: &'static str) -> Var {
        Var { example, ..self }
    }

    const fn secret(self) -> Var {
        Var {
            secret: true,
            ..self
        }
    }

    /// Its line in `config/example.env`.
    pub fn example_line(&self) -> String {
        if !self.example.is_empty() {
            return self.example.to_owned();
        }
        let value = match self.default {
            IfUnset::Value(v) => v,
            IfUnset::Unset(_) => "",
        };
        if self.secret {
            format!("# {}={value}", self.name)
        } else {
            format!("{}={value}", self.name)
        }
    }

    /// Its block in `config/example.env`: comments, then the line.
    pub fn example_block(&self) -> String {
        let mut text = self.about.to_owned();
        if !self.more.is_empty() {
            text.push(' ');
            text.push_str(self.more);
        }
        if let IfUnset::Unset(what) = self.default {
            if !what.is_empty() {
                text.push_str(&format!(" Unset: {what}."));
            }
        }
        let mut out = String::new();
        for line in wrap(&text, 78 - 2) {
            out.push_str("# ");
            out.push_str(&line);
            out.push('\n');
        }
        out.push_str(&self.example_line());
        out.push('\n');
        out
    }

    /// Its row in the documentation table.
    pub fn docs_row(&self) -> String {
        let default = match self.default {
            IfUnset::Value("") | IfUnset::Unset("") => "unset".to_owned(),
            IfUnset::Value(v) => format!("`{v}`"),
            IfUnset::Unset(what) => format!("unset: {what}"),
        };
        format!(
            "| `{}` | {} | {}{} |",
            self.name,
            escape_cell(&default),
            escape_cell(self.about),
            if self.secret { " (secret)" } else { "" }
        )
    }
}

use IfUnset::{Unset, Value};
use Part::*;

/// Every variable the server reads, by part.
pub static VARS: &[Var] = &[
    // --- Server
    var("API_HOST", Server, Value("127.0.0.1"), "Address to bind; the default is loopback only."),
    var("API_PORT", Server, Value("8000"), "Port to bind (0 picks a free one)."),
    var(
        "API_KEYS",
        Server,
        Unset("a key is generated on first start, printed once, and stored hashed"),
        "Comma-separated keys. A bare key is its own tenant; `team:key` puts the key in tenant `team`. The list is applied at every start: a key moved to another tenant moves there, keys removed from the list are revoked, a key listed again is active again (so revoke a listed key by removing it from the list); a key made with `keys create` listed under another tenant, or one key listed for two tenants, stops startup with a message naming it. Empty: one key is generated at first start.",
    )
    .more(
        "Applied at every start: a key moved to another tenant moves, a removed key is revoked, a \
         key listed again is active again.",
    )
    .secret(),
    var("RATE_LIMIT_REQUESTS", Server, Value("120"), "Requests per key per `RATE_LIMIT_WINDOW` (GCRA)."),
    var("RATE_LIMIT_WINDOW", Server, Value("60"), "The rate limit's window, in seconds."),
    var(
        "AUTH_CACHE_SECONDS",
        Server,
        Value("1"),
        "How long a resolved API key (its tenant, role and rate limit) is served from memory. Changes through the admin API, and through the `keys`/`tenants` commands on PostgreSQL, reach every server at once; this bounds staleness otherwise (the commands on SQLite). `0`: every request reads the database.",
    ),
    var(
        "AUTH_FAILURE_LIMIT",
        Server,
        Value("20"),
        "Failed authentications per minute from one client address (an IPv6 /64) before every request from there with a key that has not authenticated from it before is a 429 with `Retry-After`; `0`: no limit.",
    )
    .more("Only keys that have not authenticated from that address before are refused."),
    var(
        "TRUSTED_PROXIES",
        Server,
        Unset("the socket's peer is the client"),
        "Addresses or networks (`10.0.0.0/8`) of reverse proxies: from them, the client is the rightmost `X-Forwarded-For` entry that is not a trusted proxy. Otherwise the socket's peer is the client and the header is ignored.",
    )
    .more(
        "From anyone else the header is ignored. Behind a proxy, list it here so each client's \
         failures count on their own.",
    ),
    // --- Storage
    var(
        "DATA_DIR",
        Storage,
        Value("./data"),
        "SQLite file, per-tenant CLI state, pid files.",
    ),
    var(
        "DATABASE_URL",
        Storage,
        Unset("SQLite at `$DATA_DIR/claude-code-api.db`"),
        "`postgres://…` selects PostgreSQL (same binary). Connections skip GSSAPI encryption (`gssencmode=disable`) unless the URL or `PGGSSENCMODE` asks for it: Kerberos' exit-time cleanup could crash a process that exits while the pool is connecting.",
    )
    .example("DATABASE_URL=")
    .secret(),
    var(
        "APPROVED_DIRECTORY",
        Storage,
        Value("./workspaces"),
        "Workspaces live at `APPROVED_DIRECTORY/<tenant>/<session>`.",
    ),
    // --- Cluster
    var(
        "NODE_ADVERTISE_URL",
        Cluster,
        Unset("this server runs alone"),
        "With a PostgreSQL `DATABASE_URL`: this server is one node of a cluster, reached by the others at this URL (see Running a cluster). Unset: the server runs alone.",
    )
    .more("See docs/src/cluster.md.")
    .example("# NODE_ADVERTISE_URL=http://10.0.0.5:8000"),
    var(
        "CLUSTER_SECRET",
        Cluster,
        Unset(""),
        "Required in a cluster (16+ characters, the same on every node): signs the requests nodes forward to each other.",
    )
    .secret(),
    var(
        "NODE_HEARTBEAT_SECONDS",
        Cluster,
        Unset("10 alone, 2 in a cluster"),
        "How often the server says it is alive; a node unseen for three beats is dead, and a session lease lasts three beats.",
    )
    .example("# NODE_HEARTBEAT_SECONDS="),
    // --- Sessions
    var(
        "CLAUDE_CLI_PATH",
        Sessions,
        Unset("`claude` on PATH, else .claude-cli/ (scripts/install-cli.sh)"),
        "The CLI binary. Its version is checked at start and shown by `/health`.",
    ),
    var(
        "CLAUDE_MODEL",
        Sessions,
        Unset("the CLI's default"),
        "Default model of new sessions.",
    ),
    var("CLAUDE_MAX_TURNS", Sessions, Value("25"), "Default model round-trips per turn."),
    var(
        "CLAUDE_PERMISSION_MODE",
        Sessions,
        Value("bypassPermissions"),
        "`default`, `acceptEdits`, `plan`, `bypassPermissions`, `dontAsk`. With `bypassPermissions` the server sets `IS_SANDBOX=1` for the CLI (it refuses that mode as root otherwise; in the sandbox the CLI is not root anyway).",
    ),
    var(
        "CLAUDE_ALLOWED_PERMISSION_MODES",
        Sessions,
        Unset("all modes"),
        "The ceiling: the modes any session, template or turn may use (comma-separated); `CLAUDE_PERMISSION_MODE` must be one of them. A tenant may be narrowed further (see A shared team server). Anything beyond is a 422 naming the allowed modes.",
    ),
    var(
        "CLAUDE_ALLOWED_TOOLS",
        Sessions,
        Unset(""),
        "Default allowed tools, comma-separated names or rules, e.g. `Read,Grep,Bash(git:*)`.",
    ),
    var(
        "CLAUDE_DISALLOWED_TOOLS",
        Sessions,
        Unset(""),
        "Default disallowed tools, comma-separated.",
    ),
    var(
        "CLAUDE_TIMEOUT_SECONDS",
        Sessions,
        Value("300"),
        "A turn with no CLI output for this long ends with a 504; the process is restarted.",
    ),
    var(
        "CLAUDE_ENV_PASSTHROUGH",
        Sessions,
        Unset(""),
        "Extra variable names the CLI may see (see below).",
    )
    .more(
        "Besides these the CLI sees only PATH, HOME, LANG, LC_ALL, LC_CTYPE, TMPDIR, TERM, TZ, \
         IS_SANDBOX, ANTHROPIC_MODEL, ANTHROPIC_SMALL_FAST_MODEL, \
         ANTHROPIC_DEFAULT_{OPUS,SONNET,HAIKU}_MODEL, CLAUDE_CODE_MAX_OUTPUT_TOKENS, \
         CLAUDE_CODE_MAX_RETRIES, DISABLE_TELEMETRY, DISABLE_AUTOUPDATER and \
         DISABLE_ERROR_REPORTING. No prefix passes anything.",
    ),
    var(
        "CLAUDE_ADD_DIRS",
        Sessions,
        Unset(""),
        "Extra directories every CLI process may read (`--add-dir`; read-only in the sandbox); nothing else outside the workspace is granted. Programs outside the system (`/usr`), such as a template's MCP server, must live in one.",
    ),
    var(
        "MAX_LIVE_SESSIONS",
        Sessions,
        Value("8"),
        "Cap on live CLI processes (~250–300 MiB each).",
    )
    .more("The least recently used idle one is stopped when a new one is needed."),
    var(
        "SESSION_IDLE_TIMEOUT_SECONDS",
        Sessions,
        Value("600"),
        "Idle processes are stopped; the next message resumes the conversation.",
    ),
    var(
        "WARM_ON_CREATE",
        Sessions,
        Value("true"),
        "Start a new session's CLI process at once when a live slot is free, so its first turn does not wait.",
    )
    .more("A process started this way is retired by the idle timeout."),
    var(
        "WARM_PRIME",
        Sessions,
        Value("true"),
        "Prime a process started ahead of a new conversation's first turn: a throwaway message the model gateway answers itself (nothing upstream, nothing charged), then `/clear`, so the first turn is as fast as a warm one.",
    )
    .more("The one trace: the CLI sends the model its note that `/clear` was run with the first message (a few dozen tokens)."),
    var(
        "SHUTDOWN_GRACE_SECONDS",
        Sessions,
        Value("30"),
        "On SIGTERM, running turns may finish for this long; then they are interrupted (see Jobs).",
    ),
    var(
        "STORE_RETRY_SECONDS",
        Sessions,
        Value("60"),
        "How long a failed session write is tried again before a turn's record waits in the spool (see Guarantees).",
    ),
    var(
        "CHAT_QUEUE_TIMEOUT_SECONDS",
        Sessions,
        Value("60"),
        "A chat that cannot start within this (its tenant's turns all busy) gets a 429 with `Retry-After`; jobs wait.",
    ),
    var(
        "EVENT_RETENTION_HOURS",
        Sessions,
        Value("72"),
        "Stored stream events older than this are purged (hourly); a client resuming from a purged id gets `event: reset`.",
    )
    .more(
        "A client resuming from an older id gets `event: reset` and should reload the history.",
    ),
    var(
        "TEMPLATES_DIR",
        Sessions,
        Unset("`templates/` in the working directory if there is one, else the built-in set"),
        "Folder of agent templates (one YAML each) used instead of the twelve built into the binary. Unset: `templates/` in the working directory if there is one, else the built-in set. A folder that is used must exist and hold at least one template, and a bad template stops startup naming the file; the start-up log says where templates came from (`source=built-in` or the folder).",
    )
    .more("A folder that is used must hold at least one template."),
    var(
        "DENY_PATTERNS",
        Sessions,
        Unset(""),
        "Comma-separated phrases refused in prompts (case-insensitive). A guard rail against obvious misuse, **not** a security boundary.",
    ),
    // --- Model
    var(
        "ANTHROPIC_API_KEY",
        Model,
        Unset(""),
        "The server's model credential, if not the CLI login (see Model access); the first of this, `ANTHROPIC_AUTH_TOKEN` and `CLAUDE_CODE_OAUTH_TOKEN` that is set wins. Never passed to the CLI.",
    )
    .more(
        "None set: the login in CLAUDE_CONFIG_DIR (from `claude-code-api login`). The CLI never \
         sees a credential: it reaches the model through the server's gateway.",
    )
    .example("# ANTHROPIC_API_KEY=sk-ant-...")
    .secret(),
    var(
        "ANTHROPIC_AUTH_TOKEN",
        Model,
        Unset(""),
        "A bearer token for the model API (e.g. of an LLM proxy).",
    )
    .secret(),
    var(
        "CLAUDE_CODE_OAUTH_TOKEN",
        Model,
        Unset(""),
        "A long-lived token from `claude setup-token`.",
    )
    .secret(),
    var(
        "CLAUDE_CONFIG_DIR",
        Model,
        Unset("`~/.claude`"),
        "The server user's Claude config folder, whose `.credentials.json` (`claude auth login`) is used when no credential variable is set.",
    )
    .example("# CLAUDE_CONFIG_DIR="),
    var(
        "ANTHROPIC_BASE_URL",
        Model,
        Value("https://api.anthropic.com"),
        "The model API the gateway forwards to. `ANTHROPIC_CUSTOM_HEADERS` (`Name: value` lines) are added to every forwarded request.",
    )
    .example("# ANTHROPIC_BASE_URL=https://api.anthropic.com"),
    var(
        "ANTHROPIC_CUSTOM_HEADERS",
        Model,
        Unset(""),
        "Extra headers sent to the model API, one `Name: value` per line.",
    )
    .secret(),
    var(
        "MODEL_GATEWAY_ADDR",
        Model,
        Value("127.0.0.1:0"),
        "Loopback address of the model gateway the CLI processes talk to (sandboxed ones, in a network namespace of their own, reach it through its unix socket `DATA_DIR/sandbox/gateway.sock` instead).",
    ),
    var(
        "CLAUDE_OAUTH_TOKEN_URL",
        Model,
        Value("https://platform.claude.com/v1/oauth/token"),
        "Where the gateway refreshes the CLI login's access token.",
    ),
    var(
        "MODEL_PRICES_FILE",
        Model,
        Unset("the built-in config/model-prices.yaml"),
        "Price table that charges turns cut short.",
    ),
    // --- Sandbox
    var(
        "AGENT_SANDBOX",
        Sandbox,
        Value("auto"),
        "`auto`: each CLI process in a bubblewrap sandbox where the host allows it, else unconfined with a warning naming the cause and the fix; `bwrap`: refuse to start without it; `off`: unconfined. See Security model.",
    ),
    var(
        "AGENT_UID",
        Sandbox,
        Value("10900"),
        "First agent user when the server is root; each tenant gets AGENT_UID + n.",
    ),
    var(
        "AGENT_GID",
        Sandbox,
        Value("10900"),
        "First agent group when the server is root; each tenant gets AGENT_GID + n.",
    ),
    var(
        "AGENT_UID_COUNT",
        Sandbox,
        Value("10000"),
        "How many agent users (tenants) there can be: the size of the range from `AGENT_UID`; keep it clear of the host's real users. A tenant's `n` is given on first use and kept in the database (the same on every node).",
    ),
    var(
        "AGENT_SECCOMP",
        Sandbox,
        Value("true"),
        "A seccomp filter refuses the agent new namespaces, mounts, `ptrace`, `bpf`, `keyctl`, `perf_event_open` and kernel interfaces (see Security model). `false` only to compare, or for a tool that truly needs one of them.",
    ),
    var(
        "AGENT_MEMORY_MAX_MB",
        Sandbox,
        Value("2048"),
        "Memory limit of each CLI process and everything it starts, MiB.",
    ),
    var(
        "AGENT_PIDS_MAX",
        Sandbox,
        Value("512"),
        "Process limit of each CLI process and everything it starts.",
    ),
    var(
        "AGENT_CPU_MAX",
        Sandbox,
        Unset("no limit"),
        "CPU limit of each CLI process, in cores, e.g. 1.5.",
    ),
    var(
        "AGENT_TMP_MAX_MB",
        Sandbox,
        Value("512"),
        "Size of the sandbox's private `/tmp` (a tmpfs: memory), MiB.",
    ),
    // --- Network
    var(
        "AGENT_NETWORK",
        Network,
        Value("proxy"),
        "The sandboxed agent's network: `proxy` (a network namespace of its own; the model gateway and an egress proxy with the tenant's allowlist), `none` (only the model gateway), `host` (shared with the host: no isolation). See The agent's network.",
    )
    .more(
        "proxy: a network namespace of its own, the model gateway and an HTTP(S) egress proxy \
         that lets through the hosts on the tenant's allowlist (PUT \
         /api/v1/admin/tenants/{id}/egress; empty at first: nothing). none: only the model \
         gateway. host: the host's network, shared (no isolation).",
    ),
    var(
        "AGENT_EGRESS_PRIVATE_HOSTS",
        Network,
        Unset(""),
        "Hosts the egress proxy may reach although they resolve to loopback, private or link-local addresses (the tenant must list them too).",
    )
    .more("Comma-separated; a tenant must still list them."),
    var(
        "AGENT_EGRESS_MAX_CONNECTIONS",
        Network,
        Value("64"),
        "Open egress proxy connections per CLI process.",
    ),
    var(
        "AGENT_EGRESS_IDLE_TIMEOUT_SECONDS",
        Network,
        Value("300"),
        "An egress proxy connection idle this long is closed.",
    ),
    // --- Disk
    var(
        "AGENT_DISK_MAX_MB",
        Disk,
        Value("10240"),
        "What one tenant's agents may keep on disk (its workspaces and CLI state), MiB; a tenant may have its own (`disk_max_mb`). See Disk quota.",
    )
    .more(
        "A tenant's own is set with the admin API (disk_max_mb). Measured while its CLI \
         processes run: see \"Disk quota\" in docs/src/security.md for the bound.",
    ),
    // --- Approvals
    var(
        "APPROVAL_TIMEOUT_SECONDS",
        Approvals,
        Value("600"),
        "A tool approval nobody answers within this is denied (the model is told why).",
    ),
    var(
        "APPROVAL_HOLD_SECONDS",
        Approvals,
        Value("5"),
        "A sync chat whose turn waits on an approval answers 202 with the approval's URL after this; the turn goes on.",
    )
    .more("The turn goes on."),
    // --- Files
    var(
        "MAX_UPLOAD_MB",
        Files,
        Value("25"),
        "Largest file upload (MiB); enforced while the body streams in (413 beyond it).",
    ),
    var(
        "MAX_ATTACHMENTS_MB",
        Files,
        Value("20"),
        "The images and documents of one message together (MiB, decoded); a larger message is a 413.",
    ),
    var(
        "ARCHIVE_STALL_SECONDS",
        Files,
        Value("60"),
        "An archive download whose client takes no data for this long is abandoned (the body ends with an error), so a client that stops reading never holds the thread writing it.",
    ),
    var(
        "SNAPSHOT_KEEP_TURNS",
        Files,
        Value("20"),
        "After each turn the session's workspace is snapshotted (for forks at that turn) into a store beside the workspaces (`APPROVED_DIRECTORY/.snapshots`, out of every sandbox's reach); the last this many turns of a session are kept (0: no snapshots, no forks).",
    ),
    var(
        "SNAPSHOT_MAX_MB",
        Files,
        Value("512"),
        "A workspace whose files add up to more than this (MiB) gets no snapshot for that turn; a fork at it is a 409 saying why.",
    ),
    var(
        "SNAPSHOT_MAX_FILES",
        Files,
        Value("20000"),
        "A workspace with more files and folders than this gets no snapshot for that turn; a fork at it is a 409 saying why.",
    ),
    var(
        "LEFTOVER_SWEEP_SECONDS",
        Files,
        Value("30"),
        "How often a folder that a session delete could not remove at once is tried again (`/health` counts those waiting).",
    ),
    // --- Jobs
    var(
        "JOB_MAX_ATTEMPTS",
        Jobs,
        Value("2"),
        "Runs of a job cut short by a crash or shutdown before it ends `interrupted`.",
    ),
    var(
        "SCHEDULES_PER_TENANT",
        Jobs,
        Value("100"),
        "Schedules a tenant may have (`POST /api/v1/schedules`).",
    ),
    var(
        "SCHEDULE_RUNS_PER_HOUR",
        Jobs,
        Value("600"),
        "Runs a tenant's schedules may start in any hour; a run past it is recorded `skipped`.",
    ),
    var(
        "SCHEDULE_TICK_MS",
        Jobs,
        Value("1000"),
        "How often each node looks for due schedules (a run starts at most this late).",
    ),
    var(
        "PIPELINE_MAX_STEPS",
        Jobs,
        Value("50"),
        "Steps one pipeline may have (more is a 422).",
    ),
    var(
        "PIPELINE_MAX_FAN_OUT",
        Jobs,
        Value("20"),
        "Jobs one `for_each` step may start: a step whose array has more items fails, naming the count.",
    ),
    var(
        "PIPELINE_MAX_MESSAGE_KB",
        Jobs,
        Value("256"),
        "A pipeline step's message after its templates are filled in; a longer one fails the step.",
    ),
    var(
        "PIPELINE_MAX_RUNNING_PER_TENANT",
        Jobs,
        Value("10"),
        "Pipelines of one tenant running at once; one more is a 429 until one ends.",
    ),
    var(
        "PIPELINE_POLL_INTERVAL_MS",
        Jobs,
        Value("500"),
        "How often each server looks at running pipelines to start the steps whose dependencies ended.",
    ),
    // --- Webhooks
    var(
        "WEBHOOK_SECRET",
        Webhooks,
        Unset("generated once and stored"),
        "`whsec_<base64>`: the first signing secret of tenants made from `API_KEYS` (each tenant has its own; others start with a random one). Later changes do not replace a tenant's secret: rotate it (`POST /webhooks/secret/rotate`). `claude-code-api webhook-secret <tenant>` prints a tenant's secret.",
    )
    .more(
        "Every tenant has its own; others start with a random one; rotate with POST \
         /api/v1/webhooks/secret/rotate. `claude-code-api webhook-secret <tenant>` prints a \
         tenant's secret.",
    )
    .secret(),
    var(
        "WEBHOOK_ALLOWED_HOSTS",
        Webhooks,
        Unset(""),
        "Hosts exempt from the refusal of internal and special-purpose addresses (e.g. a receiver on the same private network).",
    ),
    var(
        "WEBHOOK_TIMEOUT_SECONDS",
        Webhooks,
        Value("15"),
        "Time limit of one delivery attempt.",
    ),
    var(
        "WEBHOOK_RETRY_SCHEDULE_SECONDS",
        Webhooks,
        Value("5,30,120,900,3600,10800,28800,43200"),
        "Waits before each retry (+0–20 % jitter): 9 attempts over ~24.3 h.",
    ),
    var(
        "WEBHOOK_POLL_INTERVAL_MS",
        Webhooks,
        Value("1000"),
        "How often the outbox is checked for due retries (new events go out at once).",
    ),
    // --- Git
    var(
        "SECRETS_KEY",
        Git,
        Unset("generated at first start into `DATA_DIR/secrets.key` (mode 0600): back it up with the database"),
        "32 bytes in base64 (`openssl rand -base64 32`): the key that encrypts repository credentials at rest. Losing it loses the stored credentials.",
    )
    .secret(),
    var(
        "GIT_ALLOWED_HOSTS",
        Git,
        Unset(""),
        "Hosts a repository (or its provider's API) may be on although plain `http://`, on loopback or on a private address (a self-hosted forge on the same network).",
    ),
    var(
        "GIT_ALLOWED_PATHS",
        Git,
        Unset("no repository is registered by local path"),
        "Folders of the host whose repositories tenants may register by path (`url: \"/srv/git/app.git\"`).",
    ),
    var(
        "GIT_TIMEOUT_SECONDS",
        Git,
        Value("600"),
        "Time limit of one clone, fetch or push of the server's.",
    ),
    var(
        "GIT_MAX_REPOS",
        Git,
        Value("50"),
        "Repositories one tenant may register.",
    ),
    var(
        "GIT_MAX_DIFF_MB",
        Git,
        Value("16"),
        "The largest diff `GET /sessions/{name}/diff` answers (a larger one is a 413 with `?stat=true` as the way out).",
    ),
    var(
        "GIT_MAX_PUSH_MB",
        Git,
        Value("2048"),
        "The largest set of new commits (a bundle) one push takes from a session's worktree.",
    ),
    // --- Remote MCP servers
    var(
        "MCP_ALLOWED_HOSTS",
        Mcp,
        Unset(""),
        "Hosts a session's remote MCP server may be on although they resolve to internal or special-purpose addresses (e.g. a server on the same private network).",
    ),
    var(
        "MCP_TIMEOUT_SECONDS",
        Mcp,
        Value("60"),
        "Time limit of one message relayed to a remote MCP server.",
    ),
    // --- Console sign-in with an OpenID Connect provider
    var(
        "OIDC_ISSUER_URL",
        SignIn,
        Unset("no provider: the console signs in with API keys only"),
        "The OpenID provider people sign in to the console with (its discovery document is `<issuer>/.well-known/openid-configuration`); https, or http on loopback. Needs `OIDC_CLIENT_ID`, `OIDC_CLIENT_SECRET`, `OIDC_GROUP_MAPPING` and `PUBLIC_URL`.",
    )
    .example("# OIDC_ISSUER_URL=https://keycloak.example.com/realms/team"),
    var(
        "OIDC_CLIENT_ID",
        SignIn,
        Unset(""),
        "The server's client id at the provider.",
    ),
    var(
        "OIDC_CLIENT_SECRET",
        SignIn,
        Unset(""),
        "The server's client secret at the provider (sent with `client_secret_basic`, or `client_secret_post` when that is all the provider takes).",
    )
    .secret(),
    var(
        "OIDC_PROVIDER_NAME",
        SignIn,
        Value("your identity provider"),
        "The sign-in button's label (`Sign in with` and this name).",
    ),
    var(
        "OIDC_SCOPES",
        SignIn,
        Value("openid email profile"),
        "The scopes asked for, separated by spaces (`openid` is always among them).",
    ),
    var(
        "OIDC_GROUPS_CLAIM",
        SignIn,
        Value("groups"),
        "The ID token's claim that lists a person's groups (a list of strings, or one string).",
    ),
    var(
        "OIDC_GROUP_MAPPING",
        SignIn,
        Unset(""),
        "`group=tenant:role,…`: the first entry whose group the person is in decides the tenant and role (`viewer`, `member`, `admin` or `owner`) of their membership; an entry `@example.com=tenant:role` takes the people whose email, verified by the provider, is of that domain; a person matching none, and with no membership or invitation, is refused.",
    )
    .example("# OIDC_GROUP_MAPPING=platform-admins=platform:admin,team-a=team-a:member,@example.com=team-a:viewer"),
    var(
        "PUBLIC_URL",
        SignIn,
        Unset(""),
        "The address browsers reach the server at (`https://…`, or http on loopback); the provider sends people back to `PUBLIC_URL/console/oidc/callback`.",
    )
    .example("# PUBLIC_URL=https://claude.example.com"),
    // --- Tenancy
    var(
        "CLAUDE_MAX_COST_PER_USER",
        Tenancy,
        Unset("no limit"),
        "Budget in USD of each tenant made from `API_KEYS` (others: set per tenant).",
    ),
    var(
        "CLAUDE_MAX_COST_PER_REQUEST",
        Tenancy,
        Unset("no cap"),
        "Cap in USD of one turn, passed to the CLI as `--max-budget-usd`. The CLI counts that budget per process, so with a cap a turn after a paid one starts on a fresh process (resumed conversation).",
    ),
    var(
        "BUDGET_RESERVATION_USD",
        Tenancy,
        Value("1.0"),
        "Held per running turn of a budgeted tenant when no per-request cap is set (see Budgets).",
    ),
    var(
        "MAX_SESSIONS_PER_TENANT",
        Tenancy,
        Value("100"),
        "Default cap on a tenant's sessions (409 beyond it).",
    ),
    var(
        "MAX_RUNNING_TURNS_PER_TENANT",
        Tenancy,
        Value("4"),
        "Default cap on a tenant's turns running at once; more wait their turn.",
    ),
    // --- Logs
    var(
        "LOG_LEVEL",
        Logs,
        Value("info"),
        "Tracing filter, e.g. info, debug, claude_code_api=debug.",
    ),
    var("LOG_FORMAT", Logs, Value("text"), "Log lines as text | json (JSON lines on stderr). Every line written while serving a request carries its `request` span (`request_id`, `session` once known); a turn's lines carry its `turn` span (`session`, `job_id`) inside the span of the request that queued it."),
    var(
        "METRICS_ADDR",
        Logs,
        Unset("no metrics endpoint"),
        "`host:port` of a separate listener serving Prometheus `/metrics` (see below). Unset: no metrics.",
    )
    .example("# METRICS_ADDR="),
];

/// The variable called `name`, if the server reads it.
pub fn lookup(name: &str) -> Option<&'static Var> {
    VARS.iter().find(|v| v.name == name)
}

const EXAMPLE_ENV_HEADER: &str = "\
# claude-code-api configuration. Copy to `.env` in the working directory (or
# export the variables); every line below shows the default. A bad value stops
# startup with a message naming the variable.
#
# Generated by `claude-code-api config example-env` from the table in
# crates/core/src/config/table.rs: edit the table, not this file.
";

/// The text of `config/example.env`.
pub fn example_env() -> String {
    let mut out = EXAMPLE_ENV_HEADER.to_owned();
    for part in Part::ALL {
        let vars: Vec<&Var> = VARS.iter().filter(|v| v.part == part).collect();
        if vars.is_empty() {
            continue;
        }
        out.push('\n');
        let title = format!("# --- {} ", part.title());
        out.push_str(&format!("{title:-<78}\n"));
        for v in vars {
            out.push_str(&v.example_block());
        }
    }
    out
}

/// The Markdown table of every variable, for the configuration chapter.
pub fn docs_table() -> String {
    let mut out = String::from("| Variable | Default | What it does |\n| --- | --- | --- |\n");
    for v in VARS {
        out.push_str(&v.docs_row());
        out.push('\n');
    }
    out
}

fn escape_cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// `text` in lines of at most `width` characters (a longer word stays whole).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Path;

    const REGENERATE_ENV: &str = "run `claude-code-api config example-env > config/example.env`";
    const REGENERATE_DOCS: &str = "run `claude-code-api config docs-table` and paste it between \
                                   the settings-table markers of docs/src/operations/configuration.md";

    /// `NAME` of a line `NAME=…` or `# NAME=…`, when it looks like a variable.
    fn variable_of(line: &str) -> Option<&str> {
        let line = line.trim_start_matches('#').trim_start();
        let (name, _) = line.split_once('=')?;
        let is_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        is_name.then_some(name)
    }

    /// Fails naming the first variable whose generated text is missing from
    /// `actual`, or the first variable `actual` has that the table does not.
    fn check(what: &str, actual: &str, expected: &str, piece: impl Fn(&Var) -> String, how: &str) {
        for v in VARS {
            assert!(
                actual.contains(&piece(v)),
                "{what}: the entry of {} differs from the table; {how}.\nexpected:\n{}",
                v.name,
                piece(v)
            );
        }
        for line in actual.lines() {
            let name = variable_of(line).or_else(|| {
                line.strip_prefix("| `")
                    .and_then(|rest| rest.split_once('`'))
                    .map(|(name, _)| name)
            });
            if let Some(name) = name {
                assert!(
                    lookup(name).is_some(),
                    "{what}: {name} is not in the table of variables; {how}."
                );
            }
        }
        if actual != expected {
            let (n, (a, e)) = actual
                .lines()
                .chain(std::iter::repeat(""))
                .zip(expected.lines().chain(std::iter::repeat("")))
                .enumerate()
                .find(|(_, (a, e))| a != e)
                .unwrap_or((0, ("", "")));
            panic!(
                "{what} differs from the table at line {}; {how}.\n  file: {a}\n  table: {e}",
                n + 1
            );
        }
    }

    #[test]
    fn names_are_unique_and_every_part_has_variables() {
        let mut seen = BTreeSet::new();
        for v in VARS {
            assert!(seen.insert(v.name), "{} is listed twice", v.name);
            assert!(!v.about.contains('\n'), "{}: one line", v.name);
        }
        for part in Part::ALL {
            assert!(VARS.iter().any(|v| v.part == part), "{part:?} is empty");
        }
    }

    #[test]
    fn example_env_is_generated_from_the_table() {
        let file = include_str!("../../../../config/example.env");
        check(
            "config/example.env",
            file,
            &example_env(),
            Var::example_block,
            REGENERATE_ENV,
        );
    }

    #[test]
    fn the_configuration_chapter_holds_the_generated_table() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs/src/operations/configuration.md");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return; // no such chapter in this tree
        };
        let start = "<!-- settings-table:start -->";
        let end = "<!-- settings-table:end -->";
        let (Some(from), Some(to)) = (text.find(start), text.find(end)) else {
            panic!("{}: no {start} … {end} markers", path.display());
        };
        let inside = text[from + start.len()..to].trim_matches('\n');
        let expected = docs_table();
        check(
            "docs/src/operations/configuration.md",
            &format!("{inside}\n"),
            &expected,
            |v| format!("{}\n", v.docs_row()),
            REGENERATE_DOCS,
        );
    }

    #[test]
    fn a_stale_file_names_the_variable() {
        let stale = example_env().replace("API_PORT=8000", "API_PORT=9000");
        let result = std::panic::catch_unwind(|| {
            check("x", &stale, &example_env(), Var::example_block, "");
        });
        let message = *result.unwrap_err().downcast::<String>().unwrap();
        assert!(message.contains("API_PORT"), "{message}");
        let extra = format!("{}OLD_NAME=1\n", example_env());
        let result = std::panic::catch_unwind(|| {
            check("x", &extra, &example_env(), Var::example_block, "");
        });
        let message = *result.unwrap_err().downcast::<String>().unwrap();
        assert!(message.contains("OLD_NAME"), "{message}");
    }

    #[test]
    fn docs_rows_escape_pipes() {
        let row = lookup("LOG_FORMAT").unwrap().docs_row();
        assert!(
            row.starts_with("| `LOG_FORMAT` | `text` | Log lines as text \\| json (JSON lines"),
            "{row}"
        );
    }
}
