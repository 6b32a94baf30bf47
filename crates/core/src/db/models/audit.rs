//! The audit log: who (key id and label, never the key) did what to what,
//! when, from where, under which request id.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use super::TenantId;
use crate::db::schema::audit_log;
use crate::db::{DbConnection, DbResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = audit_log)]
pub struct AuditEntry {
    pub id: String,
    pub tenant_id: String,
    pub key_id: String,
    pub key_label: String,
    pub action: String,
    pub target: String,
    pub client_addr: Option<String>,
    pub request_id: String,
    pub created_at: NaiveDateTime,
    /// The session the action touched, if any.
    pub session_name: Option<String>,
    /// `user` (a chat's or job's prompt) or `system` (a description).
    pub role: String,
    pub content: String,
}

pub fn insert(conn: &mut DbConnection, entry: &AuditEntry) -> DbResult<()> {
    diesel::insert_into(audit_log::table)
        .values(entry)
        .execute(conn)?;
    Ok(())
}

/// One page, newest first: the tenant's entries, or everyone's (`None`, admins).
pub fn list(
    conn: &mut DbConnection,
    tenant: Option<&TenantId>,
    offset: i64,
    limit: i64,
) -> DbResult<(Vec<AuditEntry>, i64)> {
    let scoped = || {
        let mut query = audit_log::table.into_boxed();
        if let Some(tenant) = tenant {
            query = query.filter(audit_log::tenant_id.eq(tenant.as_str().to_owned()));
        }
        query
    };
    let total = scoped().count().get_result(conn)?;
    let rows = scoped()
        .order((audit_log::created_at.desc(), audit_log::id.desc()))
        .offset(offset)
        .limit(limit)
        .select(AuditEntry::as_select())
        .load(conn)?;
    Ok((rows, total))
}
