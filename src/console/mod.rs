//! The web console under `/console`: server-rendered pages (minijinja,
//! autoescaped, page templates in `console/pages/`) and one small vendored
//! script (`console/static/`), both compiled into the binary so it serves
//! them offline wherever it runs.
//!
//! The console is a client of the API's rules, not a copy of them: pages
//! read through the same tenant-scoped queries, and everything that changes
//! state (create, delete, chat, approve, cancel, keys) is a call of the
//! script to the JSON API, authenticated by the console cookie plus the
//! CSRF header (`identity::console_sign_in`). Only signing in and out are console form posts.

mod oidc;
mod pages;
pub mod views;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpResponse, ResponseError};
use claude_code_api_core::error::ServiceError;
use std::sync::OnceLock;

use crate::error::ApiError;

/// Where the console lives.
pub use crate::state::CONSOLE_BASE as BASE;

/// No inline script or style, nothing from elsewhere, never framed.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// The templates, compiled in.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../console/pages/base.html")),
    ("login.html", include_str!("../../console/pages/login.html")),
    (
        "sessions.html",
        include_str!("../../console/pages/sessions.html"),
    ),
    (
        "session.html",
        include_str!("../../console/pages/session.html"),
    ),
    ("jobs.html", include_str!("../../console/pages/jobs.html")),
    (
        "pipelines.html",
        include_str!("../../console/pages/pipelines.html"),
    ),
    (
        "schedules.html",
        include_str!("../../console/pages/schedules.html"),
    ),
    ("usage.html", include_str!("../../console/pages/usage.html")),
    ("admin.html", include_str!("../../console/pages/admin.html")),
    ("error.html", include_str!("../../console/pages/error.html")),
    (
        "signed_out.html",
        include_str!("../../console/pages/signed_out.html"),
    ),
    (
        "signed_in.html",
        include_str!("../../console/pages/signed_in.html"),
    ),
    (
        "macros.html",
        include_str!("../../console/pages/macros.html"),
    ),
];

/// The static assets, compiled in: name, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/static/console.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../../console/static/console.css"),
    ),
];

fn environment() -> &'static minijinja::Environment<'static> {
    static ENV: OnceLock<minijinja::Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = minijinja::Environment::new();
        // `.html` templates escape every value they print.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, source) in TEMPLATES {
            if let Err(e) = env.add_template(name, source) {
                // A broken template is a build mistake; the unit test names it.
                tracing::error!(template = name, error = %e, "console template does not parse");
            }
        }
        env
    })
}

/// Renders a page with the console's headers.
pub fn render(name: &str, ctx: minijinja::Value) -> Result<HttpResponse, ApiError> {
    let html = environment()
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|e| {
            ApiError::from(ServiceError::internal(format!(
                "console template {name}: {e:#}"
            )))
        })?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html))
}

/// A failure as a page (the API's problem documents are for programs).
pub fn error_page(e: &ApiError) -> HttpResponse {
    let status = e.status_code();
    if status.is_server_error() {
        tracing::error!(error = %e, "console page failed");
    }
    // An upstream's failure says what failed (its cause went to the log
    // where it was met); the server's own faults say nothing.
    let detail = if status.is_server_error() && !matches!(e.0, ServiceError::Upstream(_)) {
        "Something went wrong on the server; it was logged.".to_owned()
    } else {
        e.to_string()
    };
    let ctx = minijinja::context! { status => status.as_u16(), detail };
    let html = environment()
        .get_template("error.html")
        .and_then(|t| t.render(ctx))
        .unwrap_or_else(|_| "error".to_owned());
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(html)
}

async fn asset(name: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|(n, _, _)| *n == name.as_str()) {
        Some((_, kind, bytes)) => HttpResponse::Ok()
            .content_type(*kind)
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(*bytes),
        None => HttpResponse::NotFound().finish(),
    }
}

/// Security headers on every console response.
fn headers() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new()
        .add((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::REFERRER_POLICY, "same-origin"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
}

/// Mounts the console: `App::configure(console::routes)`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(BASE)
            .wrap(headers())
            .route("", web::get().to(pages::home))
            .route("/", web::get().to(pages::home))
            .route("/static/{name}", web::get().to(asset))
            .route("/login", web::get().to(pages::login_form))
            .route("/login", web::post().to(pages::login))
            .route("/logout", web::post().to(pages::logout))
            .route("/oidc/login", web::get().to(oidc::login))
            .route("/oidc/callback", web::get().to(oidc::callback))
            .route("/sessions", web::get().to(pages::sessions))
            .route("/sessions/{name}", web::get().to(pages::session))
            .route("/jobs", web::get().to(pages::jobs))
            .route("/schedules", web::get().to(pages::schedules))
            .route("/pipelines", web::get().to(pages::pipelines))
            .route("/usage", web::get().to(pages::usage))
            .route("/admin", web::get().to(pages::admin))
            .default_service(web::to(|| async {
                error_page(&ApiError::from(ServiceError::NotFound(
                    "there is no such console page".into(),
                )))
            })),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        let mut env = minijinja::Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
        for (name, _) in TEMPLATES {
            env.get_template(name)
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
    }

    #[test]
    fn agent_text_is_escaped() {
        let html = environment()
            .get_template("error.html")
            .and_then(|t| {
                t.render(
                    minijinja::context! { status => 400, detail => "<script>alert(1)</script>" },
                )
            })
            .unwrap();
        assert!(html.contains("&lt;script&gt;alert(1)&lt;"), "{html}");
        assert!(!html.contains("<script>alert"));
    }
}
