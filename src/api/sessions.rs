//! Sessions: create, list, get, delete.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use utoipa::ToSchema;

use super::envelope::{self, Envelope, PageQuery, Paged};
use super::AppState;
use crate::actors::session::turn::micros_to_usd;
use crate::actors::supervisor::messages::{CloseSession, RunningSessions, WarmSession};
use crate::db::models::session::{self, Session};
use crate::error::{ApiError, Problem};
use crate::security::auth::Caller;
use crate::spec::{Effort, PermissionMode, SessionSpec};

/// A new session. Fields left out come from the template, then the
/// server's defaults.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// 1–128 of `[A-Za-z0-9._-]`, not starting with a dot; unique in the tenant.
    #[schema(pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")]
    name: String,
    /// Optional spend limit of this session, in USD (kept in micro-USD).
    #[serde(default)]
    #[schema(minimum = 0.000001, exclusive_maximum = 1e9)]
    budget_usd: Option<f64>,
    /// An agent template (`GET /api/v1/templates`); an unknown one is a 404.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")]
    template: Option<String>,
    /// Replaces Claude Code's own system prompt.
    #[serde(default)]
    system_prompt: Option<String>,
    /// Appended to Claude Code's own system prompt.
    #[serde(default)]
    append_system_prompt: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default, deserialize_with = "super::envelope::integer")]
    #[schema(minimum = 1, maximum = 4294967295_u64)]
    max_turns: Option<u32>,
    #[serde(default)]
    permission_mode: Option<PermissionMode>,
    #[serde(default)]
    effort: Option<Effort>,
    /// Tool names, as a list or one comma-separated string.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    allowed_tools: Option<serde_json::Value>,
    /// Tool names, as a list or one comma-separated string.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    disallowed_tools: Option<serde_json::Value>,
    /// Accepted for clients of the original and ignored: the key decides
    /// the tenant (the session's `user_id`).
    #[serde(default)]
    user_id: Option<String>,
}

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// No turn has reached the CLI yet.
    Pending,
    /// Has a conversation; no turn runs now.
    Active,
    /// A turn runs now.
    Running,
    /// A running turn waits on a tool approval.
    WaitingForApproval,
}

/// A session as clients see it. Every spec field is present, `null` when
/// unset (the server default applies).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionData {
    id: String,
    name: String,
    workspace: String,
    /// The workspace again, under the name clients of the original read.
    working_dir: String,
    /// The tenant the session belongs to (the key decides it).
    user_id: String,
    status: SessionStatus,
    template: Option<String>,
    /// Replaces Claude Code's own system prompt.
    system_prompt: Option<String>,
    /// Appended to Claude Code's own system prompt.
    append_system_prompt: Option<String>,
    model: Option<String>,
    max_turns: Option<u32>,
    permission_mode: Option<PermissionMode>,
    effort: Option<Effort>,
    allowed_tools: Option<Vec<String>>,
    disallowed_tools: Option<Vec<String>>,
    /// A template's extra environment; values read `[redacted]`.
    env: Option<std::collections::BTreeMap<String, String>>,
    /// A template's MCP servers; `env` and `headers` values read `[redacted]`.
    #[schema(value_type = Option<Object>)]
    mcp_servers: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    /// The CLI's own conversation id, once the CLI has reported it.
    cli_session_id: Option<String>,
    /// This session's own spend limit, if any.
    budget: Option<f64>,
    budget_micros: Option<i64>,
    total_cost: f64,
    total_cost_micros: i64,
    /// Turns that reached the CLI.
    turns: i64,
    /// The same count, under the name clients of the original read.
    total_turns: i64,
    input_tokens: i64,
    output_tokens: i64,
    created_at: String,
    updated_at: String,
}

impl SessionData {
    pub fn new(s: Session, status: SessionStatus) -> Self {
        let mut spec: SessionSpec = serde_json::from_str(&s.spec).unwrap_or_default();
        // A template's credentials reach the CLI, never a client.
        crate::redact::credentials(&mut spec.env, &mut spec.mcp_servers);
        SessionData {
            id: s.id,
            name: s.name,
            working_dir: s.workspace.clone(),
            workspace: s.workspace,
            user_id: s.tenant_id,
            status,
            template: spec.template,
            system_prompt: spec.system_prompt,
            append_system_prompt: spec.append_system_prompt,
            model: spec.model,
            max_turns: spec.max_turns,
            permission_mode: spec.permission_mode,
            effort: spec.effort,
            allowed_tools: spec.allowed_tools,
            disallowed_tools: spec.disallowed_tools,
            env: spec.env,
            mcp_servers: spec.mcp_servers,
            cli_session_id: s.cli_session_id,
            budget: s.budget_micros.map(micros_to_usd),
            budget_micros: s.budget_micros,
            total_cost: micros_to_usd(s.total_cost_micros),
            total_cost_micros: s.total_cost_micros,
            turns: s.turns,
            total_turns: s.turns,
            input_tokens: s.input_tokens,
            output_tokens: s.output_tokens,
            created_at: envelope::timestamp(&s.created_at),
            updated_at: envelope::timestamp(&s.updated_at),
        }
    }
}

/// The caller's sessions as documents, each with its live status.
pub async fn session_views(
    state: &AppState,
    caller: &Caller,
    rows: Vec<Session>,
) -> Result<Vec<SessionData>, ApiError> {
    let running = state
        .supervisor
        .send(RunningSessions {
            tenant_id: caller.tenant.0.clone(),
        })
        .await?;
    let tenant = caller.tenant.clone();
    let waiting = crate::db::run(&state.pool, move |c| {
        crate::db::models::approval::sessions_waiting(c, &tenant)
    })
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            // A pending row counts only while its turn runs: one left by a
            // process that is gone can no longer be answered.
            let status = if running.contains(&row.id) && waiting.contains(&row.id) {
                SessionStatus::WaitingForApproval
            } else if running.contains(&row.id) {
                SessionStatus::Running
            } else if row.turns > 0 || row.cli_session_id.is_some() {
                SessionStatus::Active
            } else {
                SessionStatus::Pending
            };
            SessionData::new(row, status)
        })
        .collect())
}

/// One session as a document, with its live status.
pub async fn session_view(
    state: &AppState,
    caller: &Caller,
    row: Session,
) -> Result<SessionData, ApiError> {
    let mut views = session_views(state, caller, vec![row]).await?;
    views
        .pop()
        .ok_or_else(|| ApiError::internal("no session view"))
}

/// Session names: 1–128 of `[A-Za-z0-9._-]`, not starting with a dot.
pub fn validate_name(name: &str) -> Result<(), ApiError> {
    let valid = (1..=128).contains(&name.len())
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(ApiError::Validation(format!(
            "invalid session name {name:?}: use 1-128 characters of A-Z a-z 0-9 . _ - not starting with '.'"
        )))
    }
}

impl CreateSession {
    fn into_spec(self) -> Result<(String, SessionSpec), ApiError> {
        validate_name(&self.name)?;
        if self.max_turns == Some(0) {
            return Err(ApiError::Validation("max_turns must be at least 1".into()));
        }
        let tools = |field: &str,
                     value: Option<serde_json::Value>|
         -> Result<Option<Vec<String>>, ApiError> {
            #[derive(Deserialize)]
            struct Probe {
                #[serde(default, deserialize_with = "crate::spec::tool_list")]
                tools: Option<Vec<String>>,
            }
            let Some(value) = value else { return Ok(None) };
            serde_json::from_value::<Probe>(serde_json::json!({ "tools": value }))
                .map(|p| p.tools)
                .map_err(|_| {
                    ApiError::Validation(format!(
                        "{field} must be a list of tool names or a comma-separated string"
                    ))
                })
        };
        let spec = SessionSpec {
            template: self.template,
            system_prompt: self.system_prompt,
            append_system_prompt: self.append_system_prompt,
            model: self.model,
            max_turns: self.max_turns,
            permission_mode: self.permission_mode,
            effort: self.effort,
            allowed_tools: tools("allowed_tools", self.allowed_tools)?,
            disallowed_tools: tools("disallowed_tools", self.disallowed_tools)?,
            env: None,
            mcp_servers: None,
        };
        Ok((self.name, spec))
    }
}

/// The caller's session by name, or 404 (also for another tenant's session).
pub async fn load_session(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<Session, ApiError> {
    validate_name(name).map_err(|_| ApiError::NotFound(format!("no session named {name:?}")))?;
    tracing::Span::current().record("session", name);
    let tenant = caller.tenant.clone();
    let lookup = name.to_owned();
    crate::db::run(&state.pool, move |c| {
        session::find_by_name(c, &tenant, &lookup)
    })
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no session named {name:?}")))
}

/// Creates the caller's session `name` (already validated) with `spec`:
/// its workspace, then its row. A name taken already, or a tenant at its
/// session cap, is a 409.
pub async fn insert_session(
    state: &AppState,
    caller: &Caller,
    name: String,
    spec: SessionSpec,
    budget_micros: Option<i64>,
) -> Result<Session, ApiError> {
    super::chat::check_permission_mode(state, caller, spec.permission_mode, None).await?;
    let dir = crate::workspace::session_dir(&state.workspace_root, caller.tenant.as_str(), &name);
    let now = crate::db::now();
    let row = Session {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: caller.tenant.0.clone(),
        name: name.clone(),
        workspace: dir.to_string_lossy().into_owned(),
        owns_workspace: false,
        spec: serde_json::to_string(&spec).map_err(ApiError::internal)?,
        cli_session_id: None,
        total_cost_micros: 0,
        turns: 0,
        input_tokens: 0,
        output_tokens: 0,
        created_at: now,
        updated_at: now,
        budget_micros,
    };
    let tenant = caller.tenant.clone();
    let lookup = name.clone();
    let default_cap = state.settings.max_sessions_per_tenant;
    // A first look, so a refused create makes no workspace.
    let (exists, count, cap) = crate::db::run(&state.pool, move |c| {
        let exists = session::find_by_name(c, &tenant, &lookup)?.is_some();
        let count = session::count(c, &tenant)?;
        let cap = crate::db::models::tenant::find_tenant(c, tenant.as_str())?
            .and_then(|t| t.max_sessions)
            .unwrap_or(default_cap);
        Ok((exists, count, cap))
    })
    .await?;
    if exists {
        return Err(ApiError::Conflict(format!(
            "a session named {name:?} already exists"
        )));
    }
    if count >= cap {
        // Never make room by deleting an old session: that is the client's call.
        return Err(ApiError::Conflict(format!(
            "this tenant has {count} sessions, its limit; delete one first"
        )));
    }
    let workspace = dir.clone();
    let owns_workspace = tokio::task::spawn_blocking(move || crate::workspace::create(&workspace))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::internal(format!("cannot create workspace {dir:?}: {e}")))?;
    let row = Session {
        owns_workspace,
        ..row
    };
    let insert = row.clone();
    // The workspace it created is the only one deleting the session removes.
    let created = owns_workspace.then(|| row.workspace.clone());
    // Checked again with the insert, in one step: a create running in
    // parallel may have taken the name or the last place meanwhile.
    let stored = crate::db::run(&state.pool, move |c| {
        session::insert_within_cap(c, &insert, created.as_deref(), default_cap)
    })
    .await;
    let refusal = match stored {
        Ok(Ok(())) => None,
        Ok(Err(session::NotInserted::NameTaken)) => Some(ApiError::Conflict(format!(
            "a session named {name:?} already exists"
        ))),
        Ok(Err(session::NotInserted::AtCap { count })) => Some(ApiError::Conflict(format!(
            "this tenant has {count} sessions, its limit; delete one first"
        ))),
        // Lost a race with a concurrent create of the same name.
        Err(e) if e.is_unique_violation() => Some(ApiError::Conflict(format!(
            "a session named {name:?} already exists"
        ))),
        Err(e) => Some(e.into()),
    };
    if let Some(refusal) = refusal {
        if owns_workspace {
            let _ = crate::workspace::remove(&dir);
        }
        return Err(refusal);
    }
    Ok(row)
}

/// Creates a session and its workspace.
#[utoipa::path(
    post,
    path = "/api/v1/sessions",
    tag = "sessions",
    request_body = CreateSession,
    responses(
        (status = 201, description = "Created; `Location` names it", body = Envelope<SessionData>),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken, or the tenant is at its session limit", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No template of that name", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn create_session(
    req: HttpRequest,
    state: web::Data<AppState>,
    templates: web::Data<crate::templates::Templates>,
    caller: Caller,
    body: super::envelope::JsonObject<CreateSession>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    // Money is kept in micro-USD: a budget that rounds to none is refused.
    let budget_micros = match body.budget_usd {
        Some(usd) if !(usd.is_finite() && (0.000_001..1e9).contains(&usd)) => {
            return Err(ApiError::Validation(
                "budget_usd must be an amount from 0.000001 to 1e9 USD".into(),
            ))
        }
        Some(usd) => Some((usd * 1_000_000.0).round() as i64),
        None => None,
    };
    let (name, spec) = body.into_spec()?;
    tracing::Span::current().record("session", name.as_str());
    // Request fields > template > server defaults (see `spec.rs`).
    let spec = match spec.template.clone() {
        Some(template) if !crate::templates::valid_name(&template) => {
            return Err(ApiError::Validation(format!(
                "invalid template name {template:?}: template names follow session names"
            )))
        }
        Some(template) => {
            let found = templates.get(&template).ok_or_else(|| {
                ApiError::NotFound(format!(
                    "unknown template {template:?}; GET /api/v1/templates lists them"
                ))
            })?;
            spec.with_template(&found)
        }
        None => spec,
    };
    let row = insert_session(&state, &caller, name, spec, budget_micros).await?;
    crate::api::audit::record(&state, &req, &caller, "session.create", &row.name);
    state.supervisor.do_send(WarmSession(row.clone()));
    let location = format!("/api/v1/sessions/{}", row.name);
    let view = SessionData::new(row, SessionStatus::Pending);
    let mut res = envelope::data(&req, StatusCode::CREATED, view);
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&location) {
        res.headers_mut()
            .insert(actix_web::http::header::LOCATION, value);
    }
    Ok(res)
}

/// The tenant's sessions, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/sessions",
    tag = "sessions",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of sessions", body = Paged<SessionData>),
        (status = 422, description = "Bad `page` or `limit`", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list_sessions(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.validate()?;
    let tenant = caller.tenant.clone();
    let (rows, total) = crate::db::run(&state.pool, move |c| {
        session::list(c, &tenant, page.offset(), page.limit)
    })
    .await?;
    let items = session_views(&state, &caller, rows).await?;
    Ok(envelope::page(&req, items, &page, total))
}

/// One session, with its spend and token counts.
#[utoipa::path(
    get,
    path = "/api/v1/sessions/{name}",
    tag = "sessions",
    params(("name" = String, Path, description = "The session's name")),
    responses(
        (status = 200, description = "The session", body = Envelope<SessionData>),
        (status = 404, description = "No session of that name in this tenant", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_session(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = load_session(&state, &caller, &name).await?;
    Ok(envelope::ok(
        &req,
        session_view(&state, &caller, row).await?,
    ))
}

/// Stops the session's CLI, deletes its history, jobs and the workspace it
/// created (never a folder it was pointed at with `/repo`).
#[utoipa::path(
    delete,
    path = "/api/v1/sessions/{name}",
    tag = "sessions",
    params(("name" = String, Path, description = "The session's name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No session of that name in this tenant", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn delete_session(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = load_session(&state, &caller, &name).await?;
    state
        .supervisor
        .send(CloseSession {
            session_id: row.id.clone(),
        })
        .await?;
    let id = row.id.clone();
    let tenant = caller.tenant.clone();
    // Only the workspace the session created, never a folder it was merely
    // pointed at with /repo.
    let created = crate::db::run(&state.pool, move |c| {
        let created = crate::db::models::workspace::created(c, &tenant, &id)?;
        session::delete(c, &tenant, &id)?;
        Ok(created)
    })
    .await?;
    if let Some(created) = created {
        let dir = std::path::PathBuf::from(created);
        tokio::task::spawn_blocking(move || crate::workspace::remove(&dir))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
    }
    crate::api::audit::record(&state, &req, &caller, "session.delete", &row.name);
    Ok(HttpResponse::NoContent().finish())
}
