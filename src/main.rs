//! `claude-code-api [serve]` runs the server; `migrate` only applies the
//! database migrations; `openapi` prints the OpenAPI document; `config
//! example-env` and `config docs-table` print the variables' table as
//! `config/example.env` and as the documentation's Markdown table.

use anyhow::Context as _;
use claude_code_api::app::Application;
use claude_code_api_core::config::Settings;

const USAGE: &str = "usage: claude-code-api [serve | migrate | webhook-secret <tenant> | openapi | config example-env|docs-table | login [--token] | keys … | tenants … | --help]";

fn main() -> anyhow::Result<()> {
    // The relay inside a sandbox's network namespace (see `sandbox::relay`):
    // no settings, no server runtime.
    if std::env::args().nth(1).as_deref() == Some(claude_code_api_core::sandbox::relay::COMMAND) {
        let args: Vec<String> = std::env::args().skip(2).collect();
        claude_code_api_core::sandbox::relay::run(&args);
    }
    run()
}

#[actix_web::main]
async fn run() -> anyhow::Result<()> {
    let command = std::env::args().nth(1).unwrap_or_else(|| "serve".into());
    if command == "config" {
        // Reads no settings: it describes them.
        return config(std::env::args().nth(2).as_deref());
    }
    let settings = Settings::from_env()?;
    claude_code_api_core::telemetry::init(&settings.server);
    match command.as_str() {
        "serve" => serve(settings).await,
        "migrate" => {
            let url = settings.storage.effective_database_url();
            if let Some(parent) = std::path::Path::new(&url).parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            claude_code_api_core::db::connect(&url).context("migrations failed")?;
            println!("database is up to date");
            Ok(())
        }
        "webhook-secret" => {
            // The secret a tenant's receivers verify signatures with (the
            // same as `GET /api/v1/webhooks/secret` with one of its keys).
            let Some(tenant) = std::env::args().nth(2) else {
                anyhow::bail!("usage: claude-code-api webhook-secret <tenant> (each tenant has its own secret)");
            };
            let pool =
                claude_code_api_core::db::connect(&settings.storage.effective_database_url())
                    .context("cannot open the database")?;
            let mut conn = pool.get().context("cannot open the database")?;
            if claude_code_api_core::db::models::tenant::find_tenant(&mut conn, &tenant)?.is_none()
            {
                anyhow::bail!("no tenant {tenant:?}");
            }
            let from_list =
                settings.server.api_keys.iter().any(|entry| {
                    claude_code_api_core::security::keys::parse_entry(entry).0 == tenant
                });
            let first = settings.webhooks.secret.clone().filter(|_| from_list);
            let secret = claude_code_api_core::db::models::webhook_secret::current(
                &mut conn,
                &claude_code_api_core::db::models::TenantId(tenant),
                || {
                    first.unwrap_or_else(
                        claude_code_api_core::webhooks::signing::WebhookSecret::generate,
                    )
                },
            )?;
            println!("{secret}");
            Ok(())
        }
        "openapi" => {
            // The document `/api/v1/openapi.json` serves, for client generators.
            println!(
                "{}",
                serde_json::to_string_pretty(claude_code_api::api::openapi::document())?
            );
            Ok(())
        }
        "login" => {
            let rest: Vec<String> = std::env::args().skip(2).collect();
            login(settings, &rest)
        }
        "keys" | "tenants" => {
            let rest: Vec<String> = std::env::args().skip(2).collect();
            claude_code_api::admin_cli::run(&command, &rest, &settings)
        }
        "-h" | "--help" | "help" => {
            println!("{USAGE}\n{}", claude_code_api::admin_cli::USAGE);
            Ok(())
        }
        other => anyhow::bail!("unknown command {other:?}\n{USAGE}"),
    }
}

/// Prints the table of variables as `config/example.env` or as Markdown.
fn config(what: Option<&str>) -> anyhow::Result<()> {
    use claude_code_api_core::config::table;
    match what {
        Some("example-env") => print!("{}", table::example_env()),
        Some("docs-table") => print!("{}", table::docs_table()),
        _ => anyhow::bail!("usage: claude-code-api config example-env | docs-table"),
    }
    Ok(())
}

/// Runs the CLI's own login for the server's Claude config folder, so the
/// server runs on that login; `--token` runs `claude setup-token` instead
/// (for a host without a browser), whose token goes in
/// `CLAUDE_CODE_OAUTH_TOKEN`.
fn login(settings: Settings, args: &[String]) -> anyhow::Result<()> {
    let cwd = std::env::current_dir()?;
    let settings = settings.with_absolute_paths(&cwd);
    let cli = settings.sessions.resolved_cli_path();
    let token = match args {
        [] => false,
        [flag] if flag == "--token" => true,
        _ => anyhow::bail!("usage: claude-code-api login [--token]"),
    };
    let mut command = std::process::Command::new(&cli);
    if token {
        command.arg("setup-token");
    } else {
        command.args(["auth", "login"]);
    }
    if let Some(dir) = &settings.model.login_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        command.env("CLAUDE_CONFIG_DIR", dir);
    }
    let status = command
        .status()
        .with_context(|| format!("cannot run {}", cli.display()))?;
    if !status.success() {
        anyhow::bail!("{} exited with {status}", cli.display());
    }
    if token {
        println!("\nPut the token above in the server's environment (or .env) as CLAUDE_CODE_OAUTH_TOKEN=…");
        return Ok(());
    }
    let file = settings
        .model
        .login_dir
        .map(|d| d.join(".credentials.json"))
        .filter(|f| f.is_file())
        .ok_or_else(|| anyhow::anyhow!("the login wrote no credentials file"))?;
    println!(
        "Logged in: {} (the server uses it at its next start; /health shows model_auth.source = cli_login).",
        file.display()
    );
    Ok(())
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    // Processes of the same user (an unconfined agent, say) cannot read this
    // one's memory or /proc/<pid>/environ.
    // SAFETY: prctl with PR_SET_DUMPABLE only changes this process's flag.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    let app = Application::build(settings.clone()).await?;
    if let Some(key) = &app.generated_key {
        // Printed once, never logged; only its hash is stored.
        println!("No API key was configured, so one was created. Keep it now; it is not shown again:\n\n    {key}\n");
    }
    tracing::info!(host = %settings.server.host, port = app.port(), "listening");
    app.run_until_stopped().await?;
    Ok(())
}
