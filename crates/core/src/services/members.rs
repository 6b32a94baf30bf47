//! The people of a tenant: who signs in through the identity provider and
//! with which role, the invitations that let people in by their email, and
//! an admin's changes (a role, a removal, ending a member's sign-ins),
//! which apply to the member's console sign-ins at once.

use super::{audit, Requester, Services};
use crate::db::models::member::{self, Invitation, Member, NotInvited, SigningIn};
use crate::db::models::TenantId;
use crate::domain::role::Role;
use crate::error::ServiceError;

/// How long an invitation stays open.
pub const INVITATION_DAYS: i64 = 14;
/// Longest email accepted in an invitation.
pub const MAX_EMAIL_LEN: usize = 254;

/// The tenant an admin request is about: `requested` (the owner's choice or
/// the admin's own), else the caller's.
fn tenant_of(who: &Requester, requested: Option<String>) -> Result<TenantId, ServiceError> {
    let tenant = requested.unwrap_or_else(|| who.tenant().0.clone());
    who.require_admin_of(&tenant)?;
    Ok(TenantId(tenant))
}

/// The members of the caller's tenant (or of `tenant`, for the owner).
pub async fn list(
    services: &Services,
    who: &Requester,
    tenant: Option<String>,
) -> Result<Vec<Member>, ServiceError> {
    let tenant = tenant_of(who, tenant)?;
    Ok(crate::db::run(&services.pool, move |c| member::list(c, &tenant)).await?)
}

/// Gives member `id` the role `role` (no higher than the caller's own, and
/// not over a member above the caller); its console sign-ins act with it
/// from their next request.
pub async fn set_role(
    services: &Services,
    who: &Requester,
    tenant: Option<String>,
    id: String,
    role: &str,
) -> Result<Member, ServiceError> {
    let tenant = tenant_of(who, tenant)?;
    let role = super::admin::grantable_role(who, Some(role))?;
    outranks(services, who, &tenant, &id).await?;
    let (lookup, stored_role) = (id.clone(), role.clone());
    let member = crate::db::run(&services.pool, move |c| {
        member::set_role(c, &tenant, &lookup, &stored_role)
    })
    .await?
    .ok_or_else(|| no_member(&id))?;
    // Its own keys above the new role were revoked with the change.
    services.identities.changed(&services.pool).await;
    audit::record(services, who, "member.role", &format!("{id} {role}")).await;
    Ok(member)
}

/// Removes member `id`, ends its console sign-ins and revokes its own
/// keys. A member whose
/// provider groups still map it to the tenant comes back at its next
/// sign-in: remove it from the group at the provider.
pub async fn remove(
    services: &Services,
    who: &Requester,
    tenant: Option<String>,
    id: String,
) -> Result<Member, ServiceError> {
    let tenant = tenant_of(who, tenant)?;
    outranks(services, who, &tenant, &id).await?;
    let lookup = id.clone();
    let member = crate::db::run(&services.pool, move |c| member::remove(c, &tenant, &lookup))
        .await?
        .ok_or_else(|| no_member(&id))?;
    // Its own keys were revoked with it.
    services.identities.changed(&services.pool).await;
    audit::record(services, who, "member.remove", &id).await;
    Ok(member)
}

/// Ends member `id`'s console sign-ins (it may sign in again); how many
/// ended.
pub async fn end_sign_ins(
    services: &Services,
    who: &Requester,
    tenant: Option<String>,
    id: String,
) -> Result<usize, ServiceError> {
    let tenant = tenant_of(who, tenant)?;
    outranks(services, who, &tenant, &id).await?;
    let lookup = id.clone();
    let (_, ended) = crate::db::run(&services.pool, move |c| {
        member::end_sign_ins(c, &tenant, &lookup)
    })
    .await?
    .ok_or_else(|| no_member(&id))?;
    audit::record(services, who, "member.sign_out", &id).await;
    Ok(ended)
}

/// Refuses a change to a member whose role is above the caller's.
async fn outranks(
    services: &Services,
    who: &Requester,
    tenant: &TenantId,
    id: &str,
) -> Result<(), ServiceError> {
    let (tenant, lookup) = (tenant.clone(), id.to_owned());
    let member = crate::db::run(&services.pool, move |c| member::find(c, &tenant, &lookup))
        .await?
        .ok_or_else(|| no_member(id))?;
    if Role::from_stored(&member.role) > who.role() {
        return Err(ServiceError::Forbidden(format!(
            "member {id:?} is an {}; a {} cannot change it",
            member.role,
            who.role()
        )));
    }
    Ok(())
}

fn no_member(id: &str) -> ServiceError {
    ServiceError::NotFound(format!("no member {id:?}"))
}

/// Invites `email` to the caller's tenant (or `tenant`, for the owner) with
/// `role` (member by default, no higher than the caller's). The first
/// sign-in of a person whose verified email it is takes it.
pub async fn invite(
    services: &Services,
    who: &Requester,
    tenant: Option<String>,
    email: &str,
    role: Option<&str>,
) -> Result<Invitation, ServiceError> {
    let tenant = tenant_of(who, tenant)?;
    let role = super::admin::grantable_role(who, role)?;
    let email = email.trim().to_lowercase();
    if !is_email(&email) {
        return Err(ServiceError::Validation(format!(
            "email must be an ASCII address (name@domain.tld) of at most {MAX_EMAIL_LEN} characters"
        )));
    }
    let now = crate::db::now();
    let row = Invitation {
        id: format!("inv_{}", uuid::Uuid::new_v4().simple()),
        tenant_id: tenant.0.clone(),
        email: email.clone(),
        role,
        invited_by: who.key_id.clone(),
        created_at: now,
        expires_at: now + chrono::Duration::days(INVITATION_DAYS),
    };
    let stored = row.clone();
    let outcome = crate::db::run(&services.pool, move |c| {
        if !crate::db::models::console_session::tenant_exists(c, &stored.tenant_id)? {
            return Ok(None);
        }
        member::invite(c, &stored, now).map(Some)
    })
    .await?
    .ok_or_else(|| ServiceError::NotFound(format!("no tenant {:?}", tenant.0)))?;
    match outcome {
        Ok(()) => {}
        Err(NotInvited::AlreadyInvited) => {
            return Err(ServiceError::Conflict(format!(
                "{email} has an open invitation to this tenant; withdraw it first"
            )))
        }
        Err(NotInvited::AlreadyMember) => {
            return Err(ServiceError::Conflict(format!(
                "{email} is a member of this tenant already"
            )))
        }
        Err(NotInvited::TooMany) => {
            return Err(ServiceError::Conflict(format!(
                "this tenant has {} open invitations; withdraw some first",
                member::MAX_OPEN_INVITATIONS
            )))
        }
    }
    audit::record(
        services,
        who,
        "member.invite",
        &format!("{} {email}", row.id),
    )
    .await;
    Ok(row)
}

/// An email address as far as an invitation needs: printable ASCII, one
/// `@` with something before it, and a domain with a dot inside it.
fn is_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let dotted = domain
        .char_indices()
        .any(|(i, c)| c == '.' && i > 0 && i + 1 < domain.len());
    email.len() <= MAX_EMAIL_LEN
        && !local.is_empty()
        && dotted
        && !domain.contains('@')
        && email.chars().all(|c| c.is_ascii_graphic())
}

/// The open invitations of the caller's tenant (or of `tenant`).
pub async fn invitations(
    services: &Services,
    who: &Requester,
    tenant: Option<String>,
) -> Result<Vec<Invitation>, ServiceError> {
    let tenant = tenant_of(who, tenant)?;
    let now = crate::db::now();
    Ok(crate::db::run(&services.pool, move |c| {
        member::invitations(c, &tenant, now)
    })
    .await?)
}

/// Withdraws invitation `id` (none of a role above the caller's).
pub async fn withdraw(
    services: &Services,
    who: &Requester,
    tenant: Option<String>,
    id: String,
) -> Result<Invitation, ServiceError> {
    let tenant = tenant_of(who, tenant)?;
    let lookup = id.clone();
    let most = who.role();
    let gone = crate::db::run(&services.pool, move |c| {
        member::withdraw(c, &tenant, &lookup, most)
    })
    .await?
    .ok_or_else(|| ServiceError::NotFound(format!("no invitation {id:?}")))?;
    audit::record(services, who, "member.invitation.withdraw", &id).await;
    Ok(gone)
}

/// The membership a person's sign-in lands in (see
/// `member::join_on_sign_in`); `None` when nothing lets them in.
pub async fn join_on_sign_in(
    services: &Services,
    person: SigningIn,
    mapped: Option<(String, String)>,
) -> Result<Option<Member>, ServiceError> {
    let person = SigningIn {
        email: person.email.map(|e| e.to_lowercase()),
        ..person
    };
    let new_id = format!("mem_{}", uuid::Uuid::new_v4().simple());
    let joined = crate::db::run(&services.pool, move |c| {
        let mapped = mapped.as_ref().map(|(t, r)| (t.as_str(), r.as_str()));
        member::join_on_sign_in(c, &person, mapped, &new_id, crate::db::now())
    })
    .await?;
    // The groups may have taken a membership or a role, and with them
    // some of the person's own keys.
    services.identities.changed(&services.pool).await;
    Ok(joined)
}

#[cfg(test)]
mod tests {
    use super::is_email;

    #[test]
    fn only_addresses_are_invited() {
        for good in ["a@example.com", "first.last+tag@sub.example.org", "0@.0.0"] {
            assert!(is_email(good), "{good}");
        }
        for bad in [
            "",
            "a",
            "@example.com",
            "a@",
            "a@b",
            "a@.com",
            "a@b.",
            "a b@c.d",
            "a@b@c.d",
            "ü@exämple.de",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
        assert!(!is_email(&format!("{}@example.com", "a".repeat(250))));
    }
}
