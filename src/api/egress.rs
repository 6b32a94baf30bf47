//! A tenant's egress allowlist (admin keys only): the hosts its agents may
//! reach through the egress proxy (`AGENT_NETWORK=proxy`). Read by the proxy
//! at every new connection, so a change applies to running sessions at once.

use crate::identity::Who;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::envelope::{self, Envelope};
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use claude_code_api_core::services::admin;

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetEgress {
    /// Exact host names (`example.com`, also a dotted IPv4 address) and
    /// wildcards over every name below one (`*.example.com`, which does not
    /// match `example.com` itself); at most 200. `[]` allows nothing.
    #[schema(max_items = 200)]
    allowed_hosts: Vec<HostPattern>,
}

/// A host name of letters, digits and inner hyphens, or `*.` and a name of
/// two labels or more; case and a trailing dot do not matter.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(transparent)]
#[schema(
    pattern = r"^(\*\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+|[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*)\.?$",
    max_length = 253
)]
pub struct HostPattern(String);

/// A tenant's allowlist.
#[derive(Debug, Serialize, ToSchema)]
pub struct EgressData {
    tenant: String,
    /// Sorted, in the stored form (lower case).
    allowed_hosts: Vec<String>,
    /// The server's `AGENT_NETWORK` in force: the list applies with `proxy`
    /// only (`none`: no egress at all; `host`: the agent is not isolated).
    network: &'static str,
}

fn data(state: &AppState, tenant: String, allowed_hosts: Vec<String>) -> EgressData {
    EgressData {
        tenant,
        allowed_hosts,
        network: state.services.sandbox.status().network,
    }
}

/// The hosts the tenant's agents may reach through the egress proxy.
#[utoipa::path(
    get,
    path = "/api/v1/admin/tenants/{id}/egress",
    tag = "admin",
    params(("id" = String, Path, description = "The tenant's id")),
    responses(
        (status = 200, description = "The allowlist", body = Envelope<EgressData>),
        (status = 403, description = "Not the owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_egress(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let hosts = admin::egress_hosts(&state.services, &who, id.clone()).await?;
    Ok(envelope::ok(&req, data(&state, id, hosts)))
}

/// Replaces the tenant's allowlist; new connections of its running agents
/// are checked against the new list at once.
#[utoipa::path(
    put,
    path = "/api/v1/admin/tenants/{id}/egress",
    tag = "admin",
    params(("id" = String, Path, description = "The tenant's id")),
    request_body = SetEgress,
    responses(
        (status = 200, description = "The new allowlist", body = Envelope<EgressData>),
        (status = 403, description = "Not the owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A pattern that is not a host name or wildcard, or too many", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn set_egress(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    id: web::Path<String>,
    body: super::envelope::JsonObject<SetEgress>,
) -> Result<HttpResponse, ApiError> {
    let raw: Vec<String> = body
        .into_inner()
        .allowed_hosts
        .into_iter()
        .map(|p| p.0)
        .collect();
    let id = id.into_inner();
    let patterns = admin::set_egress_hosts(&state.services, &who, id.clone(), &raw).await?;
    Ok(envelope::ok(&req, data(&state, id, patterns)))
}
