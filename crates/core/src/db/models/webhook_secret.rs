//! Each tenant's webhook signing secret, so no tenant can sign (forge) the
//! webhooks of another. A rotation keeps the previous secret signing too
//! for a while, so a receiver can switch over without losing events.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::TenantId;
use crate::db::schema::tenant_webhook_secrets;
use crate::db::{DbConnection, DbResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = tenant_webhook_secrets)]
struct Row {
    tenant_id: String,
    secret: String,
    previous_secret: Option<String>,
    previous_expires_at: Option<NaiveDateTime>,
    updated_at: NaiveDateTime,
}

fn find(conn: &mut DbConnection, tenant: &TenantId) -> DbResult<Option<Row>> {
    Ok(tenant_webhook_secrets::table
        .find(tenant.as_str())
        .select(Row::as_select())
        .first(conn)
        .optional()?)
}

/// The tenant's current secret, made with `first` when it has none yet.
pub fn current(
    conn: &mut DbConnection,
    tenant: &TenantId,
    first: impl FnOnce() -> String,
) -> DbResult<String> {
    if let Some(row) = find(conn, tenant)? {
        return Ok(row.secret);
    }
    let row = Row {
        tenant_id: tenant.as_str().to_owned(),
        secret: first(),
        previous_secret: None,
        previous_expires_at: None,
        updated_at: crate::db::now(),
    };
    // Made by another request or instance meanwhile: theirs holds.
    let insert = diesel::insert_into(tenant_webhook_secrets::table)
        .values(&row)
        .on_conflict_do_nothing();
    match conn {
        DbConnection::Postgres(c) => insert.execute(c)?,
        DbConnection::Sqlite(c) => insert.execute(c)?,
    };
    Ok(find(conn, tenant)?.map_or(row.secret, |r| r.secret))
}

/// The secrets a delivery is signed with at `now`: the current one, then the
/// previous one while it is still honoured.
pub fn signing(
    conn: &mut DbConnection,
    tenant: &TenantId,
    now: NaiveDateTime,
    first: impl FnOnce() -> String,
) -> DbResult<Vec<String>> {
    let current = current(conn, tenant, first)?;
    let mut secrets = vec![current];
    if let Some(row) = find(conn, tenant)? {
        if let (Some(previous), Some(until)) = (row.previous_secret, row.previous_expires_at) {
            if until > now && previous != secrets[0] {
                secrets.push(previous);
            }
        }
    }
    Ok(secrets)
}

/// Replaces the tenant's secret with `new`; the one it replaces keeps
/// signing until `keep_until`. Returns `new`.
pub fn rotate(
    conn: &mut DbConnection,
    tenant: &TenantId,
    new: String,
    keep_until: NaiveDateTime,
    first: impl FnOnce() -> String,
) -> DbResult<String> {
    crate::db::write_transaction(conn, |conn| {
        let old = current(conn, tenant, first)?;
        diesel::update(tenant_webhook_secrets::table.find(tenant.as_str()))
            .set((
                tenant_webhook_secrets::secret.eq(&new),
                tenant_webhook_secrets::previous_secret.eq(Some(old)),
                tenant_webhook_secrets::previous_expires_at.eq(Some(keep_until)),
                tenant_webhook_secrets::updated_at.eq(crate::db::now()),
            ))
            .execute(conn)?;
        Ok(new)
    })
}
