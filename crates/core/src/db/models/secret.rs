//! A tenant's named secrets. `value` is sealed (see `security::secret_box`)
//! and never leaves the server through the API.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::TenantId;
use crate::db::schema::tenant_secrets;
use crate::db::{DbConnection, DbResult};

/// A secret as listed: never its value.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = tenant_secrets)]
pub struct SecretInfo {
    pub name: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
}

/// What a sealed value is bound to: this tenant's secret of this name.
pub fn context(tenant: &TenantId, name: &str) -> String {
    format!("tenant-secret/{}/{name}", tenant.as_str())
}

/// Stores `sealed` as the secret `name` (new, or replacing the value);
/// `true` when it is new.
pub fn put(conn: &mut DbConnection, tenant: &TenantId, name: &str, sealed: &str) -> DbResult<bool> {
    let now = crate::db::now();
    crate::db::write_transaction(conn, |conn| {
        let updated = diesel::update(
            tenant_secrets::table
                .filter(tenant_secrets::tenant_id.eq(tenant.as_str()))
                .filter(tenant_secrets::name.eq(name)),
        )
        .set((
            tenant_secrets::value.eq(sealed),
            tenant_secrets::updated_at.eq(now),
        ))
        .execute(conn)?;
        if updated > 0 {
            return Ok(false);
        }
        diesel::insert_into(tenant_secrets::table)
            .values((
                tenant_secrets::tenant_id.eq(tenant.as_str()),
                tenant_secrets::name.eq(name),
                tenant_secrets::value.eq(sealed),
                tenant_secrets::created_at.eq(now),
                tenant_secrets::updated_at.eq(now),
            ))
            .execute(conn)?;
        Ok(true)
    })
}

pub fn count(conn: &mut DbConnection, tenant: &TenantId) -> DbResult<i64> {
    Ok(tenant_secrets::table
        .filter(tenant_secrets::tenant_id.eq(tenant.as_str()))
        .count()
        .get_result(conn)?)
}

pub fn list(conn: &mut DbConnection, tenant: &TenantId) -> DbResult<Vec<SecretInfo>> {
    Ok(tenant_secrets::table
        .filter(tenant_secrets::tenant_id.eq(tenant.as_str()))
        .order(tenant_secrets::name.asc())
        .select(SecretInfo::as_select())
        .load(conn)?)
}

pub fn info(
    conn: &mut DbConnection,
    tenant: &TenantId,
    name: &str,
) -> DbResult<Option<SecretInfo>> {
    Ok(tenant_secrets::table
        .filter(tenant_secrets::tenant_id.eq(tenant.as_str()))
        .filter(tenant_secrets::name.eq(name))
        .select(SecretInfo::as_select())
        .first(conn)
        .optional()?)
}

/// The sealed value of secret `name`, its use recorded.
pub fn take_for_use(
    conn: &mut DbConnection,
    tenant: &TenantId,
    name: &str,
) -> DbResult<Option<String>> {
    let scope = tenant_secrets::table
        .filter(tenant_secrets::tenant_id.eq(tenant.as_str()))
        .filter(tenant_secrets::name.eq(name));
    let value: Option<String> = scope.select(tenant_secrets::value).first(conn).optional()?;
    if value.is_some() {
        diesel::update(scope)
            .set(tenant_secrets::last_used_at.eq(crate::db::now()))
            .execute(conn)?;
    }
    Ok(value)
}

pub fn delete(conn: &mut DbConnection, tenant: &TenantId, name: &str) -> DbResult<bool> {
    let n = diesel::delete(
        tenant_secrets::table
            .filter(tenant_secrets::tenant_id.eq(tenant.as_str()))
            .filter(tenant_secrets::name.eq(name)),
    )
    .execute(conn)?;
    Ok(n > 0)
}
