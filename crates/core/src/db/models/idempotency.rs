//! Idempotency keys, scoped to a tenant, kept 24 hours.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::idempotency_keys;
use crate::db::{DbConnection, DbResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = idempotency_keys)]
pub struct IdempotencyKey {
    pub tenant_id: String,
    pub key: String,
    pub request_hash: String,
    pub response_status: Option<i32>,
    pub response_body: Option<String>,
    pub created_at: NaiveDateTime,
    /// The instance running the request; its claim goes if it dies.
    pub owner: Option<String>,
}

/// What the store says about a key.
#[derive(Debug)]
pub enum Claim {
    /// New (or expired) key: this request runs and must `finish` or `release`.
    Fresh,
    /// Same key, same request, already answered.
    Replay { status: i32, body: String },
    /// Same key, same request, still running.
    InProgress,
    /// Same key, different request.
    Mismatch,
}

/// Claims `key` for a request with fingerprint `hash`; keys older than
/// `expired_before` count as absent.
pub fn claim(
    conn: &mut DbConnection,
    tenant_id: &str,
    key: &str,
    hash: &str,
    expired_before: NaiveDateTime,
    owner: &str,
) -> DbResult<Claim> {
    crate::db::write_transaction(conn, |conn| {
        let existing: Option<IdempotencyKey> = idempotency_keys::table
            .find((tenant_id, key))
            .select(IdempotencyKey::as_select())
            .first(conn)
            .optional()?;
        if let Some(row) = existing {
            if row.created_at >= expired_before {
                return Ok(if row.request_hash != hash {
                    Claim::Mismatch
                } else {
                    match (row.response_status, row.response_body) {
                        (Some(status), Some(body)) => Claim::Replay { status, body },
                        _ => Claim::InProgress,
                    }
                });
            }
            diesel::delete(idempotency_keys::table.find((tenant_id, key))).execute(conn)?;
        }
        diesel::insert_into(idempotency_keys::table)
            .values(&IdempotencyKey {
                tenant_id: tenant_id.to_owned(),
                key: key.to_owned(),
                request_hash: hash.to_owned(),
                response_status: None,
                response_body: None,
                created_at: crate::db::now(),
                owner: Some(owner.to_owned()),
            })
            .execute(conn)?;
        Ok(Claim::Fresh)
    })
}

/// Stores the response a claimed key answers with from now on.
pub fn finish(
    conn: &mut DbConnection,
    tenant_id: &str,
    key: &str,
    status: i32,
    body: &str,
) -> DbResult<()> {
    diesel::update(idempotency_keys::table.find((tenant_id, key)))
        .set((
            idempotency_keys::response_status.eq(status),
            idempotency_keys::response_body.eq(body),
        ))
        .execute(conn)?;
    Ok(())
}

/// Forgets a claim whose request failed, so the client may retry.
pub fn release(conn: &mut DbConnection, tenant_id: &str, key: &str) -> DbResult<()> {
    diesel::delete(idempotency_keys::table.find((tenant_id, key))).execute(conn)?;
    Ok(())
}

pub fn purge_expired(conn: &mut DbConnection, expired_before: NaiveDateTime) -> DbResult<usize> {
    Ok(diesel::delete(
        idempotency_keys::table.filter(idempotency_keys::created_at.lt(expired_before)),
    )
    .execute(conn)?)
}
