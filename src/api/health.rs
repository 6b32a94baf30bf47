//! `GET /health`: is the database up, which CLI is installed. What needs
//! the database or the shared disk comes from the background probe
//! (`views::health`), so polling `/health` costs no database work;
//! `?deep=true` probes now.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::views::health::Probed;
use crate::state::AppState;
use claude_code_api_core::actors::supervisor::messages::SupervisorStats;
use claude_code_api_core::services::nodes;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` when the database or the CLI is not usable.
    status: &'static str,
    checks: Checks,
    /// The absolute paths the server resolved at start.
    paths: Paths,
    /// How each CLI process is confined, and what is missing.
    sandbox: claude_code_api_core::sandbox::SandboxStatus,
    /// Absent when the supervisor does not answer.
    sessions: Option<SupervisorStats>,
    /// This server among the others on its database.
    cluster: ClusterHealth,
    /// How old the database and cluster checks are, in milliseconds (they
    /// are probed every second; `?deep=true` probes now: 0).
    checked_ms_ago: u64,
    /// Folders of deleted sessions that could not be removed yet; the
    /// sweeper tries again every `LEFTOVER_SWEEP_SECONDS` (0 normally).
    leftover_folders: i64,
    /// As on every other answer.
    meta: super::envelope::Meta,
}

#[derive(Debug, Serialize, ToSchema)]
struct ClusterHealth {
    /// `single` (alone, SQLite or PostgreSQL) or `cluster`
    /// (`NODE_ADVERTISE_URL` with PostgreSQL).
    mode: &'static str,
    /// This start's instance id.
    instance_id: String,
    advertise_url: Option<String>,
    /// Shutting down: it takes no new session (the answer is then a 503).
    draining: bool,
    /// The nodes on this database (cluster mode; empty alone).
    nodes: Vec<super::views::nodes::NodeData>,
}

#[derive(Debug, Serialize, ToSchema)]
struct Checks {
    database: Check,
    claude_cli: Check,
    /// Where the model credential comes from (never the secret).
    model_auth: claude_code_api_core::gateway::ModelAuthStatus,
    /// In a cluster: whether this node sees every live node's mark in its
    /// workspace root (`APPROVED_DIRECTORY` must be shared storage).
    #[serde(skip_serializing_if = "Option::is_none")]
    workspace_root: Option<Check>,
}

#[derive(Debug, Serialize, ToSchema)]
struct Paths {
    /// `DATA_DIR`: the SQLite file, CLI state, pid files.
    data_dir: String,
    /// `APPROVED_DIRECTORY`: the root of every workspace.
    workspaces: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct Check {
    /// `ok` or `error`.
    status: &'static str,
    /// The CLI's version, when it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    /// The CLI binary, absolute.
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'static str>,
}

impl Check {
    fn status(ok: bool) -> &'static str {
        if ok {
            "ok"
        } else {
            "error"
        }
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct HealthQuery {
    deep: Option<String>,
}

/// The server's health: its database, its CLI and its live sessions.
#[utoipa::path(
    get,
    path = "/api/v1/health",
    tag = "meta",
    security(()),
    params(
        ("deep" = Option<bool>, Query, description = "Probe the database (and the cluster) now instead of answering from the last background probe, at most a second old"),
    ),
    responses(
        (status = 200, description = "The database answers (status `degraded` if the CLI cannot run)", body = Health),
        (status = 422, description = "`deep` is not a boolean", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database does not answer, or the node is draining", body = Health),
    ),
)]
pub async fn health(
    req: HttpRequest,
    state: web::Data<AppState>,
    probe: web::Data<super::views::health::Probe>,
    query: web::Query<HealthQuery>,
) -> Result<HttpResponse, crate::error::ApiError> {
    let deep = super::flags::parse_bool("deep", query.deep.as_deref())?;
    let Probed {
        database_ok,
        nodes,
        workspace_shared,
        at,
    } = if deep {
        probe.probe_now(&state).await
    } else {
        probe.latest(&state).await
    };
    let workspace_root = workspace_shared.map(|shared| Check {
        status: Check::status(shared),
        version: None,
        path: None,
        detail: (!shared).then_some(
            "another live node's workspace root is not this one: APPROVED_DIRECTORY must be shared storage",
        ),
    });
    let sessions = nodes::session_stats(&state.services.supervisor).await;
    let cli = Check {
        status: Check::status(state.cli_version.is_some()),
        version: state.cli_version.clone(),
        path: Some(
            state
                .services
                .settings
                .sessions
                .resolved_cli_path()
                .to_string_lossy()
                .into_owned(),
        ),
        detail: state
            .cli_version
            .is_none()
            .then_some("the Claude Code CLI could not be run"),
    };
    let model_auth = state.gateway.status();
    let node = &state.services.node;
    let workspace_ok = workspace_root.as_ref().is_none_or(|c| c.status == "ok");
    let status = if node.is_draining() {
        "draining"
    } else if database_ok
        && state.cli_version.is_some()
        && model_auth.status == "ok"
        && workspace_ok
    {
        "ok"
    } else {
        "degraded"
    };
    let body = Health {
        status,
        checks: Checks {
            database: Check {
                status: Check::status(database_ok),
                version: None,
                path: None,
                detail: None,
            },
            claude_cli: cli,
            model_auth,
            workspace_root,
        },
        sandbox: state.services.sandbox.status(),
        paths: Paths {
            data_dir: state
                .services
                .settings
                .storage
                .data_dir
                .to_string_lossy()
                .into_owned(),
            workspaces: state.services.workspace_root.to_string_lossy().into_owned(),
        },
        sessions,
        cluster: ClusterHealth {
            mode: if node.is_clustered() {
                "cluster"
            } else {
                "single"
            },
            instance_id: node.instance_id().to_owned(),
            advertise_url: node.cluster().map(|c| c.advertise_url.clone()),
            draining: node.is_draining(),
            nodes,
        },
        checked_ms_ago: u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX),
        leftover_folders: state.services.leftovers.count(),
        meta: super::envelope::meta(&req),
    };
    // A load balancer stops sending to a draining node.
    Ok(if database_ok && !node.is_draining() {
        HttpResponse::Ok().json(body)
    } else {
        let mut res = HttpResponse::ServiceUnavailable().json(body);
        // The report itself, not a problem document: it says what is wrong.
        res.extensions_mut().insert(super::middleware::OwnErrorBody);
        res
    })
}

/// The same health check outside `/api/v1`, for load balancers and probes.
#[utoipa::path(
    get,
    path = "/health",
    tag = "meta",
    security(()),
    responses(
        (status = 200, description = "The database answers", body = Health),
        (status = 503, description = "The database does not answer, or the node is draining", body = Health),
    ),
)]
pub async fn root_health(
    req: HttpRequest,
    state: web::Data<AppState>,
    probe: web::Data<super::views::health::Probe>,
    query: web::Query<HealthQuery>,
) -> Result<HttpResponse, crate::error::ApiError> {
    health(req, state, probe, query).await
}
