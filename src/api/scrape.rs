//! The `/metrics` listener (`METRICS_ADDR`), apart from the API so the
//! scrape port can be kept off the public address.

use actix_web::{web, HttpResponse};

use claude_code_api_core::actors::supervisor::Supervisor;

/// `GET /metrics`: the text exposition format. Live-process numbers are read
/// from the supervisor at scrape time.
async fn serve_metrics(supervisor: web::Data<actix::Addr<Supervisor>>) -> HttpResponse {
    if let Some(stats) = claude_code_api_core::services::nodes::session_stats(&supervisor).await {
        claude_code_api_core::metrics::set_live(
            stats.live_processes,
            stats.live_sessions,
            stats.waiting_for_slot,
        );
    }
    match claude_code_api_core::metrics::encode() {
        Some(Ok(out)) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(out),
        Some(Err(e)) => {
            tracing::error!(error = %e, "cannot encode metrics");
            HttpResponse::InternalServerError().finish()
        }
        None => HttpResponse::ServiceUnavailable().finish(),
    }
}

/// The metrics listener's app: `/metrics` only.
pub fn server(
    listener: std::net::TcpListener,
    supervisor: actix::Addr<Supervisor>,
) -> std::io::Result<actix_web::dev::Server> {
    let supervisor = web::Data::new(supervisor);
    Ok(actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(supervisor.clone())
            .route("/metrics", web::get().to(serve_metrics))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run())
}
