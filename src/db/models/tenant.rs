//! Tenants and their API keys (stored only as SHA-256 hashes).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::{api_keys, tenants};
use crate::db::{DbConnection, DbResult};

/// The tenant a request acts for; handed out only by authentication.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct TenantId(pub String);

impl TenantId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = tenants)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
pub struct ApiKey {
    pub id: String,
    pub tenant_id: String,
    pub key_hash: String,
    pub prefix: String,
    pub label: String,
    pub role: String,
    pub created_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
}

/// Creates the tenant unless one with this id exists.
pub fn ensure_tenant(conn: &mut DbConnection, tenant: &Tenant) -> DbResult<()> {
    let exists: i64 = tenants::table
        .filter(tenants::id.eq(&tenant.id))
        .count()
        .get_result(conn)?;
    if exists == 0 {
        diesel::insert_into(tenants::table)
            .values(tenant)
            .execute(conn)?;
    }
    Ok(())
}

/// Stores a key unless its hash is already known.
pub fn ensure_key(conn: &mut DbConnection, key: &ApiKey) -> DbResult<()> {
    let exists: i64 = api_keys::table
        .filter(api_keys::key_hash.eq(&key.key_hash))
        .count()
        .get_result(conn)?;
    if exists == 0 {
        diesel::insert_into(api_keys::table)
            .values(key)
            .execute(conn)?;
    }
    Ok(())
}

/// Number of keys that are not revoked.
pub fn count_active_keys(conn: &mut DbConnection) -> DbResult<i64> {
    Ok(api_keys::table
        .filter(api_keys::revoked_at.is_null())
        .count()
        .get_result(conn)?)
}

/// The active key with this hash, if any.
pub fn find_active_key(conn: &mut DbConnection, key_hash: &str) -> DbResult<Option<ApiKey>> {
    Ok(api_keys::table
        .filter(api_keys::key_hash.eq(key_hash))
        .filter(api_keys::revoked_at.is_null())
        .select(ApiKey::as_select())
        .first(conn)
        .optional()?)
}
