//! Server instances (one per start of a server) and what they hold: budget
//! reservations of running turns and idempotency claims of requests in
//! flight. An instance that is gone (the node started again, or its
//! heartbeat went stale) gives them back.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{
    budget_reservations, idempotency_keys, model_calls, server_instances, sessions, tenants,
};
use crate::db::{DbConnection, DbResult};
use crate::gateway::usage::CallUsage;

/// This server's identity in the database.
#[derive(Debug, Clone)]
pub struct Instance {
    /// New at every start.
    pub id: String,
    /// Stable across starts of the same server (kept in its `DATA_DIR`).
    pub node_id: String,
}

pub fn register(conn: &mut DbConnection, me: &Instance) -> DbResult<()> {
    let now = crate::db::now();
    diesel::insert_into(server_instances::table)
        .values((
            server_instances::id.eq(&me.id),
            server_instances::node_id.eq(&me.node_id),
            server_instances::started_at.eq(now),
            server_instances::heartbeat_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn heartbeat(conn: &mut DbConnection, me: &Instance) -> DbResult<()> {
    diesel::update(server_instances::table.find(&me.id))
        .set(server_instances::heartbeat_at.eq(crate::db::now()))
        .execute(conn)?;
    Ok(())
}

/// What `release_dead` gave back.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    pub reservations: usize,
    pub reserved_micros: i64,
    /// Charged for the model calls of turns that died with their instance.
    pub charged_micros: i64,
    pub claims: usize,
}

/// The model calls a session made since `since` (the start of a turn that
/// died), priced and added to the session's totals and the tenant's day;
/// the cost, for the tenant's spend.
fn charge_died_turn(
    conn: &mut DbConnection,
    tenant_id: &str,
    session_id: &str,
    since: NaiveDateTime,
    price: &(dyn Fn(&[CallUsage]) -> i64 + Sync),
) -> DbResult<i64> {
    type Row = (Option<String>, i64, i64, i64, i64);
    let rows: Vec<Row> = model_calls::table
        .filter(model_calls::session_id.eq(session_id))
        .filter(model_calls::created_at.ge(since))
        .select((
            model_calls::model,
            model_calls::input_tokens,
            model_calls::output_tokens,
            model_calls::cache_creation_input_tokens,
            model_calls::cache_read_input_tokens,
        ))
        .load(conn)?;
    let calls: Vec<CallUsage> = rows
        .into_iter()
        .map(|(model, input, output, created, read)| CallUsage {
            model,
            input_tokens: input,
            output_tokens: output,
            cache_creation_input_tokens: created,
            cache_read_input_tokens: read,
        })
        .collect();
    let cost = price(&calls);
    if cost == 0 {
        return Ok(0);
    }
    let input: i64 = calls
        .iter()
        .map(|c| c.input_tokens + c.cache_creation_input_tokens + c.cache_read_input_tokens)
        .sum();
    let output: i64 = calls.iter().map(|c| c.output_tokens).sum();
    diesel::update(sessions::table.find(session_id))
        .set((
            sessions::total_cost_micros.eq(sessions::total_cost_micros + cost),
            sessions::input_tokens.eq(sessions::input_tokens + input),
            sessions::output_tokens.eq(sessions::output_tokens + output),
        ))
        .execute(conn)?;
    super::usage::add(
        conn,
        tenant_id,
        super::usage::TurnUsage {
            turns: 0,
            cost_micros: cost,
            input_tokens: input,
            output_tokens: output,
        },
    )?;
    Ok(cost)
}

/// Releases everything held by instances that are gone: earlier starts of
/// this node, and any instance whose heartbeat is older than `stale_before`.
/// A turn that died with its instance is charged what its model calls used
/// (as the gateway recorded them), priced by `price`.
pub fn release_dead(
    conn: &mut DbConnection,
    me: &Instance,
    stale_before: NaiveDateTime,
    price: &(dyn Fn(&[CallUsage]) -> i64 + Sync),
) -> DbResult<Released> {
    crate::db::write_transaction(conn, |conn| {
        let live: Vec<String> = server_instances::table
            .filter(
                server_instances::id.eq(&me.id).or(server_instances::node_id
                    .ne(&me.node_id)
                    .and(server_instances::heartbeat_at.ge(stale_before))),
            )
            .select(server_instances::id)
            .load(conn)?;
        type Orphan = (String, String, Option<String>, i64, NaiveDateTime);
        let orphans: Vec<Orphan> = budget_reservations::table
            .filter(budget_reservations::owner.ne_all(&live))
            .select((
                budget_reservations::id,
                budget_reservations::tenant_id,
                budget_reservations::session_id,
                budget_reservations::amount_micros,
                budget_reservations::created_at,
            ))
            .load(conn)?;
        let mut released = Released::default();
        for (id, tenant_id, session_id, amount, since) in orphans {
            let n = diesel::delete(budget_reservations::table.find(&id)).execute(conn)?;
            if n != 1 {
                continue;
            }
            let cost = match &session_id {
                Some(session) => charge_died_turn(conn, &tenant_id, session, since, price)?,
                None => 0,
            };
            diesel::update(tenants::table.find(&tenant_id))
                .set((
                    tenants::reserved_micros.eq(tenants::reserved_micros - amount),
                    tenants::spent_micros.eq(tenants::spent_micros + cost),
                ))
                .execute(conn)?;
            released.reservations += 1;
            released.reserved_micros += amount;
            released.charged_micros += cost;
        }
        released.claims = diesel::delete(
            idempotency_keys::table
                .filter(idempotency_keys::response_status.is_null())
                .filter(idempotency_keys::owner.is_not_null())
                .filter(idempotency_keys::owner.ne_all(&live)),
        )
        .execute(conn)?;
        diesel::delete(server_instances::table.filter(server_instances::id.ne_all(&live)))
            .execute(conn)?;
        Ok(released)
    })
}

/// A tenant's budget held for one running turn.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Held {
    /// The reservation's row; `None` when nothing is held (no budget).
    pub id: Option<String>,
    pub amount_micros: i64,
}

/// Records a reservation just added to `tenants.reserved_micros`.
pub fn insert_reservation(
    conn: &mut DbConnection,
    tenant_id: &str,
    session_id: Option<&str>,
    amount: i64,
    owner: &str,
) -> DbResult<Held> {
    let id = uuid::Uuid::now_v7().to_string();
    diesel::insert_into(budget_reservations::table)
        .values((
            budget_reservations::id.eq(&id),
            budget_reservations::tenant_id.eq(tenant_id),
            budget_reservations::session_id.eq(session_id),
            budget_reservations::amount_micros.eq(amount),
            budget_reservations::owner.eq(owner),
            budget_reservations::created_at.eq(crate::db::now()),
        ))
        .execute(conn)?;
    Ok(Held {
        id: Some(id),
        amount_micros: amount,
    })
}

/// Deletes the reservation's row; the amount to take off the tenant's
/// `reserved_micros` (0 when it was already released).
pub fn take_reservation(conn: &mut DbConnection, held: &Held) -> DbResult<i64> {
    let Some(id) = &held.id else {
        return Ok(0);
    };
    let n = diesel::delete(budget_reservations::table.find(id)).execute(conn)?;
    Ok(if n == 1 { held.amount_micros } else { 0 })
}
