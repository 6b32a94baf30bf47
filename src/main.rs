//! `claude-code-api [serve]` runs the server; `migrate` only applies the
//! database migrations; `openapi` prints the OpenAPI document.

use anyhow::Context as _;
use claude_code_api::app::Application;
use claude_code_api::config::Settings;

const USAGE: &str =
    "usage: claude-code-api [serve | migrate | webhook-secret | openapi | keys … | tenants … | --help]";

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let command = std::env::args().nth(1).unwrap_or_else(|| "serve".into());
    let settings = Settings::from_env()?;
    claude_code_api::telemetry::init(&settings);
    match command.as_str() {
        "serve" => serve(settings).await,
        "migrate" => {
            let url = settings.effective_database_url();
            if let Some(parent) = std::path::Path::new(&url).parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            claude_code_api::db::connect(&url).context("migrations failed")?;
            println!("database is up to date");
            Ok(())
        }
        "webhook-secret" => {
            // The secret receivers verify signatures with: WEBHOOK_SECRET, or
            // the one generated at first start and kept in the database.
            if let Some(secret) = &settings.webhook_secret {
                println!("{secret}");
                return Ok(());
            }
            let pool = claude_code_api::db::connect(&settings.effective_database_url())
                .context("cannot open the database")?;
            let mut conn = pool.get().context("cannot open the database")?;
            let secret = claude_code_api::db::models::secret::get_or_create(
                &mut conn,
                claude_code_api::app::WEBHOOK_SECRET_NAME,
                claude_code_api::webhooks::signing::WebhookSecret::generate,
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

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings.clone()).await?;
    if let Some(key) = &app.generated_key {
        // Printed once, never logged; only its hash is stored.
        println!("No API key was configured, so one was created. Keep it now; it is not shown again:\n\n    {key}\n");
    }
    tracing::info!(host = %settings.api_host, port = app.port(), "listening");
    app.run_until_stopped().await?;
    Ok(())
}
