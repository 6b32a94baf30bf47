//! `GET/PUT /admin/tenants/{id}/defaults`: what a tenant's new sessions
//! start from (`services::tenant_defaults`).

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::envelope::{self, Envelope};
use crate::error::{ApiError, Problem};
use crate::identity::Who;
use crate::state::AppState;
use claude_code_api_core::domain::agent::AgentSpec;
use claude_code_api_core::domain::session::{Effort, PermissionMode, SessionSpec};
use claude_code_api_core::services::tenant_defaults;

/// A tenant's defaults: each field fills what a new session and its
/// template leave unset; `mcp_servers` and `agents` lie under theirs, by
/// name. Absent or `null`: the server's default.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantDefaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    system_prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    append_system_prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 4294967295_u64, format = Int64)]
    max_turns: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    permission_mode: Option<PermissionMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    effort: Option<Effort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    allowed_tools: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    disallowed_tools: Option<Vec<String>>,
    /// As a session's `mcp_servers` (secrets of that tenant, by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    mcp_servers: Option<BTreeMap<String, serde_json::Value>>,
    /// As a session's `agents`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    agents: Option<BTreeMap<String, AgentSpec>>,
    /// As a session's `strict_mcp_config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    strict_mcp_config: Option<bool>,
}

impl TenantDefaults {
    fn into_spec(self) -> SessionSpec {
        SessionSpec {
            system_prompt: self.system_prompt,
            append_system_prompt: self.append_system_prompt,
            model: self.model,
            max_turns: self.max_turns,
            permission_mode: self.permission_mode,
            effort: self.effort,
            allowed_tools: self.allowed_tools,
            disallowed_tools: self.disallowed_tools,
            mcp_servers: self.mcp_servers,
            agents: self.agents,
            strict_mcp_config: self.strict_mcp_config,
            ..SessionSpec::default()
        }
    }

    fn of(spec: SessionSpec) -> TenantDefaults {
        let mut mcp_servers = spec.mcp_servers;
        claude_code_api_core::redact::credentials(&mut None, &mut mcp_servers);
        TenantDefaults {
            system_prompt: spec.system_prompt,
            append_system_prompt: spec.append_system_prompt,
            model: spec.model,
            max_turns: spec.max_turns,
            permission_mode: spec.permission_mode,
            effort: spec.effort,
            allowed_tools: spec.allowed_tools,
            disallowed_tools: spec.disallowed_tools,
            mcp_servers,
            agents: spec.agents,
            strict_mcp_config: spec.strict_mcp_config,
        }
    }
}

/// The tenant's defaults (`{}` when none are set).
#[utoipa::path(
    get,
    path = "/api/v1/admin/tenants/{id}/defaults",
    tag = "admin",
    params(("id" = String, Path, description = "The tenant's id")),
    responses(
        (status = 200, description = "The tenant's defaults", body = Envelope<TenantDefaults>),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_defaults(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let spec = tenant_defaults::get(&state.services, &who, id.into_inner()).await?;
    Ok(envelope::ok(&req, TenantDefaults::of(spec)))
}

/// Replaces the tenant's defaults. They apply to sessions created from now
/// on; a session keeps what it was created with (its `effective`
/// configuration shows it).
#[utoipa::path(
    put,
    path = "/api/v1/admin/tenants/{id}/defaults",
    tag = "admin",
    params(("id" = String, Path, description = "The tenant's id")),
    request_body = TenantDefaults,
    responses(
        (status = 200, description = "The tenant's defaults", body = Envelope<TenantDefaults>),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad field, an MCP server's host that may not be reached, or a secret the tenant does not have", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn set_defaults(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    id: web::Path<String>,
    body: envelope::JsonObject<TenantDefaults>,
) -> Result<HttpResponse, ApiError> {
    let spec = tenant_defaults::set(
        &state.services,
        &who,
        id.into_inner(),
        body.into_inner().into_spec(),
    )
    .await?;
    Ok(envelope::ok(&req, TenantDefaults::of(spec)))
}
