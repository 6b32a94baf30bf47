//! Trust rules: which bearer tokens of which issuer act as whom. Rules are
//! the server's (an admin makes them for any tenant), so queries here take a
//! tenant only to filter or count.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{tenants, trust_rules};
use crate::db::{DbConnection, DbResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = trust_rules)]
pub struct TrustRule {
    pub id: String,
    pub name: String,
    pub issuer: String,
    pub audience: String,
    /// A JSON object: claim name → the value it must have.
    pub claims: String,
    pub tenant_id: String,
    pub role: String,
    pub created_at: NaiveDateTime,
}

/// Why a rule was not stored.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The tenant has `max_per_tenant` rules already.
    TenantFull,
    /// The server has `max_total` rules already.
    ServerFull,
}

/// Stores `row` unless its tenant or the server has as many rules as
/// allowed. A name taken is the unique index's error.
pub fn insert(
    conn: &mut DbConnection,
    row: &TrustRule,
    max_per_tenant: i64,
    max_total: i64,
) -> DbResult<Result<(), Refused>> {
    crate::db::write_transaction(conn, |conn| {
        let total: i64 = trust_rules::table.count().get_result(conn)?;
        if total >= max_total {
            return Ok(Err(Refused::ServerFull));
        }
        let of_tenant: i64 = trust_rules::table
            .filter(trust_rules::tenant_id.eq(&row.tenant_id))
            .count()
            .get_result(conn)?;
        if of_tenant >= max_per_tenant {
            return Ok(Err(Refused::TenantFull));
        }
        diesel::insert_into(trust_rules::table)
            .values(row)
            .execute(conn)?;
        Ok(Ok(()))
    })
}

/// Rules by name, of one tenant or all.
pub fn list(conn: &mut DbConnection, tenant: Option<&str>) -> DbResult<Vec<TrustRule>> {
    let mut query = trust_rules::table
        .order(trust_rules::name.asc())
        .select(TrustRule::as_select())
        .into_boxed();
    if let Some(tenant) = tenant {
        query = query.filter(trust_rules::tenant_id.eq(tenant.to_owned()));
    }
    Ok(query.load(conn)?)
}

/// A rule with its tenant's own rate limit (requests, window seconds).
pub type RuleWithLimits = (TrustRule, Option<i64>, Option<i64>);

/// The rules naming `issuer` exactly, by name (the order they are tried
/// in), each with its tenant's rate limit.
pub fn for_issuer(conn: &mut DbConnection, issuer: &str) -> DbResult<Vec<RuleWithLimits>> {
    Ok(trust_rules::table
        .inner_join(tenants::table)
        .filter(trust_rules::issuer.eq(issuer))
        .order(trust_rules::name.asc())
        .select((
            TrustRule::as_select(),
            tenants::rate_limit_requests,
            tenants::rate_limit_window_seconds,
        ))
        .load(conn)?)
}

/// Deletes the rule `id` (of `tenant` when given); the rule as it was, or
/// `None` when there is none.
pub fn delete(
    conn: &mut DbConnection,
    id: &str,
    tenant: Option<&str>,
) -> DbResult<Option<TrustRule>> {
    crate::db::write_transaction(conn, |conn| {
        let found = trust_rules::table
            .find(id)
            .select(TrustRule::as_select())
            .first(conn)
            .optional()?
            .filter(|rule| tenant.is_none_or(|t| rule.tenant_id == t));
        if found.is_some() {
            diesel::delete(trust_rules::table.find(id)).execute(conn)?;
        }
        Ok(found)
    })
}
