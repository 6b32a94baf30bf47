//! Model calls seen by the gateway (the usage each reported), and the model
//! credentials that tenants may have of their own.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use super::TenantId;
use crate::db::schema::{model_calls, tenant_model_credentials};
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
}

pub fn insert(conn: &mut DbConnection, call: &NewModelCall) -> DbResult<()> {
    diesel::insert_into(model_calls::table)
        .values(call)
        .execute(conn)?;
    Ok(())
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
        ))
        .into_boxed();
    if let Some(session) = session_id {
        query = query.filter(model_calls::session_id.eq(session.to_owned()));
    }
    let rows: Vec<(i64, i64, i64, i64)> = query.load(conn)?;
    Ok(rows.iter().fold(
        ModelCallTotals::default(),
        |mut t, &(input, output, created, read)| {
            t.calls += 1;
            t.input_tokens += input;
            t.output_tokens += output;
            t.cache_creation_input_tokens += created;
            t.cache_read_input_tokens += read;
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
