//! Builds the whole application from `Settings`: storage, actors, HTTP
//! server. Binds the listener itself so tests can ask for port 0.

use std::net::TcpListener;
use std::sync::Arc;

use actix::{Actor, Addr};
use actix_web::dev::Server;
use actix_web::{middleware, web, App, HttpServer};
use anyhow::Context as _;

use crate::actors::supervisor::messages::ShutdownAll;
use crate::actors::supervisor::Supervisor;
use crate::actors::Runtime;
use crate::api::{self, AppState};
use crate::config::Settings;
use crate::{cli, db, security};

pub struct Application {
    port: u16,
    server: Server,
    supervisor: Addr<Supervisor>,
    /// A key created because none existed; to be shown once.
    pub generated_key: Option<String>,
    pub cli_version: Option<String>,
}

impl Application {
    /// Must run inside an actix System (`#[actix_web::main]` / `#[actix_web::test]`).
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let settings = Arc::new(settings);
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

        // A bad template stops startup, before the database is opened,
        // with a message naming the file.
        let templates = crate::templates::Templates::from_settings(&settings)
            .map_err(|e| anyhow::anyhow!(e))?;
        tracing::info!(dir = %templates.dir().display(), count = templates.all().len(), "agent templates loaded");
        let templates = web::Data::new(templates);

        let url = settings.effective_database_url();
        let pool = tokio::task::spawn_blocking(move || db::connect(&url))
            .await?
            .context("cannot open the database")?;
        let keys = settings.api_keys.clone();
        let generated_key = db::run(&pool, move |c| security::keys::sync_keys(c, &keys))
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
        let runtime = Runtime {
            settings: settings.clone(),
            pool: pool.clone(),
            cli_path,
        };
        let orphans = cli::process::reap_orphans(&runtime.pid_dir());
        if orphans > 0 {
            tracing::warn!(
                count = orphans,
                "killed CLI processes left by a previous run"
            );
        }
        let supervisor = Supervisor::new(runtime).start();

        let state = web::Data::new(AppState {
            settings: settings.clone(),
            pool,
            supervisor: supervisor.clone(),
            cli_version: cli_version.clone(),
            workspace_root,
        });
        let listener = TcpListener::bind((settings.api_host.as_str(), settings.api_port))
            .with_context(|| format!("cannot bind {}:{}", settings.api_host, settings.api_port))?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(templates.clone())
                .wrap(middleware::from_fn(api::middleware::request_context))
                .configure(api::routes)
                .default_service(web::to(|| async {
                    actix_web::HttpResponse::NotFound().finish()
                }))
        })
        .shutdown_timeout(settings.shutdown_grace.as_secs())
        .listen(listener)?
        .run();
        Ok(Application {
            port,
            server,
            supervisor,
            generated_key,
            cli_version,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM, then stops every CLI process.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        let _ = self.supervisor.send(ShutdownAll).await;
        result
    }
}
