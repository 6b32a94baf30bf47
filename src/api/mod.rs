//! The HTTP surface: the whole route table on one screen, and the state
//! every handler shares. Handlers extract, validate, make one call, map.

mod admin;
mod audit;
mod chat;
mod control;
pub mod envelope;
mod files;
mod health;
mod history;
mod idempotency;
mod jobs;
pub mod mcp;
pub mod middleware;
mod openai;
mod sessions;
mod templates;
mod usage;
mod webhooks;
mod workspaces;

use std::path::PathBuf;
use std::sync::Arc;

use actix::Addr;
use actix_web::web;

use crate::actors::supervisor::Supervisor;
use crate::config::Settings;
use crate::db::DbPool;

/// Largest JSON body accepted, chunked or not.
pub const JSON_LIMIT: usize = 2 * 1024 * 1024;

/// Shared by every handler.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub pool: DbPool,
    pub supervisor: Addr<Supervisor>,
    /// Detected at start by `claude --version`; `None` when it cannot run.
    pub cli_version: Option<String>,
    /// `APPROVED_DIRECTORY`, absolute.
    pub workspace_root: PathBuf,
    /// The webhook dispatcher, to send what was just queued.
    pub webhooks: actix::Recipient<crate::actors::webhooks::Wake>,
    /// Per-key request budgets.
    pub rate_limits: crate::security::rate_limit::RateLimits,
}

pub fn routes(cfg: &mut web::ServiceConfig, mcp_server: &mcp::McpServer) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(JSON_LIMIT)
            .error_handler(|err, _| crate::error::json_error(err).into()),
    )
    .app_data(web::QueryConfig::default().error_handler(|err, _| {
        crate::error::ApiError::Validation(format!("invalid query string: {err}")).into()
    }))
    .app_data(web::PathConfig::default().error_handler(|err, _| {
        crate::error::ApiError::NotFound(format!("no such resource: {err}")).into()
    }))
    .route("/health", web::get().to(health::health))
    // OpenAI-compatible surface (same keys, same tenants).
    .service(
        web::scope("/v1")
            .route(
                "/chat/completions",
                web::post().to(openai::chat_completions),
            )
            .route("/models", web::get().to(openai::list_models)),
    )
    // MCP (streamable HTTP transport).
    .service(mcp::scope(mcp_server))
    .service(
        web::scope("/api/v1")
            .wrap(actix_web::middleware::from_fn(
                crate::security::rate_limit::middleware,
            ))
            .route("/health", web::get().to(health::health))
            .service(
                web::resource("/sessions")
                    .route(web::post().to(sessions::create_session))
                    .route(web::get().to(sessions::list_sessions)),
            )
            .service(
                web::resource("/sessions/{name}")
                    .route(web::get().to(sessions::get_session))
                    .route(web::delete().to(sessions::delete_session)),
            )
            .route("/sessions/{name}/chat", web::post().to(chat::chat))
            .route(
                "/sessions/{name}/chat/stream",
                web::post().to(chat::chat_stream),
            )
            .route(
                "/sessions/{name}/history",
                web::get().to(history::get_history),
            )
            .service(
                web::resource("/sessions/{name}/jobs")
                    .route(web::post().to(jobs::create_job))
                    .route(web::get().to(jobs::list_jobs)),
            )
            .route("/sessions/{name}/jobs/{id}", web::get().to(jobs::get_job))
            .route(
                "/sessions/{name}/jobs/{id}/cancel",
                web::post().to(jobs::cancel_job),
            )
            .route(
                "/webhooks/deliveries",
                web::get().to(webhooks::list_deliveries),
            )
            .route(
                "/webhooks/deliveries/{id}/redeliver",
                web::post().to(webhooks::redeliver),
            )
            .route(
                "/sessions/{name}/repo",
                web::post().to(workspaces::set_working_dir),
            )
            .service(
                web::resource("/sessions/{name}/files")
                    .route(web::post().to(files::upload_file))
                    .route(web::get().to(files::list_files)),
            )
            .service(
                web::resource("/sessions/{name}/files/{path:.*}")
                    .route(web::get().to(files::download_file))
                    .route(web::delete().to(files::delete_file)),
            )
            .route(
                "/sessions/{name}/archive",
                web::get().to(files::download_archive),
            )
            .route(
                "/sessions/{name}/events",
                web::get().to(control::session_events),
            )
            .route(
                "/sessions/{name}/interrupt",
                web::post().to(control::interrupt_session),
            )
            .route(
                "/sessions/{name}/approvals",
                web::get().to(control::list_approvals),
            )
            .route(
                "/sessions/{name}/approvals/{id}",
                web::post().to(control::decide_approval),
            )
            .route("/templates", web::get().to(templates::list_templates))
            .route(
                "/templates/reload",
                web::post().to(templates::reload_templates),
            )
            .route("/templates/{name}", web::get().to(templates::get_template))
            .route("/usage", web::get().to(usage::get_usage))
            .route("/tokens/count", web::post().to(usage::count_tokens))
            .route("/audit", web::get().to(audit::list_audit))
            .service(
                web::resource("/admin/tenants")
                    .route(web::get().to(admin::list_tenants))
                    .route(web::post().to(admin::create_tenant)),
            )
            .route("/admin/tenants/{id}", web::patch().to(admin::update_tenant))
            .service(
                web::resource("/admin/keys")
                    .route(web::get().to(admin::list_keys))
                    .route(web::post().to(admin::create_key)),
            )
            .route("/admin/keys/{id}/revoke", web::post().to(admin::revoke_key)),
    );
}
