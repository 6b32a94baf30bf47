//! Builds the whole application from `Settings`: storage, actors, HTTP
//! server. Binds the listener itself so tests can ask for port 0.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;

use actix::{Actor, Addr};
use actix_web::dev::Server;
use actix_web::{middleware, web, App, HttpServer};
use anyhow::Context as _;

use crate::api;
use crate::state::AppState;
use claude_code_api_core::actors::supervisor::messages::{DrainAll, ShutdownAll};
use claude_code_api_core::actors::supervisor::Supervisor;
use claude_code_api_core::actors::webhooks::WebhookDispatcher;
use claude_code_api_core::actors::Runtime;
use claude_code_api_core::config::Settings;
use claude_code_api_core::db::models::TenantId;
use claude_code_api_core::gateway::ModelGateway;
use claude_code_api_core::security::rate_limit::RateLimits;
use claude_code_api_core::{cli, db, security};

pub struct Application {
    port: u16,
    server: Server,
    supervisor: Addr<Supervisor>,
    /// A key created because none existed; to be shown once.
    pub generated_key: Option<String>,
    pub cli_version: Option<String>,
    shutdown_grace: std::time::Duration,
    /// The `/metrics` listener (`METRICS_ADDR`), already running.
    metrics: Option<(u16, actix_web::dev::ServerHandle)>,
    /// Its sessions and open streams end at shutdown.
    mcp: api::mcp::McpServer,
    /// The model gateway's listener; stopped after the last CLI process.
    gateway: actix_web::dev::ServerHandle,
    /// Its cgroup folders go once the last CLI process is stopped.
    sandbox: Arc<claude_code_api_core::sandbox::Sandbox>,
    /// What this instance takes back when it stops: its leases, its row,
    /// its workspace mark.
    departure: Departure,
}

struct Departure {
    pool: db::DbPool,
    instance: db::models::instance::Instance,
    node: claude_code_api_core::cluster::Node,
    marks: claude_code_api_core::cluster::WorkspaceMarks,
}

impl Departure {
    /// Draining: this node takes no new lease; the others take its sessions
    /// as soon as it lets them go.
    async fn start_draining(&self) {
        self.node.set_draining();
        let me = self.instance.clone();
        if let Err(e) = db::run(&self.pool, move |c| {
            db::models::instance::set_draining(c, &me)
        })
        .await
        {
            tracing::warn!(error = %e, "cannot mark this instance as draining");
        }
    }

    /// Every CLI here is stopped: the leases go back and the instance is
    /// forgotten, so the other nodes take its sessions at once.
    async fn leave(&self) {
        let me = self.instance.clone();
        let left = db::run(&self.pool, move |c| {
            let released = db::models::lease::release_all(c, &me.id)?;
            db::models::instance::deregister(c, &me)?;
            Ok(released)
        })
        .await;
        match left {
            Ok(released) if self.node.is_clustered() => {
                tracing::info!(
                    sessions = released,
                    "released this node's sessions to the cluster"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot release this node's sessions"),
        }
        self.marks.unmark();
    }
}

impl Application {
    /// Must run inside an actix System (`#[actix_web::main]` / `#[actix_web::test]`).
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        claude_code_api_core::metrics::init().context("cannot build the metrics registry")?;
        let cwd = std::env::current_dir().context("cannot read the working directory")?;
        let settings = Arc::new(settings.with_absolute_paths(&cwd));
        std::fs::create_dir_all(&settings.storage.approved_directory).with_context(|| {
            format!(
                "cannot create APPROVED_DIRECTORY {:?}",
                settings.storage.approved_directory
            )
        })?;
        let workspace_root = std::fs::canonicalize(&settings.storage.approved_directory)
            .context("cannot resolve APPROVED_DIRECTORY")?;
        std::fs::create_dir_all(&settings.storage.data_dir)
            .with_context(|| format!("cannot create DATA_DIR {:?}", settings.storage.data_dir))?;
        let data_dir =
            std::fs::canonicalize(&settings.storage.data_dir).context("cannot resolve DATA_DIR")?;
        // Keys, secrets, transcripts and the database live here: the
        // server's alone.
        std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make DATA_DIR {data_dir:?} private"))?;
        let mut settings = (*settings).clone();
        settings.storage.data_dir = data_dir;
        settings.storage.approved_directory = workspace_root.clone();
        let settings = Arc::new(settings);
        tracing::info!(
            data_dir = %settings.storage.data_dir.display(),
            workspaces = %workspace_root.display(),
            database = %settings.storage.effective_database_url_redacted(),
            "paths"
        );

        // A bad template stops startup, before the database is opened,
        // with a message naming the file.
        let templates =
            claude_code_api_core::templates::Templates::from_settings(&settings.sessions)
                .map_err(|e| anyhow::anyhow!(e))?;
        tracing::info!(source = %templates.source(), count = templates.all().len(), "agent templates loaded");
        let templates = web::Data::new(templates);

        let url = settings.storage.effective_database_url();
        let pool = claude_code_api_core::blocking::run(move || db::connect(&url))
            .await?
            .context("cannot open the database")?;
        let keys = settings.server.api_keys.clone();
        let default_budget = settings.tenancy.max_cost_per_user_micros;
        let generated_key = db::run(&pool, move |c| {
            Ok(security::keys::sync_keys(c, &keys, default_budget))
        })
        .await
        .context("cannot store API keys")??;

        // Turn records kept while the database was away are stored before
        // anything else runs (before dead instances' turns are charged, so
        // none is charged twice), and whenever it answers again.
        let spool = db::spool::dir(&settings.storage.data_dir);
        db::spool::drain(&pool, &spool).await;
        let (drain_pool, drain_dir) = (pool.clone(), spool.clone());
        actix::spawn(async move {
            let mut tick = tokio::time::interval(db::spool::DRAIN_EVERY);
            loop {
                tick.tick().await;
                db::spool::drain(&drain_pool, &drain_dir).await;
            }
        });

        let cli_path = settings.sessions.resolved_cli_path();
        let cli_version = cli::detect_version(&cli_path).await;
        match &cli_version {
            Some(v) => {
                tracing::info!(cli = %cli_path.display(), version = %v, "Claude Code CLI found")
            }
            None => {
                tracing::error!(cli = %cli_path.display(), "the Claude Code CLI cannot be run; chats will fail (set CLAUDE_CLI_PATH or run scripts/install-cli.sh)")
            }
        }
        // Tenants from API_KEYS start with WEBHOOK_SECRET, so receivers set
        // up before secrets were per tenant keep verifying until a rotation.
        if let Some(first) = settings.webhooks.secret.clone() {
            let tenants: Vec<String> = settings
                .server
                .api_keys
                .iter()
                .map(|entry| security::keys::parse_entry(entry).0)
                .collect();
            db::run(&pool, move |c| {
                for tenant in tenants {
                    db::models::webhook_secret::current(c, &TenantId(tenant), || first.clone())?;
                }
                Ok(())
            })
            .await
            .context("cannot store the webhook secrets")?;
        }
        let dispatcher = WebhookDispatcher::new(settings.webhooks.clone(), pool.clone()).start();
        let mut sandbox = claude_code_api_core::sandbox::Sandbox::probe(
            &settings.sandbox,
            &settings.storage.data_dir,
            pool.clone(),
        )
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
        let gateway_socket = bind_gateway_socket(&settings, &sandbox)?;
        let (gateway, gateway_handle) = start_gateway(&settings, &pool, gateway_socket).await?;
        let (instance, node) = start_instance(&settings, &pool, &gateway, &workspace_root).await?;
        attach_network(&settings, &pool, &mut sandbox).await?;
        let sandbox = Arc::new(sandbox);
        log_sandbox(&sandbox.status());
        let disk = Arc::new(claude_code_api_core::disk::DiskMeter::new(
            &settings.disk,
            &settings.storage.data_dir,
            workspace_root.clone(),
            pool.clone(),
        ));
        let runtime = Runtime {
            settings: settings.clone(),
            pool: pool.clone(),
            cli_path,
            gateway: gateway.clone(),
            sandbox: sandbox.clone(),
            disk: disk.clone(),
            instance: instance.clone(),
            webhooks: Some(dispatcher.clone().recipient()),
            node: node.clone(),
            spawns: Arc::default(),
            job_git: Arc::default(),
            mcp_relay: Arc::default(),
            running_turns: Arc::default(),
            held_leases: Arc::default(),
        };
        let job_git = runtime.job_git.clone();
        let running_turns = runtime.running_turns.clone();
        let held_leases = runtime.held_leases.clone();
        let mcp_relay = runtime.mcp_relay.clone();
        let orphans = cli::process::reap_orphans(&runtime.pid_dir());
        if orphans > 0 {
            tracing::warn!(
                count = orphans,
                "killed CLI processes left by a previous run"
            );
        }
        let supervisor = Supervisor::new(runtime).start();
        purge_events_periodically(pool.clone(), settings.sessions.event_retention);

        let (departure_pool, departure_root) = (pool.clone(), workspace_root.clone());
        let services = claude_code_api_core::services::Services {
            settings: settings.clone(),
            pool,
            supervisor: supervisor.clone(),
            running_turns,
            held_leases,
            workspace_root,
            webhooks: dispatcher.recipient(),
            sandbox: sandbox.clone(),
            disk,
            instance: instance.clone(),
            node: node.clone(),
            templates: templates.clone().into_inner(),
            leftovers: Arc::default(),
            identities: Arc::new(
                claude_code_api_core::security::identities::Identities::new(
                    settings.server.auth_cache,
                )
                .context("cannot make the HTTP client for identity providers' keys")?,
            ),
            git: claude_code_api_core::git::kit::GitKit::new(
                &settings.git,
                &settings.storage.data_dir,
            )
            .context("cannot read or make SECRETS_KEY")?,
        };
        // Jobs run their git step through the services (which hold the key
        // and the mirrors), set once they exist.
        let _ = job_git.set(Arc::new(
            claude_code_api_core::services::git::JobGitPhase::new(services.clone()),
        ));
        let _ = mcp_relay.set(Arc::new(
            claude_code_api_core::services::mcp_relay::Relay::new(services.clone()),
        ));
        node.listen(
            &settings.storage.effective_database_url(),
            services.identities.clone(),
        );
        services
            .leftovers
            .clone()
            .spawn_sweeper(services.pool.clone(), settings.files.leftover_sweep);
        recover_jobs(&services).await?;
        start_schedule_clock(&services);
        // After the jobs' recovery, so a step's job resumed from the last
        // run is seen running rather than gone.
        claude_code_api_core::services::pipelines::engine::spawn(services.clone());
        let state = web::Data::new(AppState {
            services,
            cli_version: cli_version.clone(),
            rate_limits: RateLimits::new(
                settings.server.rate_limit_requests,
                settings.server.rate_limit_window,
            ),
            auth_failures: claude_code_api_core::security::auth_failures::AuthFailures::new(
                settings.server.auth_failure_limit,
                std::time::Duration::from_secs(60),
            ),
            gateway,
        });
        // The last background probe of the database and the cluster.
        let health = web::Data::new(api::views::health::Probe::default());
        api::views::health::Probe::spawn(state.clone(), health.clone());
        let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port))
            .with_context(|| {
                format!(
                    "cannot bind {}:{}",
                    settings.server.host, settings.server.port
                )
            })?;
        let port = listener.local_addr()?.port();
        let metrics = match &settings.server.metrics_addr {
            Some(addr) => {
                let listener = TcpListener::bind(addr.as_str())
                    .with_context(|| format!("cannot bind METRICS_ADDR {addr}"))?;
                let port = listener.local_addr()?.port();
                let server = crate::api::scrape::server(listener, supervisor.clone())?;
                let handle = server.handle();
                actix_web::rt::spawn(server);
                tracing::info!(port, "Prometheus metrics at /metrics");
                Some((port, handle))
            }
            None => None,
        };
        let mcp = api::mcp::McpServer::new();
        let mcp_server = mcp.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(health.clone())
                .app_data(templates.clone())
                .wrap(middleware::from_fn(api::middleware::request_context))
                .wrap(middleware::from_fn(crate::api::middleware::track_http))
                .configure(|cfg| api::routes::routes(cfg, &mcp_server))
                .configure(crate::console::routes)
                .default_service(web::to(|| async {
                    actix_web::HttpResponse::NotFound().finish()
                }))
        })
        .on_connect(crate::net::no_delay)
        // Signals are ours (see run_until_stopped); in-flight requests get
        // the grace period plus the time an interrupted turn needs to end.
        .disable_signals()
        .shutdown_timeout(settings.sessions.shutdown_grace.as_secs() + 10)
        .listen(listener)?
        .run();
        Ok(Application {
            port,
            server,
            supervisor,
            generated_key,
            cli_version,
            shutdown_grace: settings.sessions.shutdown_grace,
            metrics,
            mcp,
            gateway: gateway_handle,
            sandbox,
            departure: Departure {
                pool: departure_pool,
                marks: claude_code_api_core::cluster::WorkspaceMarks::new(
                    &departure_root,
                    &instance.id,
                ),
                instance,
                node,
            },
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The bound port of the `/metrics` listener, when `METRICS_ADDR` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
    }

    /// Serves until SIGTERM/SIGINT. Then: no new connections; running turns
    /// may finish for `SHUTDOWN_GRACE_SECONDS`, are interrupted after that and
    /// stored; queued jobs stay queued for the next start; every CLI process
    /// is stopped.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        // The scrape listener lives as long as the API server.
        let metrics = self.metrics.as_ref().map(|(_, h)| h.clone());

        // The server future must keep being polled: it is what carries out
        // the stop command below.
        let mut server = actix_web::rt::spawn(self.server);
        let joined = |r: Result<std::io::Result<()>, tokio::task::JoinError>| {
            r.unwrap_or_else(|e| Err(std::io::Error::other(e)))
        };
        tokio::select! {
            result = &mut server => {
                let _ = self.supervisor.send(ShutdownAll).await;
                if let Some(metrics) = &metrics {
                    metrics.stop(false).await;
                }
                self.gateway.stop(false).await;
                self.sandbox.shutdown();
                return joined(result);
            }
            signal = shutdown_signal() => {
                tracing::info!(signal, grace = ?self.shutdown_grace, "shutting down");
            }
        }
        self.departure.start_draining().await;
        // No new connections from here; in-flight requests may finish.
        let stopping = handle.stop(true);
        // An MCP stream never finishes on its own: end them all.
        self.mcp.shutdown();
        let deadline = std::time::Instant::now() + self.shutdown_grace;
        let _ = self.supervisor.send(DrainAll { deadline }).await;
        let _ = self.supervisor.send(ShutdownAll).await;
        self.departure.leave().await;
        stopping.await;
        if let Some(metrics) = &metrics {
            metrics.stop(false).await;
        }
        self.gateway.stop(false).await;
        self.sandbox.shutdown();
        joined(server.await)
    }
}

/// Every node looks for due schedules every `SCHEDULE_TICK_MS`; a due time
/// is claimed by one of them (see `services::schedules`).
fn start_schedule_clock(services: &claude_code_api_core::services::Services) {
    let services = services.clone();
    actix::spawn(async move {
        let mut tick = tokio::time::interval(services.settings.jobs.schedules.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            claude_code_api_core::services::schedules::tick(&services).await;
        }
    });
}

/// Picks up the jobs nobody runs. Alone: everything the previous run left.
/// In a cluster: the sessions of dead nodes, now and at every heartbeat
/// (the others' sessions are theirs).
async fn recover_jobs(services: &claude_code_api_core::services::Services) -> anyhow::Result<()> {
    if !services.node.is_clustered() {
        let recovery = claude_code_api_core::services::jobs::recover(services)
            .await
            .context("cannot recover jobs")?;
        if !recovery.is_empty() {
            tracing::info!(
                resumed = recovery.resumed,
                interrupted = recovery.interrupted,
                dispatched = recovery.dispatched,
                "recovered jobs from the previous run"
            );
        }
        return Ok(());
    }
    let services = services.clone();
    actix::spawn(async move {
        let mut tick = tokio::time::interval(services.node.heartbeat());
        loop {
            tick.tick().await;
            let adopted = claude_code_api_core::services::ownership::adopt_orphans(&services).await;
            if adopted > 0 {
                tracing::warn!(
                    sessions = adopted,
                    "took over sessions with jobs left by dead nodes"
                );
            }
        }
    });
    Ok(())
}

/// Registers this start as an instance of its node (the node's id is kept
/// in `DATA_DIR/node-id`), releases what earlier starts of the node and dead
/// instances held, and heartbeats from then on (every
/// `NODE_HEARTBEAT_SECONDS`, on the database's clock): three missed beats
/// and what it holds is released by whoever notices.
async fn start_instance(
    settings: &Settings,
    pool: &db::DbPool,
    gateway: &ModelGateway,
    workspace_root: &std::path::Path,
) -> anyhow::Result<(
    db::models::instance::Instance,
    claude_code_api_core::cluster::Node,
)> {
    use db::models::instance;
    let file = settings.storage.data_dir.join("node-id");
    let node_id = match std::fs::read_to_string(&file) {
        Ok(id) if !id.trim().is_empty() => id.trim().to_owned(),
        _ => {
            let id = uuid::Uuid::new_v4().to_string();
            std::fs::write(&file, &id)
                .with_context(|| format!("cannot write {}", file.display()))?;
            id
        }
    };
    let me = instance::Instance {
        id: uuid::Uuid::now_v7().to_string(),
        node_id,
    };
    let node = claude_code_api_core::cluster::Node::new(&settings.node, me.id.clone())?;
    let marks = claude_code_api_core::cluster::WorkspaceMarks::new(workspace_root, &me.id);
    if node.is_clustered() {
        marks
            .mark()
            .context("cannot mark the workspace root as seen by this node")?;
    }
    let registered = me.clone();
    let advertise = settings
        .node
        .cluster
        .as_ref()
        .map(|c| c.advertise_url.clone());
    db::run(pool, move |c| {
        instance::register(c, &registered, advertise.as_deref())
    })
    .await
    .context("cannot register this server instance")?;
    let stale_after = settings.node.heartbeat * 3;
    let beat = move |pool: db::DbPool,
                     me: instance::Instance,
                     gateway: ModelGateway,
                     node: claude_code_api_core::cluster::Node,
                     marks: claude_code_api_core::cluster::WorkspaceMarks| async move {
        let price = move |calls: &[claude_code_api_core::gateway::usage::CallUsage]| {
            gateway.cost_micros(calls)
        };
        let clustered = node.is_clustered();
        let advertise = node.cluster().map(|c| c.advertise_url.clone());
        let beat = db::run(&pool, move |c| {
            let stale =
                instance::db_now(c)? - chrono::Duration::from_std(stale_after).unwrap_or_default();
            // Every live node's mark is in the root this node sees: shared.
            let nodes = instance::list(c, stale)?;
            let live: Vec<_> = nodes.iter().filter(|n| n.alive && !n.draining).collect();
            let shared = !clustered || marks.sees_all(live.iter().map(|n| n.id.as_str()));
            let known = instance::heartbeat(c, &me, advertise.as_deref(), shared)?;
            let released = instance::release_dead(c, &me, stale, &price)?;
            Ok((released, live.len(), known))
        })
        .await;
        match beat {
            Ok((released, live, known)) => {
                if !known {
                    tracing::warn!("this instance was counted dead (its heartbeat came late) and registered again");
                }
                node.set_live_nodes(live);
                if released != instance::Released::default() {
                    tracing::warn!(
                        reservations = released.reservations,
                        reserved_micros = released.reserved_micros,
                        charged_micros = released.charged_micros,
                        idempotency_claims = released.claims,
                        "released what stopped server instances held"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot record this instance's heartbeat"),
        }
    };
    beat(
        pool.clone(),
        me.clone(),
        gateway.clone(),
        node.clone(),
        marks.clone(),
    )
    .await;
    let (pool, beating, gateway, beating_node) =
        (pool.clone(), me.clone(), gateway.clone(), node.clone());
    actix::spawn(async move {
        let mut tick = tokio::time::interval(beating_node.heartbeat());
        loop {
            tick.tick().await;
            beat(
                pool.clone(),
                beating.clone(),
                gateway.clone(),
                beating_node.clone(),
                marks.clone(),
            )
            .await;
        }
    });
    Ok((me, node))
}

/// Starts the model gateway on its loopback listener, with the tenants' own
/// credentials loaded, and says where the server's credential comes from.
async fn start_gateway(
    settings: &Settings,
    pool: &db::DbPool,
    unix: Option<std::os::unix::net::UnixListener>,
) -> anyhow::Result<(ModelGateway, actix_web::dev::ServerHandle)> {
    let gateway = ModelGateway::new(&settings.model, pool.clone())?;
    gateway
        .reload_tenant_credentials()
        .await
        .context("cannot read tenant model credentials")?;
    gateway.reload_periodically(std::time::Duration::from_secs(10));
    let addr = &settings.model.gateway_addr;
    let listener = TcpListener::bind(addr.as_str())
        .with_context(|| format!("cannot bind MODEL_GATEWAY_ADDR {addr}"))?;
    let server = crate::gateway_listener::serve(&gateway, listener, unix)?;
    let handle = server.handle();
    actix_web::rt::spawn(server);
    let status = gateway.status();
    match status.detail {
        None => tracing::info!(
            source = status.source,
            upstream = %settings.model.base_url,
            gateway = gateway.url().unwrap_or_default(),
            "model access"
        ),
        Some(detail) => tracing::warn!(source = status.source, "{detail}"),
    }
    Ok((gateway, handle))
}

/// The model gateway's unix socket, for sandboxes with a network namespace
/// of their own (they cannot reach the loopback listener).
fn bind_gateway_socket(
    settings: &Settings,
    sandbox: &claude_code_api_core::sandbox::Sandbox,
) -> anyhow::Result<Option<std::os::unix::net::UnixListener>> {
    use claude_code_api_core::sandbox::network::{gateway_socket_path, NetworkMode};
    use std::os::unix::fs::PermissionsExt as _;
    if !sandbox.is_on() || settings.network.mode == NetworkMode::Host {
        return Ok(None);
    }
    let path = gateway_socket_path(&settings.storage.data_dir);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot make {}", dir.display()))?;
    }
    // Left by a previous run of this server.
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).with_context(|| {
        format!(
            "cannot bind the model gateway's socket {} (a unix socket path has at most 107 bytes: use a shorter DATA_DIR)",
            path.display()
        )
    })?;
    // The agent users connect to it through the file bound into their sandbox.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
    Ok(Some(listener))
}

/// Gives the sandbox its network namespace (`AGENT_NETWORK`) and, with
/// `proxy`, starts the egress proxy. Where the namespace cannot start,
/// `AGENT_SANDBOX=bwrap` stops here; `auto` goes on sharing the host's
/// network, and says so.
async fn attach_network(
    settings: &Settings,
    pool: &db::DbPool,
    sandbox: &mut claude_code_api_core::sandbox::Sandbox,
) -> anyhow::Result<()> {
    use claude_code_api_core::sandbox::network::{AgentNetwork, NetworkMode};
    if !sandbox.is_on() {
        return Ok(());
    }
    let net = &settings.network;
    let egress = (net.mode == NetworkMode::Proxy)
        .then(|| claude_code_api_core::egress::EgressProxy::new(pool.clone(), net.egress.clone()));
    let attached = match AgentNetwork::new(net, &settings.storage.data_dir, egress) {
        Ok(None) => return Ok(()),
        Ok(Some(network)) => sandbox.attach_network(network).await,
        Err(e) => Err(e),
    };
    match attached {
        Ok(()) => Ok(()),
        Err(e) if settings.sandbox.mode == claude_code_api_core::sandbox::Mode::Bwrap => {
            anyhow::bail!("AGENT_SANDBOX=bwrap, but the agent's network cannot be isolated: {e}")
        }
        Err(e) => {
            sandbox.note_missing(format!("network isolation: {e}"));
            Ok(())
        }
    }
}

/// Says what confines the agent, or loudly why nothing does.
fn log_sandbox(status: &claude_code_api_core::sandbox::SandboxStatus) {
    if status.mode == "off" {
        tracing::warn!(
            missing = %status.missing.join("; "),
            "the agent is NOT confined: every tenant's agent can read this server's files and other tenants' workspaces (see docs/src/security.md)"
        );
    } else if status.missing.is_empty() {
        tracing::info!(
            agent_user = status.agent_user.as_deref().unwrap_or("(user namespace)"),
            cgroup = status.cgroup.unwrap_or("none"),
            network = status.network,
            "each CLI process runs in a bubblewrap sandbox"
        );
    } else {
        tracing::warn!(
            agent_user = status.agent_user.as_deref().unwrap_or("(user namespace)"),
            missing = %status.missing.join("; "),
            "each CLI process runs in a bubblewrap sandbox, with parts missing"
        );
    }
}

/// Resolves at the first SIGTERM or SIGINT, naming it.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers there is nothing to wait for.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// Deletes stream events older than `EVENT_RETENTION_HOURS`, at start and
/// then every hour (a client resuming from a purged id gets `event: reset`).
fn purge_events_periodically(pool: db::DbPool, retention: std::time::Duration) {
    actix::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            every.tick().await;
            let Ok(age) = chrono::Duration::from_std(retention) else {
                return;
            };
            let cutoff = db::now() - age;
            match db::run(&pool, move |c| db::models::event::purge_before(c, cutoff)).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(count = n, "purged old stream events"),
                Err(e) => tracing::warn!(error = %e, "cannot purge old stream events"),
            }
        }
    });
}
