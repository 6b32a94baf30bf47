//! Sign-in through the OpenID provider (`services::console_oidc`): the
//! redirect to the provider and its callback.
//!
//! The sign-in under way is bound to the browser that started it by a
//! cookie of its own (`cca_oidc`: HttpOnly, `SameSite=Lax` so that it comes
//! back with the provider's cross-site redirect, `Secure` when `PUBLIC_URL`
//! is https, ten minutes, path `/console/oidc`); a callback without it
//! (another browser: login CSRF) is refused.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use claude_code_api_core::error::ServiceError;
use claude_code_api_core::services::console_oidc::{self, Callback, MAX_CALLBACK_PARAM};
use minijinja::context;
use serde::Deserialize;

use super::{error_page, render};
use crate::error::ApiError;
use crate::identity::console_sign_in as auth;
use crate::state::AppState;

/// The cookie of a sign-in under way.
pub const FLOW_COOKIE: &str = "cca_oidc";
const FLOW_PATH: &str = "/console/oidc";

/// Whether the sign-in's cookies must be `Secure`: `PUBLIC_URL` is https,
/// or the browser reached us over TLS.
fn secure(req: &HttpRequest, state: &AppState) -> bool {
    let https = state
        .services
        .settings
        .oidc
        .provider
        .as_ref()
        .is_some_and(|p| p.is_https());
    https || req.connection_info().scheme() == "https"
}

fn flow_cookie(req: &HttpRequest, state: &AppState, value: String) -> Cookie<'static> {
    Cookie::build(FLOW_COOKIE, value)
        .path(FLOW_PATH)
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure(req, state))
        .max_age(actix_web::cookie::time::Duration::minutes(
            console_oidc::LOGIN_MINUTES,
        ))
        .finish()
}

fn no_store(mut res: HttpResponse) -> HttpResponse {
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res
}

/// `GET /console/oidc/login`: to the provider's authorization endpoint,
/// with a fresh state, nonce and PKCE challenge.
pub async fn login(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match console_oidc::begin(&state.services).await {
        Ok(begun) => no_store(
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, begun.redirect))
                .cookie(flow_cookie(&req, &state, begun.cookie_value))
                .finish(),
        ),
        Err(e) => no_store(error_page(&ApiError(e))),
    }
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    iss: Option<String>,
}

/// `GET /console/oidc/callback`: the provider's answer. A console session
/// for the person, or a page saying why not; the sign-in's cookie is
/// removed either way (it is used once).
pub async fn callback(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let mut removal = flow_cookie(&req, &state, String::new());
    removal.make_removal();
    let result = async {
        if req.query_string().len() > 4 * MAX_CALLBACK_PARAM {
            return Err(ApiError::from(ServiceError::BadRequest(
                "the provider's answer is too long".into(),
            )));
        }
        let query = web::Query::<CallbackQuery>::from_query(req.query_string())
            .map_err(|_| ServiceError::BadRequest("the provider's answer is malformed".into()))?
            .into_inner();
        let flow = req.cookie(FLOW_COOKIE).map(|c| c.value().to_owned());
        let person = console_oidc::finish(
            &state.services,
            flow.as_deref(),
            Callback {
                code: query.code,
                state: query.state,
                error: query.error,
                error_description: query.error_description,
                iss: query.iss,
            },
        )
        .await?;
        let mut session = auth::cookie(&req, auth::COOKIE, person.cookie_value, "/");
        session.set_secure(secure(&req, &state));
        session.set_max_age(actix_web::cookie::time::Duration::hours(
            auth::SESSION_HOURS,
        ));
        // The provider's redirect is a cross-site navigation: a
        // SameSite=Strict cookie set now is not sent on a redirect that
        // continues it, so this page opens the console itself.
        let mut res = render(
            "signed_in.html",
            context! { who => person.subject, role => person.role, tenant => person.tenant },
        )?;
        res.add_cookie(&session)
            .map_err(|e| ServiceError::internal(format!("session cookie: {e}")))?;
        Ok(res)
    }
    .await;
    let mut res = result.unwrap_or_else(|e| error_page(&e));
    let _ = res.add_cookie(&removal);
    no_store(res)
}
