//! Tenants (budgets, quotas) and their API keys (stored only as SHA-256
//! hashes).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use super::instance::{insert_reservation, take_reservation, Held};
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

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = tenants)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub created_at: NaiveDateTime,
    /// Spend limit in micro-USD; `None` = no limit.
    pub budget_micros: Option<i64>,
    pub spent_micros: i64,
    /// Held by running turns until they are settled.
    pub reserved_micros: i64,
    /// `None` = the server default.
    pub max_sessions: Option<i64>,
    pub max_running_turns: Option<i64>,
    pub rate_limit_requests: Option<i64>,
    pub rate_limit_window_seconds: Option<i64>,
    /// Comma-separated permission modes; `None` = every mode the server allows.
    pub allowed_permission_modes: Option<String>,
    /// Disk quota of its agents in MiB; `None` = `AGENT_DISK_MAX_MB`.
    pub disk_max_mb: Option<i64>,
}

impl Tenant {
    pub fn new(name: &str, budget_micros: Option<i64>) -> Tenant {
        Tenant {
            id: name.to_owned(),
            name: name.to_owned(),
            created_at: crate::db::now(),
            budget_micros,
            spent_micros: 0,
            reserved_micros: 0,
            max_sessions: None,
            max_running_turns: None,
            rate_limit_requests: None,
            rate_limit_window_seconds: None,
            allowed_permission_modes: None,
            disk_max_mb: None,
        }
    }
}

/// Changes to a tenant's limits; `Some(None)` clears one (server default).
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = tenants)]
pub struct TenantLimits {
    pub budget_micros: Option<Option<i64>>,
    pub max_sessions: Option<Option<i64>>,
    pub max_running_turns: Option<Option<i64>>,
    pub rate_limit_requests: Option<Option<i64>>,
    pub rate_limit_window_seconds: Option<Option<i64>>,
    pub allowed_permission_modes: Option<Option<String>>,
    pub disk_max_mb: Option<Option<i64>>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = api_keys)]
pub struct ApiKey {
    pub id: String,
    pub tenant_id: String,
    #[serde(skip)]
    pub key_hash: String,
    pub prefix: String,
    pub label: String,
    pub role: String,
    pub created_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    /// A member's own key: the person's subject.
    pub owner_subject: Option<String>,
    /// When the key stops working by itself, if ever.
    pub expires_at: Option<NaiveDateTime>,
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

pub fn insert_tenant(conn: &mut DbConnection, tenant: &Tenant) -> DbResult<()> {
    diesel::insert_into(tenants::table)
        .values(tenant)
        .execute(conn)?;
    Ok(())
}

pub fn find_tenant(conn: &mut DbConnection, id: &str) -> DbResult<Option<Tenant>> {
    Ok(tenants::table
        .find(id)
        .select(Tenant::as_select())
        .first(conn)
        .optional()?)
}

/// The tenant's own running-turn limit (`None`: the server default, or no
/// such tenant). One primary-key read, done each time a turn asks for a
/// permit so a changed limit applies to live sessions.
pub fn max_running_turns(conn: &mut DbConnection, id: &str) -> DbResult<Option<i64>> {
    Ok(tenants::table
        .find(id)
        .select(tenants::max_running_turns)
        .first::<Option<i64>>(conn)
        .optional()?
        .flatten())
}

/// The tenant's own disk quota in MiB (`Some(None)`: the server default;
/// `None`: no such tenant).
pub fn disk_max_mb(conn: &mut DbConnection, id: &str) -> DbResult<Option<Option<i64>>> {
    Ok(tenants::table
        .find(id)
        .select(tenants::disk_max_mb)
        .first::<Option<i64>>(conn)
        .optional()?)
}

pub fn list_tenants(conn: &mut DbConnection) -> DbResult<Vec<Tenant>> {
    Ok(tenants::table
        .order(tenants::name.asc())
        .select(Tenant::as_select())
        .load(conn)?)
}

/// Updates limits; `None` when there is no such tenant.
pub fn update_limits(
    conn: &mut DbConnection,
    id: &str,
    limits: &TenantLimits,
) -> DbResult<Option<Tenant>> {
    let is_empty = limits.budget_micros.is_none()
        && limits.max_sessions.is_none()
        && limits.max_running_turns.is_none()
        && limits.rate_limit_requests.is_none()
        && limits.rate_limit_window_seconds.is_none()
        && limits.allowed_permission_modes.is_none()
        && limits.disk_max_mb.is_none();
    if !is_empty {
        diesel::update(tenants::table.find(id))
            .set(limits)
            .execute(conn)?;
    }
    find_tenant(conn, id)
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

/// An active key with its tenant's own rate limit: (key, requests, window
/// seconds).
pub type KeyWithLimits = (ApiKey, Option<i64>, Option<i64>);

/// An active key with its tenant's own rate limit, in one query.
pub fn find_active_key_with_limits(
    conn: &mut DbConnection,
    key_hash: &str,
) -> DbResult<Option<KeyWithLimits>> {
    Ok(api_keys::table
        .inner_join(tenants::table)
        .filter(api_keys::key_hash.eq(key_hash))
        .filter(api_keys::revoked_at.is_null())
        .filter(
            api_keys::expires_at
                .is_null()
                .or(api_keys::expires_at.gt(crate::db::now())),
        )
        .select((
            ApiKey::as_select(),
            tenants::rate_limit_requests,
            tenants::rate_limit_window_seconds,
        ))
        .first(conn)
        .optional()?)
}

/// Keys, newest first, of one tenant or of all.
pub fn list_keys(conn: &mut DbConnection, tenant: Option<&str>) -> DbResult<Vec<ApiKey>> {
    let mut query = api_keys::table.into_boxed();
    if let Some(tenant) = tenant {
        query = query.filter(api_keys::tenant_id.eq(tenant.to_owned()));
    }
    Ok(query
        .order((api_keys::created_at.desc(), api_keys::id.asc()))
        .select(ApiKey::as_select())
        .load(conn)?)
}

/// The personal keys of `subject` in `tenant`, newest first (revoked and
/// expired ones too).
pub fn personal_keys(
    conn: &mut DbConnection,
    tenant: &str,
    subject: &str,
) -> DbResult<Vec<ApiKey>> {
    Ok(api_keys::table
        .filter(api_keys::tenant_id.eq(tenant))
        .filter(api_keys::owner_subject.eq(subject))
        .order((api_keys::created_at.desc(), api_keys::id.asc()))
        .select(ApiKey::as_select())
        .load(conn)?)
}

/// The key `id`, revoked or not.
pub fn find_key(conn: &mut DbConnection, id: &str) -> DbResult<Option<ApiKey>> {
    Ok(api_keys::table
        .find(id)
        .select(ApiKey::as_select())
        .first(conn)
        .optional()?)
}

/// Revokes a key; `None` when there is no such key.
pub fn revoke_key(conn: &mut DbConnection, id: &str) -> DbResult<Option<ApiKey>> {
    diesel::update(
        api_keys::table
            .find(id)
            .filter(api_keys::revoked_at.is_null()),
    )
    .set(api_keys::revoked_at.eq(crate::db::now()))
    .execute(conn)?;
    Ok(api_keys::table
        .find(id)
        .select(ApiKey::as_select())
        .first(conn)
        .optional()?)
}

/// Why a turn may not start for budget reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget {
    pub spent_micros: i64,
    pub limit_micros: i64,
}

/// Reserves `amount` of the tenant's budget for a turn that is about to
/// start. Refused once spent + reserved reach the limit, so concurrent turns
/// cannot together run more than one reservation past it. No limit: nothing
/// is held.
pub fn reserve(
    conn: &mut DbConnection,
    tenant_id: &str,
    amount: i64,
    session_id: &str,
    owner: &str,
) -> DbResult<Result<Held, OverBudget>> {
    crate::db::write_transaction(conn, |conn| {
        let n = diesel::update(
            tenants::table
                .find(tenant_id)
                .filter(tenants::budget_micros.is_not_null())
                .filter(
                    (tenants::spent_micros + tenants::reserved_micros)
                        .lt(tenants::budget_micros.assume_not_null()),
                ),
        )
        .set(tenants::reserved_micros.eq(tenants::reserved_micros + amount))
        .execute(conn)?;
        // A row per running turn, owned by this instance: released (and the
        // turn's model calls charged) even if the instance dies first.
        if n == 1 {
            let held = insert_reservation(conn, tenant_id, Some(session_id), amount, owner)?;
            return Ok(Ok(held));
        }
        let tenant = find_tenant(conn, tenant_id)?;
        Ok(
            match tenant.and_then(|t| t.budget_micros.map(|b| (t.spent_micros, b))) {
                // No budget: nothing is held, but the turn is still marked.
                None => Ok(insert_reservation(
                    conn,
                    tenant_id,
                    Some(session_id),
                    0,
                    owner,
                )?),
                Some((spent_micros, limit_micros)) => Err(OverBudget {
                    spent_micros,
                    limit_micros,
                }),
            },
        )
    })
}

/// Settles a finished turn: its reservation is released and its real cost
/// charged, both as deltas. `false` when the reservation was already
/// released because its instance was counted dead: the turn was charged
/// then (what its model calls cost), so nothing is charged again.
pub fn settle(conn: &mut DbConnection, tenant_id: &str, held: &Held, cost: i64) -> DbResult<bool> {
    let Some(reserved) = take_reservation(conn, held)? else {
        return Ok(false);
    };
    diesel::update(tenants::table.find(tenant_id))
        .set((
            tenants::spent_micros.eq(tenants::spent_micros + cost),
            tenants::reserved_micros.eq(tenants::reserved_micros - reserved),
        ))
        .execute(conn)?;
    Ok(true)
}
