//! The people of a tenant and the invitations that let people in. Only
//! stores and loads; `services::members` decides who may do what. A
//! member's own keys follow its membership: revoked when it leaves, and
//! those above a lowered role revoked with the change.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::TenantId;
use crate::db::schema::{api_keys, console_people, member_invitations, tenant_members};
use crate::db::{DbConnection, DbResult};
use crate::domain::role::Role;

/// Where a member's role comes from.
pub const FROM_GROUPS: &str = "groups";
pub const FROM_INVITATION: &str = "invitation";
pub const FROM_ADMIN: &str = "admin";

/// Most invitations a tenant may have open at once.
pub const MAX_OPEN_INVITATIONS: i64 = 1000;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = tenant_members)]
pub struct Member {
    pub id: String,
    pub tenant_id: String,
    /// The provider's `sub`.
    pub subject: String,
    pub email: Option<String>,
    pub role: String,
    /// `groups`, `invitation` or `admin` (see the constants).
    pub source: String,
    pub created_at: NaiveDateTime,
    pub last_sign_in_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = member_invitations)]
pub struct Invitation {
    pub id: String,
    pub tenant_id: String,
    /// Lower case; matched against a verified email at sign-in.
    pub email: String,
    pub role: String,
    /// The key id or `person:<sub>` of the admin who invited.
    pub invited_by: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

/// Who is signing in, as the provider's verified ID token says.
#[derive(Debug, Clone)]
pub struct SigningIn {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
}

/// The tenant's members, oldest first.
pub fn list(conn: &mut DbConnection, tenant: &TenantId) -> DbResult<Vec<Member>> {
    Ok(tenant_members::table
        .filter(tenant_members::tenant_id.eq(tenant.as_str()))
        .order((tenant_members::created_at.asc(), tenant_members::id.asc()))
        .select(Member::as_select())
        .load(conn)?)
}

/// Member `id` of the tenant.
pub fn find(conn: &mut DbConnection, tenant: &TenantId, id: &str) -> DbResult<Option<Member>> {
    Ok(tenant_members::table
        .filter(tenant_members::tenant_id.eq(tenant.as_str()))
        .filter(tenant_members::id.eq(id))
        .select(Member::as_select())
        .first(conn)
        .optional()?)
}

/// Gives member `id` the role `role`, which stays until an admin changes it
/// again (the provider's groups no longer set it), and gives it to the
/// member's console sign-ins at once. The member as it is now.
pub fn set_role(
    conn: &mut DbConnection,
    tenant: &TenantId,
    id: &str,
    role: &str,
) -> DbResult<Option<Member>> {
    crate::db::write_transaction(conn, |conn| {
        let Some(member) = find(conn, tenant, id)? else {
            return Ok(None);
        };
        diesel::update(tenant_members::table.find(id))
            .set((
                tenant_members::role.eq(role),
                tenant_members::source.eq(FROM_ADMIN),
            ))
            .execute(conn)?;
        follow_role(conn, tenant, &member.subject, role)?;
        find(conn, tenant, id)
    })
}

/// Removes member `id` and ends its console sign-ins; the member as it
/// was.
pub fn remove(conn: &mut DbConnection, tenant: &TenantId, id: &str) -> DbResult<Option<Member>> {
    crate::db::write_transaction(conn, |conn| {
        let Some(member) = find(conn, tenant, id)? else {
            return Ok(None);
        };
        diesel::delete(tenant_members::table.find(id)).execute(conn)?;
        end_sign_ins_of(conn, tenant, &member.subject)?;
        revoke_personal_keys(conn, tenant, &member.subject, None)?;
        Ok(Some(member))
    })
}

/// Ends member `id`'s console sign-ins (it may sign in again); the member
/// and how many sign-ins ended.
pub fn end_sign_ins(
    conn: &mut DbConnection,
    tenant: &TenantId,
    id: &str,
) -> DbResult<Option<(Member, usize)>> {
    let Some(member) = find(conn, tenant, id)? else {
        return Ok(None);
    };
    let ended = end_sign_ins_of(conn, tenant, &member.subject)?;
    Ok(Some((member, ended)))
}

/// Gives `subject`'s console sign-ins in the tenant the role `role`, and
/// revokes its own keys above it.
fn follow_role(
    conn: &mut DbConnection,
    tenant: &TenantId,
    subject: &str,
    role: &str,
) -> DbResult<()> {
    diesel::update(
        console_people::table
            .filter(console_people::tenant_id.eq(tenant.as_str()))
            .filter(console_people::subject.eq(subject)),
    )
    .set(console_people::role.eq(role))
    .execute(conn)?;
    let above: Vec<&str> = Role::ALL
        .into_iter()
        .filter(|r| *r > Role::from_stored(role))
        .map(Role::as_str)
        .collect();
    revoke_personal_keys(conn, tenant, subject, Some(&above))?;
    Ok(())
}

/// Revokes `subject`'s own keys in the tenant: all of them, or those of
/// the roles `only`.
fn revoke_personal_keys(
    conn: &mut DbConnection,
    tenant: &TenantId,
    subject: &str,
    only: Option<&[&str]>,
) -> DbResult<usize> {
    let mut keys = diesel::update(api_keys::table)
        .filter(api_keys::tenant_id.eq(tenant.as_str()))
        .filter(api_keys::owner_subject.eq(subject))
        .filter(api_keys::revoked_at.is_null())
        .into_boxed();
    if let Some(roles) = only {
        keys = keys.filter(api_keys::role.eq_any(roles.to_vec()));
    }
    Ok(keys
        .set(api_keys::revoked_at.eq(crate::db::now()))
        .execute(conn)?)
}

fn end_sign_ins_of(conn: &mut DbConnection, tenant: &TenantId, subject: &str) -> DbResult<usize> {
    Ok(diesel::delete(
        console_people::table
            .filter(console_people::tenant_id.eq(tenant.as_str()))
            .filter(console_people::subject.eq(subject)),
    )
    .execute(conn)?)
}

/// The membership a sign-in lands in, made or brought up to date. First,
/// memberships the provider's groups gave and no longer give are removed
/// (with their sign-ins and the person's own keys there). Then:
/// - `mapped` (the tenant and role the provider's groups map to): that
///   tenant, with the mapped role unless an admin set another;
/// - else the person's oldest membership;
/// - else an open invitation of the person's verified email, which is
///   taken (the member joins with its role).
///
/// `None` when none of these lets the person in.
pub fn join_on_sign_in(
    conn: &mut DbConnection,
    person: &SigningIn,
    mapped: Option<(&str, &str)>,
    new_id: &str,
    now: NaiveDateTime,
) -> DbResult<Option<Member>> {
    crate::db::write_transaction(conn, |conn| {
        let by_groups: Vec<Member> = tenant_members::table
            .filter(tenant_members::subject.eq(&person.subject))
            .filter(tenant_members::source.eq(FROM_GROUPS))
            .select(Member::as_select())
            .load(conn)?;
        for gone in by_groups
            .iter()
            .filter(|m| mapped.is_none_or(|(tenant, _)| m.tenant_id != tenant))
        {
            let tenant = TenantId(gone.tenant_id.clone());
            diesel::delete(tenant_members::table.find(&gone.id)).execute(conn)?;
            end_sign_ins_of(conn, &tenant, &gone.subject)?;
            revoke_personal_keys(conn, &tenant, &gone.subject, None)?;
        }
        let existing = |conn: &mut DbConnection, tenant: Option<&str>| {
            let mut query = tenant_members::table
                .filter(tenant_members::subject.eq(person.subject.clone()))
                .order((tenant_members::created_at.asc(), tenant_members::id.asc()))
                .select(Member::as_select())
                .into_boxed();
            if let Some(tenant) = tenant {
                query = query.filter(tenant_members::tenant_id.eq(tenant.to_owned()));
            }
            query.first(conn).optional()
        };
        let found = match mapped {
            Some((tenant, _)) => existing(conn, Some(tenant))?,
            None => existing(conn, None)?,
        };
        if let Some(member) = found {
            let role = match mapped {
                Some((_, role)) if member.source == FROM_GROUPS => role.to_owned(),
                _ => member.role.clone(),
            };
            if role != member.role {
                follow_role(
                    conn,
                    &TenantId(member.tenant_id.clone()),
                    &member.subject,
                    &role,
                )?;
            }
            diesel::update(tenant_members::table.find(&member.id))
                .set((
                    tenant_members::role.eq(&role),
                    tenant_members::email.eq(&person.email),
                    tenant_members::last_sign_in_at.eq(now),
                ))
                .execute(conn)?;
            return Ok(Some(Member {
                role,
                email: person.email.clone(),
                last_sign_in_at: Some(now),
                ..member
            }));
        }
        let (tenant, role, source) = match mapped {
            Some((tenant, role)) => (tenant.to_owned(), role.to_owned(), FROM_GROUPS),
            None => {
                let Some(email) = person.email.as_ref().filter(|_| person.email_verified) else {
                    return Ok(None);
                };
                let invitation: Option<Invitation> = member_invitations::table
                    .filter(member_invitations::email.eq(email.to_lowercase()))
                    .filter(member_invitations::expires_at.gt(now))
                    .order((
                        member_invitations::created_at.asc(),
                        member_invitations::id.asc(),
                    ))
                    .select(Invitation::as_select())
                    .first(conn)
                    .optional()?;
                let Some(invitation) = invitation else {
                    return Ok(None);
                };
                diesel::delete(member_invitations::table.find(&invitation.id)).execute(conn)?;
                (invitation.tenant_id, invitation.role, FROM_INVITATION)
            }
        };
        let member = Member {
            id: new_id.to_owned(),
            tenant_id: tenant,
            subject: person.subject.clone(),
            email: person.email.clone(),
            role,
            source: source.to_owned(),
            created_at: now,
            last_sign_in_at: Some(now),
        };
        diesel::insert_into(tenant_members::table)
            .values(&member)
            .execute(conn)?;
        Ok(Some(member))
    })
}

/// Why an invitation was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotInvited {
    /// The email has an open invitation to the tenant already.
    AlreadyInvited,
    /// A member of the tenant has this email.
    AlreadyMember,
    /// The tenant has `MAX_OPEN_INVITATIONS` open.
    TooMany,
}

/// Stores `row` (expired invitations of its tenant are swept first).
pub fn invite(
    conn: &mut DbConnection,
    row: &Invitation,
    now: NaiveDateTime,
) -> DbResult<Result<(), NotInvited>> {
    crate::db::write_transaction(conn, |conn| {
        diesel::delete(
            member_invitations::table
                .filter(member_invitations::tenant_id.eq(&row.tenant_id))
                .filter(member_invitations::expires_at.le(now)),
        )
        .execute(conn)?;
        let member: i64 = tenant_members::table
            .filter(tenant_members::tenant_id.eq(&row.tenant_id))
            .filter(tenant_members::email.eq(&row.email))
            .count()
            .get_result(conn)?;
        if member > 0 {
            return Ok(Err(NotInvited::AlreadyMember));
        }
        let open: Vec<String> = member_invitations::table
            .filter(member_invitations::tenant_id.eq(&row.tenant_id))
            .select(member_invitations::email)
            .load(conn)?;
        if open.contains(&row.email) {
            return Ok(Err(NotInvited::AlreadyInvited));
        }
        if open.len() as i64 >= MAX_OPEN_INVITATIONS {
            return Ok(Err(NotInvited::TooMany));
        }
        diesel::insert_into(member_invitations::table)
            .values(row)
            .execute(conn)?;
        Ok(Ok(()))
    })
}

/// The tenant's open invitations, oldest first.
pub fn invitations(
    conn: &mut DbConnection,
    tenant: &TenantId,
    now: NaiveDateTime,
) -> DbResult<Vec<Invitation>> {
    Ok(member_invitations::table
        .filter(member_invitations::tenant_id.eq(tenant.as_str()))
        .filter(member_invitations::expires_at.gt(now))
        .order((
            member_invitations::created_at.asc(),
            member_invitations::id.asc(),
        ))
        .select(Invitation::as_select())
        .load(conn)?)
}

/// Withdraws invitation `id` unless its role is above `most`; the
/// invitation as it was (`None` when absent or above `most`).
pub fn withdraw(
    conn: &mut DbConnection,
    tenant: &TenantId,
    id: &str,
    most: Role,
) -> DbResult<Option<Invitation>> {
    crate::db::write_transaction(conn, |conn| {
        let found = member_invitations::table
            .filter(member_invitations::tenant_id.eq(tenant.as_str()))
            .filter(member_invitations::id.eq(id))
            .select(Invitation::as_select())
            .first(conn)
            .optional()?
            .filter(|invitation| Role::from_stored(&invitation.role) <= most);
        if found.is_some() {
            diesel::delete(member_invitations::table.find(id)).execute(conn)?;
        }
        Ok(found)
    })
}
