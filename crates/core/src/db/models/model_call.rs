//! Model calls seen by the gateway (the usage each reported), and the model
//! credentials that tenants may have of their own.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use super::TenantId;
use crate::db::schema::{model_calls, sessions, tenant_model_credentials, tenants};
use crate::db::{DbConnection, DbResult};

/// One model call, as the model reported it.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = model_calls)]
pub struct NewModelCall {
    pub id: String,
    pub tenant_id: String,
    pub session_id: Option<String>,
    pub model: Option<String>,
    /// The HTTP status the model API answered.
    pub status: i32,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_creation_input_tokens: i64,
    pub cache_read_input_tokens: i64,
    pub created_at: NaiveDateTime,
    /// What the tenant was charged directly for the call (made outside any
    /// turn); see `record`.
    pub charged_micros: i64,
}

/// What a model call made outside any turn costs its tenant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectCharge {
    pub cost_micros: i64,
    /// Input tokens of every kind.
    pub input_tokens: i64,
    pub output_tokens: i64,
}

/// Stores a call and, when it was made outside any turn, charges `charge`
/// to its tenant (spend and daily usage) and its session's totals, in the
/// same transaction and by deltas in SQL. Calls made in a turn are paid by
/// the turn's record instead.
pub fn record(conn: &mut DbConnection, call: &NewModelCall, charge: DirectCharge) -> DbResult<()> {
    crate::db::write_transaction(conn, |conn| {
        diesel::insert_into(model_calls::table)
            .values(call)
            .execute(conn)?;
        if charge == DirectCharge::default() {
            return Ok(());
        }
        diesel::update(tenants::table.find(&call.tenant_id))
            .set(tenants::spent_micros.eq(tenants::spent_micros + charge.cost_micros))
            .execute(conn)?;
        if let Some(session_id) = &call.session_id {
            diesel::update(sessions::table.find(session_id))
                .set((
                    sessions::total_cost_micros
                        .eq(sessions::total_cost_micros + charge.cost_micros),
                    sessions::input_tokens.eq(sessions::input_tokens + charge.input_tokens),
                    sessions::output_tokens.eq(sessions::output_tokens + charge.output_tokens),
                ))
                .execute(conn)?;
        }
        super::usage_daily::add(
            conn,
            &call.tenant_id,
            super::usage_daily::TurnUsage {
                turns: 0,
                cost_micros: charge.cost_micros,
                input_tokens: charge.input_tokens,
                output_tokens: charge.output_tokens,
            },
        )
    })
}

/// What the gateway counted for a tenant (or one of its sessions).
#[derive(Debug, Default, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ModelCallTotals {
    /// Model calls answered (any status).
    pub calls: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_creation_input_tokens: i64,
    pub cache_read_input_tokens: i64,
    /// What calls made outside any turn were charged directly (micro-USD);
    /// the rest was paid by the turns.
    pub charged_outside_turns_micros: i64,
}

/// Totals of a tenant's calls, or of one session's when `session_id` is given.
/// Summed in Rust: `SUM(BIGINT)` has different types on the two backends.
pub fn totals(
    conn: &mut DbConnection,
    tenant: &TenantId,
    session_id: Option<&str>,
) -> DbResult<ModelCallTotals> {
    let mut query = model_calls::table
        .filter(model_calls::tenant_id.eq(tenant.as_str()))
        .select((
            model_calls::input_tokens,
            model_calls::output_tokens,
            model_calls::cache_creation_input_tokens,
            model_calls::cache_read_input_tokens,
            model_calls::charged_micros,
        ))
        .into_boxed();
    if let Some(session) = session_id {
        query = query.filter(model_calls::session_id.eq(session.to_owned()));
    }
    let rows: Vec<(i64, i64, i64, i64, i64)> = query.load(conn)?;
    Ok(rows.iter().fold(
        ModelCallTotals::default(),
        |mut t, &(input, output, created, read, charged)| {
            t.calls += 1;
            t.input_tokens += input;
            t.output_tokens += output;
            t.cache_creation_input_tokens += created;
            t.cache_read_input_tokens += read;
            t.charged_outside_turns_micros += charged;
            t
        },
    ))
}

/// A tenant's own model credential, as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = tenant_model_credentials)]
pub struct TenantCredentialRow {
    pub tenant_id: String,
    /// `api_key`, `auth_token` or `oauth_token`.
    pub kind: String,
    pub secret: String,
    pub updated_at: NaiveDateTime,
}

pub fn all_credentials(conn: &mut DbConnection) -> DbResult<Vec<TenantCredentialRow>> {
    Ok(tenant_model_credentials::table
        .select(TenantCredentialRow::as_select())
        .load(conn)?)
}

pub fn find_credential(
    conn: &mut DbConnection,
    tenant_id: &str,
) -> DbResult<Option<TenantCredentialRow>> {
    Ok(tenant_model_credentials::table
        .find(tenant_id)
        .select(TenantCredentialRow::as_select())
        .first(conn)
        .optional()?)
}

/// Sets (replaces) a tenant's credential.
pub fn set_credential(
    conn: &mut DbConnection,
    tenant_id: &str,
    kind: &str,
    secret: &str,
) -> DbResult<()> {
    crate::db::write_transaction(conn, |conn| {
        diesel::delete(tenant_model_credentials::table.find(tenant_id)).execute(conn)?;
        diesel::insert_into(tenant_model_credentials::table)
            .values((
                tenant_model_credentials::tenant_id.eq(tenant_id),
                tenant_model_credentials::kind.eq(kind),
                tenant_model_credentials::secret.eq(secret),
                tenant_model_credentials::updated_at.eq(crate::db::now()),
            ))
            .execute(conn)?;
        Ok(())
    })
}

/// Removes a tenant's credential; `false` when it had none.
pub fn clear_credential(conn: &mut DbConnection, tenant_id: &str) -> DbResult<bool> {
    let n = diesel::delete(tenant_model_credentials::table.find(tenant_id)).execute(conn)?;
    Ok(n > 0)
}
