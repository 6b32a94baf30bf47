//! Session documents: what a session looks like to clients, and the body that creates one.

use crate::error::ApiError;
use claude_code_api_core::config::Settings;
use claude_code_api_core::db::models::session::Session;
use claude_code_api_core::db::models::session_fork::SessionFork;
use claude_code_api_core::db::models::session_page::Listed;
use claude_code_api_core::domain::agent::AgentSpec;
use claude_code_api_core::domain::money::micros_to_usd;
use claude_code_api_core::domain::session::{
    Effort, PermissionMode, SessionSpec, TurnOverrides, Visibility,
};
use claude_code_api_core::error::ServiceError;
use claude_code_api_core::services::forks;
use claude_code_api_core::services::sessions::{self, validate_name, SessionStatus};
use claude_code_api_core::services::{Requester, Services};
use claude_code_api_core::spec::LaunchSpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

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
    #[serde(default, deserialize_with = "crate::api::envelope::integer")]
    #[schema(minimum = 1, maximum = 4294967295_u64, format = Int64)]
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
    /// Start from a repository of the tenant (`POST /api/v1/repos`): the
    /// workspace is a worktree on a new branch.
    #[serde(default)]
    repo: Option<claude_code_api_core::services::git::RepoChoice>,
    /// Subagents by name, laid over the template's: the agent hands work to
    /// them with its `Task` tool.
    #[serde(default)]
    agents: Option<BTreeMap<String, AgentSpec>>,
    /// MCP servers by name, laid over the template's:
    /// `{type: "http", url, headers?}` is reached through the server, which
    /// adds the headers (a value or `{"secret": NAME}`), so they never enter
    /// the sandbox; `{type?: "stdio", command, args?, env?}` runs in the
    /// sandbox with what it is given (visible to the agent).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    mcp_servers: Option<BTreeMap<String, serde_json::Value>>,
    /// `false`: the CLI also uses the MCP servers of the workspace's
    /// `.mcp.json` (stdio ones run in the sandbox); default `true`: only
    /// `mcp_servers`.
    #[serde(default)]
    strict_mcp_config: Option<bool>,
    /// `tenant` (the default): every member of the tenant sees it;
    /// `private`: only its maker (the person, through any of their keys or
    /// sign-ins) and the tenant's admins do; to anyone else it is a 404.
    #[serde(default)]
    visibility: Option<Visibility>,
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
    /// MCP servers (a template's, with the session's laid over them); `env`
    /// and `headers` values read `[redacted]`, secrets show their name.
    #[schema(value_type = Option<Object>)]
    mcp_servers: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    /// Subagents by name: the template's with the session's laid over them.
    agents: Option<BTreeMap<String, AgentSpec>>,
    strict_mcp_config: Option<bool>,
    /// What the session's CLI runs with: every field resolved from the
    /// session, its template and the server's defaults.
    effective: EffectiveConfig,
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
    /// The session this one was forked from, and at which of its turns;
    /// `null` for a session that is no fork.
    forked_from: Option<ForkOrigin>,
    /// Who made it (absent for sessions made before this was recorded).
    created_by: Option<claude_code_api_core::domain::creator::Creator>,
    /// `private`: seen only by its maker and the tenant's admins.
    visibility: Visibility,
}

/// Where a fork comes from.
#[derive(Debug, Serialize, ToSchema)]
pub struct ForkOrigin {
    /// The original session's name (when the fork was made: it may be
    /// deleted since).
    session: String,
    /// The original's turn the fork starts after.
    at_turn: i64,
}

impl From<&SessionFork> for ForkOrigin {
    fn from(link: &SessionFork) -> Self {
        ForkOrigin {
            session: link.parent_name.clone(),
            at_turn: link.at_turn,
        }
    }
}

/// A session's configuration as its CLI gets it (a chat's or a job's own
/// choices apply on top, for their turn).
#[derive(Debug, Serialize, ToSchema)]
pub struct EffectiveConfig {
    /// `null`: the CLI's own default model.
    model: Option<String>,
    permission_mode: PermissionMode,
    max_turns: u32,
    /// `null`: the model's default.
    effort: Option<Effort>,
    /// Empty: every built-in tool.
    allowed_tools: Vec<String>,
    disallowed_tools: Vec<String>,
    system_prompt: Option<String>,
    append_system_prompt: Option<String>,
    /// By name; `env` and `headers` values read `[redacted]`.
    #[schema(value_type = Object)]
    mcp_servers: BTreeMap<String, serde_json::Value>,
    agents: BTreeMap<String, AgentSpec>,
    /// Only `mcp_servers`, not the workspace's `.mcp.json` as well.
    strict_mcp_config: bool,
    /// The cap of one turn (`CLAUDE_MAX_COST_PER_REQUEST`), in USD.
    max_cost_per_turn: Option<f64>,
}

impl EffectiveConfig {
    fn of(settings: &Settings, spec: &SessionSpec) -> EffectiveConfig {
        let launch = LaunchSpec::resolve(settings, spec, &TurnOverrides::default());
        let mut mcp_servers = Some(launch.mcp_servers);
        claude_code_api_core::redact::credentials(&mut None, &mut mcp_servers);
        EffectiveConfig {
            model: launch.model,
            permission_mode: launch.permission_mode,
            max_turns: launch.max_turns,
            effort: launch.effort,
            allowed_tools: launch.allowed_tools,
            disallowed_tools: launch.disallowed_tools,
            system_prompt: launch.system_prompt,
            append_system_prompt: launch.append_system_prompt,
            mcp_servers: mcp_servers.unwrap_or_default(),
            agents: launch.agents,
            strict_mcp_config: launch.strict_mcp_config,
            max_cost_per_turn: launch.max_budget_micros.map(micros_to_usd),
        }
    }
}

impl SessionData {
    pub fn new(s: Session, status: SessionStatus, settings: &Settings) -> Self {
        let mut spec: SessionSpec = serde_json::from_str(&s.spec).unwrap_or_default();
        let effective = EffectiveConfig::of(settings, &spec);
        // A template's credentials reach the CLI, never a client.
        claude_code_api_core::redact::credentials(&mut spec.env, &mut spec.mcp_servers);
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
            agents: spec.agents,
            strict_mcp_config: spec.strict_mcp_config,
            effective,
            cli_session_id: s.cli_session_id,
            budget: s.budget_micros.map(micros_to_usd),
            budget_micros: s.budget_micros,
            total_cost: micros_to_usd(s.total_cost_micros),
            total_cost_micros: s.total_cost_micros,
            turns: s.turns,
            total_turns: s.turns,
            input_tokens: s.input_tokens,
            output_tokens: s.output_tokens,
            created_at: claude_code_api_core::domain::timestamp(&s.created_at),
            updated_at: claude_code_api_core::domain::timestamp(&s.updated_at),
            created_by: claude_code_api_core::domain::creator::Creator::of(
                &s.created_by,
                &s.created_by_label,
            ),
            visibility: match s.private_to {
                Some(_) => Visibility::Private,
                None => Visibility::Tenant,
            },
            forked_from: None,
        }
    }

    /// The document of a fork, naming where it comes from.
    pub fn forked_from(mut self, link: Option<&SessionFork>) -> Self {
        self.forked_from = link.map(ForkOrigin::from);
        self
    }
}

/// A page of the caller's sessions as documents, each with its live status.
pub async fn session_views(
    services: &Services,
    who: &Requester,
    listed: Vec<Listed>,
) -> Result<Vec<SessionData>, ApiError> {
    let (rows, links): (Vec<Session>, Vec<_>) = listed.into_iter().unzip();
    let statuses = sessions::statuses(services, who, &rows).await?;
    Ok(rows
        .into_iter()
        .zip(statuses)
        .zip(links)
        .map(|((row, status), link)| {
            SessionData::new(row, status, &services.settings).forked_from(link.as_ref())
        })
        .collect())
}

/// One session as a document, with its live status.
pub async fn session_view(
    services: &Services,
    who: &Requester,
    row: Session,
) -> Result<SessionData, ApiError> {
    let link = forks::origin(services, who, row.id.clone()).await?;
    listed_view(services, who, (row, link)).await
}

/// One session read with its fork link as a document, with its live status.
pub async fn listed_view(
    services: &Services,
    who: &Requester,
    listed: Listed,
) -> Result<SessionData, ApiError> {
    let mut views = session_views(services, who, vec![listed]).await?;
    views
        .pop()
        .ok_or_else(|| ApiError::from(ServiceError::internal("no session view")))
}

impl CreateSession {
    /// The session to create, or a 422 naming the bad field.
    pub fn into_new_session(mut self) -> Result<sessions::NewSession, ApiError> {
        let budget_micros = sessions::budget_micros(self.budget_usd)?;
        let repo = self.repo.take();
        let private = self.visibility.take().unwrap_or_default().is_private();
        let (name, spec) = self.into_spec()?;
        Ok(sessions::NewSession {
            name,
            spec,
            budget_micros,
            repo,
            private,
        })
    }

    fn into_spec(self) -> Result<(String, SessionSpec), ApiError> {
        validate_name(&self.name)?;
        if self.max_turns == Some(0) {
            return Err(ApiError::from(ServiceError::Validation(
                "max_turns must be at least 1".into(),
            )));
        }
        let tools = |field: &str,
                     value: Option<serde_json::Value>|
         -> Result<Option<Vec<String>>, ApiError> {
            #[derive(Deserialize)]
            struct Probe {
                #[serde(
                    default,
                    deserialize_with = "claude_code_api_core::domain::session::tool_list"
                )]
                tools: Option<Vec<String>>,
            }
            let Some(value) = value else { return Ok(None) };
            serde_json::from_value::<Probe>(serde_json::json!({ "tools": value }))
                .map(|p| p.tools)
                .map_err(|_| {
                    ApiError::from(ServiceError::Validation(format!(
                        "{field} must be a list of tool names or a comma-separated string"
                    )))
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
            mcp_servers: self.mcp_servers,
            agents: self.agents,
            strict_mcp_config: self.strict_mcp_config,
        };
        Ok((self.name, spec))
    }
}
