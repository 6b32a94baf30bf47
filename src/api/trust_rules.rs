//! Admin API: trust rules, which map bearer tokens of identity providers
//! and CI issuers (GitHub Actions, GitLab CI) to a tenant and role.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::envelope::{self, Envelope};
use crate::error::{ApiError, Problem};
use crate::identity::Who;
use crate::state::AppState;
use claude_code_api_core::services::trust_rules::{self, NewTrustRule, TrustRuleView};

/// Creates a trust rule: tokens of `issuer` whose `aud` holds `audience`
/// and whose claims have every value of `claims` act as `role` of `tenant`
/// (`Authorization: Bearer <JWT>`).
#[utoipa::path(
    post,
    path = "/api/v1/admin/trust-rules",
    tag = "admin",
    request_body = NewTrustRule,
    responses(
        (status = 201, description = "Created", body = Envelope<TrustRuleView>),
        (status = 403, description = "Not the owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken, or the tenant or server has as many rules as it may", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad name, issuer, audience, claim or role", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn create_trust_rule(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    body: super::envelope::JsonObject<NewTrustRule>,
) -> Result<HttpResponse, ApiError> {
    let created = trust_rules::create(&state.services, &who, body.into_inner()).await?;
    Ok(envelope::data(&req, StatusCode::CREATED, created))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TrustRulesQuery {
    /// Only this tenant's rules.
    tenant: Option<String>,
}

/// Trust rules, by name (the order tokens are matched in).
#[utoipa::path(
    get,
    path = "/api/v1/admin/trust-rules",
    tag = "admin",
    params(TrustRulesQuery),
    responses(
        (status = 200, description = "The rules", body = Envelope<Vec<TrustRuleView>>),
        (status = 403, description = "Not the owner", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list_trust_rules(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    query: web::Query<TrustRulesQuery>,
) -> Result<HttpResponse, ApiError> {
    let rules = trust_rules::list(&state.services, &who, query.into_inner().tenant).await?;
    Ok(envelope::ok(&req, rules))
}

/// Deletes a trust rule; tokens it let in are refused at once, on every node.
#[utoipa::path(
    delete,
    path = "/api/v1/admin/trust-rules/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "The rule's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Not the owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such rule", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn delete_trust_rule(
    state: web::Data<AppState>,
    who: Who,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    trust_rules::delete(&state.services, &who, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}
