//! Admin API: the people of a tenant (who signed in through the identity
//! provider) and the invitations that let people in by their email. An
//! admin manages its own tenant; the owner names any with `?tenant=`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::envelope::{self, Envelope};
use crate::error::{ApiError, Problem};
use crate::identity::Who;
use crate::state::AppState;
use claude_code_api_core::db::models::member::{Invitation, Member};
use claude_code_api_core::domain::timestamp;
use claude_code_api_core::services::members;

use super::views::keys::KeyRole;

/// A person of the tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberData {
    id: String,
    tenant: String,
    /// The identity provider's subject (`sub`).
    subject: String,
    email: Option<String>,
    /// `viewer`, `member`, `admin` or `owner`.
    role: String,
    /// Where the role comes from: `groups` (the provider's groups set it at
    /// each sign-in), `invitation` or `admin` (it stays as set).
    source: String,
    created_at: String,
    last_sign_in_at: Option<String>,
}

impl From<Member> for MemberData {
    fn from(m: Member) -> Self {
        MemberData {
            created_at: timestamp(&m.created_at),
            last_sign_in_at: m.last_sign_in_at.as_ref().map(timestamp),
            id: m.id,
            tenant: m.tenant_id,
            subject: m.subject,
            email: m.email,
            role: m.role,
            source: m.source,
        }
    }
}

/// An open invitation.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationData {
    id: String,
    tenant: String,
    email: String,
    role: String,
    /// The key (or `person:<sub>`) that invited.
    invited_by: String,
    created_at: String,
    expires_at: String,
}

impl From<Invitation> for InvitationData {
    fn from(i: Invitation) -> Self {
        InvitationData {
            created_at: timestamp(&i.created_at),
            expires_at: timestamp(&i.expires_at),
            id: i.id,
            tenant: i.tenant_id,
            email: i.email,
            role: i.role,
            invited_by: i.invited_by,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TenantQuery {
    /// The tenant (the owner's choice); the caller's own by default.
    tenant: Option<String>,
}

/// The tenant's members, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/admin/members",
    tag = "admin",
    params(TenantQuery),
    responses(
        (status = 200, description = "The members", body = Envelope<Vec<MemberData>>),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Another tenant than the admin's own", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list_members(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    query: web::Query<TenantQuery>,
) -> Result<HttpResponse, ApiError> {
    let rows = members::list(&state.services, &who, query.into_inner().tenant).await?;
    let items: Vec<MemberData> = rows.into_iter().map(MemberData::from).collect();
    Ok(envelope::ok(&req, items))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeMember {
    /// `viewer`, `member`, `admin` or `owner`, no higher than the caller's.
    #[schema(value_type = KeyRole)]
    role: String,
}

/// Changes a member's role. It stays as set (the provider's groups no
/// longer set it), and the member's console sign-ins act with it from their
/// next request.
#[utoipa::path(
    patch,
    path = "/api/v1/admin/members/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "The member's id"), TenantQuery),
    request_body = ChangeMember,
    responses(
        (status = 200, description = "The member", body = Envelope<MemberData>),
        (status = 403, description = "Not an admin, or a role above the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such member in the tenant", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a role", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn change_member(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    id: web::Path<String>,
    query: web::Query<TenantQuery>,
    body: super::envelope::JsonObject<ChangeMember>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let member = members::set_role(
        &state.services,
        &who,
        query.into_inner().tenant,
        id.into_inner(),
        &body.role,
    )
    .await?;
    Ok(envelope::ok(&req, MemberData::from(member)))
}

/// Removes a member and ends its console sign-ins at once. A member whose
/// provider groups still map it to the tenant is back at its next sign-in.
#[utoipa::path(
    delete,
    path = "/api/v1/admin/members/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "The member's id"), TenantQuery),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Not an admin, or a member above the caller", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such member in the tenant", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn remove_member(
    state: web::Data<AppState>,
    who: Who,
    id: web::Path<String>,
    query: web::Query<TenantQuery>,
) -> Result<HttpResponse, ApiError> {
    members::remove(
        &state.services,
        &who,
        query.into_inner().tenant,
        id.into_inner(),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// How many console sign-ins ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignInsEnded {
    ended: usize,
}

/// Ends a member's console sign-ins (it may sign in again).
#[utoipa::path(
    post,
    path = "/api/v1/admin/members/{id}/sign-out",
    tag = "admin",
    params(("id" = String, Path, description = "The member's id"), TenantQuery),
    responses(
        (status = 200, description = "The sign-ins ended", body = Envelope<SignInsEnded>),
        (status = 403, description = "Not an admin, or a member above the caller", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such member in the tenant", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn sign_out_member(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    id: web::Path<String>,
    query: web::Query<TenantQuery>,
) -> Result<HttpResponse, ApiError> {
    let ended = members::end_sign_ins(
        &state.services,
        &who,
        query.into_inner().tenant,
        id.into_inner(),
    )
    .await?;
    Ok(envelope::ok(&req, SignInsEnded { ended }))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitation {
    /// Taken by the first sign-in of a person whose verified email it is
    /// (ASCII, compared without case).
    #[schema(max_length = 254, pattern = r"^[!-?A-~]+@[!-?A-~]+\.[!-?A-~]+$")]
    email: String,
    /// `member` by default; no higher than the caller's.
    #[schema(value_type = Option<KeyRole>)]
    role: Option<String>,
    /// The tenant (the owner's choice); the caller's own by default.
    tenant: Option<String>,
}

/// Invites an email address into the tenant with a role, for 14 days.
#[utoipa::path(
    post,
    path = "/api/v1/admin/invitations",
    tag = "admin",
    request_body = CreateInvitation,
    responses(
        (status = 201, description = "Invited", body = Envelope<InvitationData>),
        (status = 403, description = "Not an admin, or a role above the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Another tenant than the admin's own", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Invited or a member already, or too many open invitations", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not an email address, or not a role", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn create_invitation(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    body: super::envelope::JsonObject<CreateInvitation>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let invited = members::invite(
        &state.services,
        &who,
        body.tenant,
        &body.email,
        body.role.as_deref(),
    )
    .await?;
    Ok(envelope::data(
        &req,
        StatusCode::CREATED,
        InvitationData::from(invited),
    ))
}

/// The tenant's open invitations, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/admin/invitations",
    tag = "admin",
    params(TenantQuery),
    responses(
        (status = 200, description = "The open invitations", body = Envelope<Vec<InvitationData>>),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Another tenant than the admin's own", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list_invitations(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    query: web::Query<TenantQuery>,
) -> Result<HttpResponse, ApiError> {
    let rows = members::invitations(&state.services, &who, query.into_inner().tenant).await?;
    let items: Vec<InvitationData> = rows.into_iter().map(InvitationData::from).collect();
    Ok(envelope::ok(&req, items))
}

/// Withdraws an invitation.
#[utoipa::path(
    delete,
    path = "/api/v1/admin/invitations/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "The invitation's id"), TenantQuery),
    responses(
        (status = 204, description = "Withdrawn"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such invitation in the tenant", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn withdraw_invitation(
    state: web::Data<AppState>,
    who: Who,
    id: web::Path<String>,
    query: web::Query<TenantQuery>,
) -> Result<HttpResponse, ApiError> {
    members::withdraw(
        &state.services,
        &who,
        query.into_inner().tenant,
        id.into_inner(),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
