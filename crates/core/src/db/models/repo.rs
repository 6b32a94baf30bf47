//! A tenant's registered git remotes. `credential` is sealed (see
//! `security::secret_box`) and never leaves the server through the API.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::TenantId;
use crate::db::schema::repos;
use crate::db::{DbConnection, DbResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = repos, treat_none_as_null = true)]
pub struct Repo {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub url: String,
    pub provider: Option<String>,
    pub api_url: Option<String>,
    pub default_branch: String,
    /// Sealed with `SECRETS_KEY` for `credential_context`.
    pub credential: Option<String>,
    /// `token` or `ssh_key`.
    pub credential_kind: Option<String>,
    pub author_name: Option<String>,
    pub author_email: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// The tenant secret that is the credential, by name (instead of
    /// `credential`).
    pub credential_secret: Option<String>,
}

impl Repo {
    /// What a sealed credential is bound to: this tenant's repository.
    pub fn credential_context(tenant_id: &str, id: &str) -> String {
        format!("repo-credential/{tenant_id}/{id}")
    }
}

pub fn insert(conn: &mut DbConnection, repo: &Repo) -> DbResult<()> {
    diesel::insert_into(repos::table)
        .values(repo)
        .execute(conn)?;
    Ok(())
}

/// Replaces every column of the tenant's repository `repo.id`.
pub fn update(conn: &mut DbConnection, repo: &Repo) -> DbResult<bool> {
    let n = diesel::update(
        repos::table
            .filter(repos::id.eq(&repo.id))
            .filter(repos::tenant_id.eq(&repo.tenant_id)),
    )
    .set(repo)
    .execute(conn)?;
    Ok(n > 0)
}

pub fn count(conn: &mut DbConnection, tenant: &TenantId) -> DbResult<i64> {
    Ok(repos::table
        .filter(repos::tenant_id.eq(tenant.as_str()))
        .count()
        .get_result(conn)?)
}

pub fn list(conn: &mut DbConnection, tenant: &TenantId) -> DbResult<Vec<Repo>> {
    Ok(repos::table
        .filter(repos::tenant_id.eq(tenant.as_str()))
        .order(repos::name.asc())
        .select(Repo::as_select())
        .load(conn)?)
}

pub fn find_by_name(
    conn: &mut DbConnection,
    tenant: &TenantId,
    name: &str,
) -> DbResult<Option<Repo>> {
    Ok(repos::table
        .filter(repos::tenant_id.eq(tenant.as_str()))
        .filter(repos::name.eq(name))
        .select(Repo::as_select())
        .first(conn)
        .optional()?)
}

pub fn find_by_id(conn: &mut DbConnection, tenant: &TenantId, id: &str) -> DbResult<Option<Repo>> {
    Ok(repos::table
        .filter(repos::tenant_id.eq(tenant.as_str()))
        .filter(repos::id.eq(id))
        .select(Repo::as_select())
        .first(conn)
        .optional()?)
}

pub fn delete(conn: &mut DbConnection, tenant: &TenantId, id: &str) -> DbResult<bool> {
    let n = diesel::delete(
        repos::table
            .filter(repos::tenant_id.eq(tenant.as_str()))
            .filter(repos::id.eq(id)),
    )
    .execute(conn)?;
    Ok(n > 0)
}
