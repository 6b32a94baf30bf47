//! Builds the whole application from `Settings`: storage, actors, HTTP
//! server. Binds the listener itself so tests can ask for port 0.

use std::net::TcpListener;
use std::sync::Arc;

use actix::{Actor, Addr};
use actix_web::dev::Server;
use actix_web::{middleware, web, App, HttpServer};
use anyhow::Context as _;

use crate::actors::supervisor::messages::{DrainAll, ShutdownAll};
use crate::actors::supervisor::Supervisor;
use crate::actors::webhooks::WebhookDispatcher;
use crate::actors::Runtime;
use crate::api::{self, AppState};
use crate::config::Settings;
use crate::security::rate_limit::RateLimits;
use crate::webhooks::signing::WebhookSecret;
use crate::{cli, db, jobs, security};

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
}

/// Name of the generated webhook secret in `server_secrets`.
pub const WEBHOOK_SECRET_NAME: &str = "webhook_secret";

impl Application {
    /// Must run inside an actix System (`#[actix_web::main]` / `#[actix_web::test]`).
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let cwd = std::env::current_dir().context("cannot read the working directory")?;
        let settings = Arc::new(settings.with_absolute_paths(&cwd));
        std::fs::create_dir_all(&settings.approved_directory).with_context(|| {
            format!(
                "cannot create APPROVED_DIRECTORY {:?}",
                settings.approved_directory
            )
        })?;
        let workspace_root = std::fs::canonicalize(&settings.approved_directory)
            .context("cannot resolve APPROVED_DIRECTORY")?;
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("cannot create DATA_DIR {:?}", settings.data_dir))?;
        let data_dir =
            std::fs::canonicalize(&settings.data_dir).context("cannot resolve DATA_DIR")?;
        let settings = Arc::new(Settings {
            data_dir,
            ..(*settings).clone()
        });
        tracing::info!(
            data_dir = %settings.data_dir.display(),
            workspaces = %workspace_root.display(),
            database = %settings.effective_database_url_redacted(),
            "paths"
        );

        // A bad template stops startup, before the database is opened,
        // with a message naming the file.
        let templates = crate::templates::Templates::from_settings(&settings)
            .map_err(|e| anyhow::anyhow!(e))?;
        tracing::info!(source = %templates.source(), count = templates.all().len(), "agent templates loaded");
        let templates = web::Data::new(templates);

        let url = settings.effective_database_url();
        let pool = tokio::task::spawn_blocking(move || db::connect(&url))
            .await?
            .context("cannot open the database")?;
        let keys = settings.api_keys.clone();
        let default_budget = settings.max_cost_per_user_micros;
        let generated_key = db::run(&pool, move |c| {
            security::keys::sync_keys(c, &keys, default_budget)
        })
        .await
        .context("cannot store API keys")?;

        let cli_path = settings.resolved_cli_path();
        let cli_version = cli::detect_version(&cli_path).await;
        match &cli_version {
            Some(v) => {
                tracing::info!(cli = %cli_path.display(), version = %v, "Claude Code CLI found")
            }
            None => {
                tracing::error!(cli = %cli_path.display(), "the Claude Code CLI cannot be run; chats will fail (set CLAUDE_CLI_PATH or run scripts/install-cli.sh)")
            }
        }
        let secret = match &settings.webhook_secret {
            Some(text) => {
                WebhookSecret::parse(text).map_err(|e| anyhow::anyhow!("WEBHOOK_SECRET: {e}"))?
            }
            None => {
                let stored = db::run(&pool, |c| {
                    db::models::secret::get_or_create(
                        c,
                        WEBHOOK_SECRET_NAME,
                        WebhookSecret::generate,
                    )
                })
                .await
                .context("cannot store the webhook secret")?;
                WebhookSecret::parse(&stored)
                    .map_err(|e| anyhow::anyhow!("stored webhook secret: {e}"))?
            }
        };
        let dispatcher = WebhookDispatcher::new(settings.clone(), pool.clone(), secret).start();
        let runtime = Runtime {
            settings: settings.clone(),
            pool: pool.clone(),
            cli_path,
            webhooks: Some(dispatcher.clone().recipient()),
        };
        let orphans = cli::process::reap_orphans(&runtime.pid_dir());
        if orphans > 0 {
            tracing::warn!(
                count = orphans,
                "killed CLI processes left by a previous run"
            );
        }
        let supervisor = Supervisor::new(runtime).start();
        let recovery = jobs::recover(&pool, &supervisor, settings.job_max_attempts)
            .await
            .context("cannot recover jobs")?;
        if recovery.resumed + recovery.interrupted + recovery.dispatched > 0 {
            tracing::info!(
                resumed = recovery.resumed,
                interrupted = recovery.interrupted,
                dispatched = recovery.dispatched,
                "recovered jobs from the previous run"
            );
        }

        purge_events_periodically(pool.clone(), settings.event_retention);

        let state = web::Data::new(AppState {
            settings: settings.clone(),
            pool,
            supervisor: supervisor.clone(),
            cli_version: cli_version.clone(),
            workspace_root,
            webhooks: dispatcher.recipient(),
            rate_limits: RateLimits::new(settings.rate_limit_requests, settings.rate_limit_window),
        });
        let listener = TcpListener::bind((settings.api_host.as_str(), settings.api_port))
            .with_context(|| format!("cannot bind {}:{}", settings.api_host, settings.api_port))?;
        let port = listener.local_addr()?.port();
        let metrics = match &settings.metrics_addr {
            Some(addr) => {
                let listener = TcpListener::bind(addr.as_str())
                    .with_context(|| format!("cannot bind METRICS_ADDR {addr}"))?;
                let port = listener.local_addr()?.port();
                let server = crate::metrics::server(listener, supervisor.clone())?;
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
                .app_data(templates.clone())
                .wrap(middleware::from_fn(api::middleware::request_context))
                .wrap(middleware::from_fn(crate::metrics::track_http))
                .configure(|cfg| api::routes(cfg, &mcp_server))
                .default_service(web::to(|| async {
                    actix_web::HttpResponse::NotFound().finish()
                }))
        })
        // Signals are ours (see run_until_stopped); in-flight requests get
        // the grace period plus the time an interrupted turn needs to end.
        .disable_signals()
        .shutdown_timeout(settings.shutdown_grace.as_secs() + 10)
        .listen(listener)?
        .run();
        Ok(Application {
            port,
            server,
            supervisor,
            generated_key,
            cli_version,
            shutdown_grace: settings.shutdown_grace,
            metrics,
            mcp,
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
                return joined(result);
            }
            signal = shutdown_signal() => {
                tracing::info!(signal, grace = ?self.shutdown_grace, "shutting down");
            }
        }
        // No new connections from here; in-flight requests may finish.
        let stopping = handle.stop(true);
        // An MCP stream never finishes on its own: end them all.
        self.mcp.shutdown();
        let deadline = std::time::Instant::now() + self.shutdown_grace;
        let _ = self.supervisor.send(DrainAll { deadline }).await;
        let _ = self.supervisor.send(ShutdownAll).await;
        stopping.await;
        if let Some(metrics) = &metrics {
            metrics.stop(false).await;
        }
        joined(server.await)
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
