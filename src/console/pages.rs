//! The console's pages and its two form posts (sign in, sign out; the
//! provider's sign-in is `oidc.rs`).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use claude_code_api_core::error::ServiceError;
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::views::{self, ApprovalCard, MessageView, SessionRow, Status};
use super::{error_page, render};
use crate::error::ApiError;
use crate::identity::client_ip;
use crate::identity::console_sign_in::{self as auth, SignedIn};
use crate::state::AppState;
use claude_code_api_core::domain::role::Role;
use claude_code_api_core::services::{admin, console_oidc, members, overview};

/// Who is signed in, as the layout shows it.
#[derive(Serialize)]
struct Me {
    tenant: String,
    key: String,
    role: String,
    admin: bool,
    csrf: String,
}

impl From<&SignedIn> for Me {
    fn from(s: &SignedIn) -> Me {
        Me {
            tenant: s.caller.tenant.0.clone(),
            key: s.caller.key_label.clone(),
            role: s.caller.role.clone(),
            admin: s.caller.is_admin(),
            csrf: s.csrf.clone(),
        }
    }
}

fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// Runs a page for a signed-in browser; others go to the sign-in form.
async fn page<F, Fut>(req: &HttpRequest, state: web::Data<AppState>, f: F) -> HttpResponse
where
    F: FnOnce(SignedIn) -> Fut,
    Fut: std::future::Future<Output = Result<HttpResponse, ApiError>>,
{
    let result = match auth::signed_in(req, &state).await {
        Ok(Some(me)) => f(me).await,
        Ok(None) => return see_other("/console/login"),
        Err(e) => Err(e),
    };
    let mut res = result.unwrap_or_else(|e| error_page(&e));
    // Pages hold a CSRF token and tenant data: never cached.
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res
}

pub async fn home(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match auth::signed_in(&req, &state).await {
        Ok(Some(_)) => see_other("/console/sessions"),
        Ok(None) => see_other("/console/login"),
        Err(e) => error_page(&e),
    }
}

fn login_page(
    req: &HttpRequest,
    state: &AppState,
    status: actix_web::http::StatusCode,
    error: Option<&str>,
) -> HttpResponse {
    let token = auth::random_token();
    // The provider's button, when one is configured.
    let provider = state
        .services
        .settings
        .oidc
        .provider
        .as_ref()
        .map(|p| p.name.clone());
    let ctx = context! { csrf => token.clone(), error, provider };
    match render("login.html", ctx) {
        Ok(mut res) => {
            *res.status_mut() = status;
            let cookie = auth::cookie(req, auth::LOGIN_COOKIE, token, "/console/login");
            let _ = res.add_cookie(&cookie);
            res.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            res
        }
        Err(e) => error_page(&e),
    }
}

/// `GET /console/login`: the sign-in form, with a fresh CSRF token held in
/// a cookie of its own (there is no session yet to hold it).
pub async fn login_form(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Ok(Some(_)) = auth::signed_in(&req, &state).await {
        return see_other("/console/sessions");
    }
    login_page(&req, &state, actix_web::http::StatusCode::OK, None)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    key: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /console/login`: the key, once; answers with the session cookie.
/// Failed keys count against the address like failed API keys do.
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    use actix_web::http::StatusCode;
    let expected = req
        .cookie(auth::LOGIN_COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    if !auth::same_token(&form.csrf, &expected) {
        return error_page(&ApiError::from(ServiceError::Forbidden(
            "the sign-in form expired or came from another site; reload it and try again".into(),
        )));
    }
    let client = client_ip(&req, &state.services.settings.server.trusted_proxies);
    let key = form.key.trim();
    let key_hash = claude_code_api_core::security::keys::hash_key(key);
    if let Some(wait) = client.and_then(|ip| state.auth_failures.blocked(ip, &key_hash)) {
        return login_page(
            &req,
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            Some(&format!(
                "Too many failed sign-ins from this address; retry in {wait} s."
            )),
        );
    }
    // A token is not a key: the console signs in with API keys only (a
    // token resolved here would share the bearer tokens' cache).
    let is_token = claude_code_api_core::security::tokens::looks_like_jwt(key);
    let resolved = if key.is_empty() || key.len() > auth::MAX_KEY_LEN || is_token {
        None
    } else {
        match state
            .services
            .identities
            .resolve(&state.services.pool, &state.services.settings, key)
            .await
        {
            Ok(r) => r,
            Err(e) => return error_page(&ApiError(e)),
        }
    };
    let Some(resolved) = resolved else {
        if let Some(ip) = client {
            state.auth_failures.failed(ip);
        }
        return login_page(
            &req,
            &state,
            StatusCode::UNAUTHORIZED,
            Some("That key is not valid (unknown or revoked)."),
        );
    };
    if let Some(ip) = client {
        state.auth_failures.succeeded(ip, &key_hash);
    }
    let id = match auth::create(&state, &resolved.caller).await {
        Ok(v) => v,
        Err(e) => return error_page(&e),
    };
    let mut session_cookie = auth::cookie(&req, auth::COOKIE, id, "/");
    session_cookie.set_max_age(actix_web::cookie::time::Duration::hours(
        auth::SESSION_HOURS,
    ));
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/console/sessions"))
        .cookie(session_cookie)
        .cookie(auth::removal(&req, auth::LOGIN_COOKIE, "/console/login"))
        .finish()
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /console/logout`: ends the session (its row is deleted).
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    let me = match auth::signed_in(&req, &state).await {
        Ok(Some(me)) => me,
        Ok(None) => return see_other("/console/login"),
        Err(e) => return error_page(&e),
    };
    if !auth::same_token(&form.csrf, &me.csrf) {
        return error_page(&ApiError::from(ServiceError::Forbidden(
            "this form lacks the session's CSRF token".into(),
        )));
    }
    let mut provider_logout = None;
    if let Some(c) = req.cookie(auth::COOKIE) {
        if let Err(e) = auth::destroy(&state, c.value()).await {
            return error_page(&e);
        }
        // A person's session: signed out at the provider too, where it can.
        match console_oidc::sign_out(&state.services, c.value()).await {
            Ok(url) => provider_logout = url,
            Err(e) => return error_page(&ApiError(e)),
        }
    }
    let removal = auth::removal(&req, auth::COOKIE, "/");
    let Some(url) = provider_logout else {
        return HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/console/login"))
            .cookie(removal)
            .finish();
    };
    // The console's policy lets a form lead only to the console
    // (`form-action 'self'`, enforced on redirects too): this page
    // navigates to the provider's logout instead of a redirect.
    let mut res = match render("signed_out.html", context! { url }) {
        Ok(res) => res,
        Err(e) => return error_page(&e),
    };
    let _ = res.add_cookie(&removal);
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res
}

/// The tenant's sessions with their live state.
async fn session_rows(state: &AppState, me: &SignedIn) -> Result<(Vec<SessionRow>, i64), ApiError> {
    let overview::SessionsOverview {
        sessions: rows,
        total,
        failed,
        mut pending,
        running,
    } = overview::sessions(&state.services, &me.caller, views::MAX_SESSIONS).await?;
    let rows = rows
        .into_iter()
        .map(|s| {
            let approvals = pending.remove(&s.id).unwrap_or_default();
            let is_running = running.contains(&s.id);
            // A pending row counts only while its turn runs (as on the API).
            let status = Status::of(is_running, !approvals.is_empty(), failed.contains(&s.id));
            SessionRow {
                status_label: status.label(),
                status,
                turns: s.turns,
                cost: views::usd(s.total_cost_micros),
                last_activity: views::when(&s.updated_at),
                private: s.private_to.is_some(),
                approvals: if is_running {
                    approvals
                        .iter()
                        .map(|a| ApprovalCard::from(a).relative_to(&s.workspace))
                        .collect()
                } else {
                    Vec::new()
                },
                name: s.name,
            }
        })
        .collect();
    Ok((rows, total))
}

/// `GET /console/sessions`.
pub async fn sessions(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    page(&req, state.clone(), |me| async move {
        let (rows, total) = session_rows(&state, &me).await?;
        let shown = rows.len();
        render(
            "sessions.html",
            context! { me => Me::from(&me), nav => "sessions", sessions => rows, total, shown,
            modes => ["default", "acceptEdits", "plan", "bypassPermissions", "dontAsk"] },
        )
    })
    .await
}

/// `GET /console/sessions/{name}`.
pub async fn session(
    req: HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> HttpResponse {
    page(&req, state.clone(), |me| async move {
        let name = name.into_inner();
        // Longer than any session name: not one (and not worth a query).
        if name.len() > 128 {
            return Err(ApiError::from(ServiceError::NotFound(
                "no such session".into(),
            )));
        }
        let overview::SessionOverview {
            session: row,
            messages,
            skipped,
            after,
            running,
            last_failed: failed,
            pending,
        } = overview::session(&state.services, &me.caller, &name, views::MAX_MESSAGES).await?;
        let status = Status::of(running, !pending.is_empty(), failed);
        // Pending rows count only while their turn runs (as on the API).
        let approvals: Vec<ApprovalCard> = if running {
            pending
                .iter()
                .map(|a| ApprovalCard::from(a).relative_to(&row.workspace))
                .collect()
        } else {
            Vec::new()
        };
        let spec: claude_code_api_core::domain::session::SessionSpec =
            serde_json::from_str(&row.spec).unwrap_or_default();
        let changes: Vec<_> = views::last_changes(&messages)
            .into_iter()
            .map(|t| t.relative_to(&row.workspace))
            .collect();
        let messages: Vec<MessageView> = messages
            .iter()
            .map(|m| MessageView::from(m).relative_to(&row.workspace))
            .collect();
        render(
            "session.html",
            context! {
                me => Me::from(&me), nav => "sessions",
                name => row.name,
                status, status_label => status.label(),
                cost => views::usd(row.total_cost_micros),
                cost_micros => row.total_cost_micros,
                budget => row.budget_micros.map(views::usd),
                turns => row.turns,
                model => spec.model,
                mode => spec.permission_mode.map(|m| m.as_str()),
                workspace => row.workspace,
                created_at => views::when(&row.created_at),
                last_activity => views::when(&row.updated_at),
                messages, skipped, after,
                approvals, changes,
            },
        )
    })
    .await
}

/// `GET /console/jobs`.
pub async fn jobs(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    page(&req, state.clone(), |me| async move {
        let found = overview::jobs(
            &state.services,
            &me.caller,
            views::MAX_JOBS,
            views::MAX_SESSIONS,
        )
        .await?;
        let jobs = views::job_rows(found.jobs, found.deliveries);
        let names = found.session_names;
        render(
            "jobs.html",
            context! { me => Me::from(&me), nav => "jobs", jobs, sessions => names,
            max => views::MAX_JOBS },
        )
    })
    .await
}

/// `GET /console/schedules`: each schedule with its next and last run.
pub async fn schedules(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    page(&req, state.clone(), |me| async move {
        let who =
            claude_code_api_core::services::launch::requester(me.caller.clone(), "console".into());
        let (found, total) = claude_code_api_core::services::schedules::list(
            &state.services,
            &who,
            0,
            views::MAX_SCHEDULES,
        )
        .await?;
        let schedules: Vec<_> = found.iter().map(views::schedule_row).collect();
        render(
            "schedules.html",
            context! { me => Me::from(&me), nav => "schedules", schedules, total },
        )
    })
    .await
}

/// `GET /console/pipelines`: the newest pipelines, each as its graph.
pub async fn pipelines(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    page(&req, state.clone(), |me| async move {
        let who =
            claude_code_api_core::services::launch::requester(me.caller.clone(), "console".into());
        let (found, total) = claude_code_api_core::services::pipelines::list(
            &state.services,
            &who,
            0,
            views::MAX_PIPELINES,
        )
        .await?;
        let pipelines: Vec<_> = found.iter().map(views::pipeline_row).collect();
        render(
            "pipelines.html",
            context! { me => Me::from(&me), nav => "pipelines", pipelines, total },
        )
    })
    .await
}

/// `GET /console/usage`.
pub async fn usage(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    page(&req, state.clone(), |me| async move {
        let (usage, row) = overview::spend(&state.services, &me.caller).await?;
        let (budget, spent, reserved) = row
            .map(|t| (t.budget_micros, t.spent_micros, t.reserved_micros))
            .unwrap_or((None, usage.cost_micros, 0));
        let percent = views::percent(spent, budget);
        let active = !usage.days.is_empty();
        let today = chrono::Utc::now().date_naive();
        let bars = views::bars(&views::last_days(&usage.days, today));
        render(
            "usage.html",
            context! {
                me => Me::from(&me), nav => "usage",
                spent => views::usd(spent),
                reserved => views::usd(reserved),
                budget => budget.map(views::usd),
                percent,
                gauge => percent.map(|p| p * 3),
                remaining => budget.map(|b| views::usd((b - spent).max(0))),
                bars, active,
                chart_width => views::CHART_WIDTH,
                chart_height => views::CHART_HEIGHT,
                sessions => usage.sessions,
                turns => usage.turns,
                input_tokens => usage.input_tokens,
                output_tokens => usage.output_tokens,
                jobs => usage.jobs,
            },
        )
    })
    .await
}

/// `GET /console/admin`: every tenant and key (admin keys only, as on the API).
pub async fn admin(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    page(&req, state.clone(), |me| async move {
        let services = &state.services;
        let tenants = admin::list_tenants(services, &me.caller).await?;
        let keys = admin::list_keys(services, &me.caller, None).await?;
        // People are managed per tenant: the page shows the signed-in one's.
        let who =
            claude_code_api_core::services::launch::requester(me.caller.clone(), "console".into());
        let members = members::list(services, &who, None).await?;
        let invitations = members::invitations(services, &who, None).await?;
        #[derive(Serialize)]
        struct MemberRow {
            id: String,
            subject: String,
            email: String,
            role: String,
            source: String,
            last_sign_in: String,
            /// The signed-in one may change it (not above itself).
            manageable: bool,
        }
        #[derive(Serialize)]
        struct InvitationRow {
            id: String,
            email: String,
            role: String,
            expires_at: String,
            manageable: bool,
        }
        let rank = me.caller.role();
        let below_or_same = |role: &str| Role::from_stored(role) <= rank;
        let members: Vec<MemberRow> = members
            .into_iter()
            .map(|m| MemberRow {
                manageable: below_or_same(&m.role),
                last_sign_in: m
                    .last_sign_in_at
                    .as_ref()
                    .map(views::when)
                    .unwrap_or_else(|| "never".into()),
                email: m.email.unwrap_or_default(),
                id: m.id,
                subject: m.subject,
                role: m.role,
                source: m.source,
            })
            .collect();
        let invitations: Vec<InvitationRow> = invitations
            .into_iter()
            .map(|i| InvitationRow {
                manageable: below_or_same(&i.role),
                expires_at: views::when(&i.expires_at),
                id: i.id,
                email: i.email,
                role: i.role,
            })
            .collect();
        // The roles the signed-in one may grant.
        let roles: Vec<&str> = Role::ALL
            .iter()
            .filter(|role| **role <= rank)
            .map(|role| role.as_str())
            .collect();
        #[derive(Serialize)]
        struct TenantRow {
            id: String,
            budget: Option<String>,
            spent: String,
            max_sessions: Option<i64>,
        }
        #[derive(Serialize)]
        struct KeyRow {
            id: String,
            tenant: String,
            prefix: String,
            label: String,
            role: String,
            created_at: String,
            revoked: bool,
        }
        let tenants: Vec<TenantRow> = tenants
            .into_iter()
            .map(|t| TenantRow {
                budget: t.budget_micros.map(views::usd),
                spent: views::usd(t.spent_micros),
                max_sessions: t.max_sessions,
                id: t.id,
            })
            .collect();
        let keys: Vec<KeyRow> = keys
            .into_iter()
            .map(|k| KeyRow {
                revoked: k.revoked_at.is_some(),
                created_at: views::when(&k.created_at),
                id: k.id,
                tenant: k.tenant_id,
                prefix: k.prefix,
                label: k.label,
                role: k.role,
            })
            .collect();
        render(
            "admin.html",
            context! {
                me => Me::from(&me), nav => "admin", tenants, keys, members, invitations, roles,
                owner => me.caller.is_owner(), tenant => me.caller.tenant.0.clone(),
            },
        )
    })
    .await
}
