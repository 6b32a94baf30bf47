//! `GET /health`: is the database up, which CLI is installed.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;
use crate::actors::supervisor::messages::Stats;

pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let database_ok = crate::db::ping(&state.pool).await;
    let sessions = state.supervisor.send(Stats).await.ok();
    let cli = match &state.cli_version {
        Some(version) => json!({"status": "ok", "version": version}),
        None => json!({"status": "error", "detail": "the Claude Code CLI could not be run"}),
    };
    let status = if database_ok && state.cli_version.is_some() {
        "ok"
    } else {
        "degraded"
    };
    let body = json!({
        "status": status,
        "checks": {
            "database": {"status": if database_ok { "ok" } else { "error" }},
            "claude_cli": cli,
        },
        "sessions": sessions,
    });
    if database_ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
