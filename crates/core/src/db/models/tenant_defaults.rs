//! What a tenant's new sessions start from: one session spec (JSON) per
//! tenant, set by admins.

use diesel::prelude::*;

use super::TenantId;
use crate::db::schema::tenant_defaults;
use crate::db::{DbConnection, DbResult};

/// The tenant's defaults (a session spec as JSON), if set.
pub fn get(conn: &mut DbConnection, tenant: &TenantId) -> DbResult<Option<String>> {
    Ok(tenant_defaults::table
        .find(&tenant.0)
        .select(tenant_defaults::spec)
        .first(conn)
        .optional()?)
}

/// Replaces the tenant's defaults.
pub fn set(conn: &mut DbConnection, tenant: &TenantId, spec: &str) -> DbResult<()> {
    crate::db::write_transaction(conn, |conn| {
        diesel::delete(tenant_defaults::table.find(&tenant.0)).execute(conn)?;
        diesel::insert_into(tenant_defaults::table)
            .values((
                tenant_defaults::tenant_id.eq(&tenant.0),
                tenant_defaults::spec.eq(spec),
                tenant_defaults::updated_at.eq(crate::db::now()),
            ))
            .execute(conn)?;
        Ok(())
    })
}
