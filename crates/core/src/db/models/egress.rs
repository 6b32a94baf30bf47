//! The hosts a tenant's agents may reach through the egress proxy: one row
//! per pattern (`example.com`, `*.example.com`), checked by the proxy at
//! every new connection, so a change applies to running sessions at once.

use diesel::prelude::*;

use super::TenantId;
use crate::db::schema::tenant_egress_hosts;
use crate::db::{DbConnection, DbResult};

/// The tenant's patterns, sorted.
pub fn allowed_hosts(conn: &mut DbConnection, tenant: &TenantId) -> DbResult<Vec<String>> {
    Ok(tenant_egress_hosts::table
        .filter(tenant_egress_hosts::tenant_id.eq(&tenant.0))
        .order(tenant_egress_hosts::pattern.asc())
        .select(tenant_egress_hosts::pattern)
        .load(conn)?)
}

/// Replaces the tenant's patterns with `patterns` (already checked), in one
/// transaction: a proxy connection sees the old list or the new one.
pub fn set_allowed_hosts(
    conn: &mut DbConnection,
    tenant: &TenantId,
    patterns: &[String],
) -> DbResult<()> {
    crate::db::write_transaction(conn, |conn| {
        diesel::delete(
            tenant_egress_hosts::table.filter(tenant_egress_hosts::tenant_id.eq(&tenant.0)),
        )
        .execute(conn)?;
        let now = crate::db::now();
        for pattern in patterns {
            diesel::insert_into(tenant_egress_hosts::table)
                .values((
                    tenant_egress_hosts::tenant_id.eq(&tenant.0),
                    tenant_egress_hosts::pattern.eq(pattern),
                    tenant_egress_hosts::created_at.eq(now),
                ))
                .execute(conn)?;
        }
        Ok(())
    })
}
