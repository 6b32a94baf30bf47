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

/// Registers this start; `advertise_url` is where the other nodes of a
/// cluster reach it.
pub fn register(
    conn: &mut DbConnection,
    me: &Instance,
    advertise_url: Option<&str>,
) -> DbResult<()> {
    let now = db_now(conn)?;
    diesel::insert_into(server_instances::table)
        .values((
            server_instances::id.eq(&me.id),
            server_instances::node_id.eq(&me.node_id),
            server_instances::started_at.eq(now),
            server_instances::heartbeat_at.eq(now),
            server_instances::advertise_url.eq(advertise_url),
        ))
        .execute(conn)?;
    Ok(())
}

#[derive(QueryableByName)]
struct NowRow {
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    now: NaiveDateTime,
}

/// The database's clock (PostgreSQL), or this server's (SQLite: one
/// server, one clock). Heartbeats and leases are judged on it, so nodes
/// whose clocks drift still agree.
pub fn db_now(conn: &mut DbConnection) -> DbResult<NaiveDateTime> {
    match conn {
        DbConnection::Postgres(pg) => {
            let sql = format!("SELECT {} AS now", super::lease::DB_NOW);
            let row: NowRow = diesel::sql_query(sql).get_result(pg)?;
            Ok(row.now)
        }
        DbConnection::Sqlite(_) => Ok(crate::db::now()),
    }
}

/// Says this instance is alive (on the database's clock), and whether it
/// sees the shared workspace root. `false` when its row was gone: a beat
/// came so late that another instance counted it dead and released what it
/// held; the row is made again, so the others reach it from now on.
pub fn heartbeat(
    conn: &mut DbConnection,
    me: &Instance,
    advertise_url: Option<&str>,
    workspace_shared: bool,
) -> DbResult<bool> {
    let now = db_now(conn)?;
    let n = diesel::update(server_instances::table.find(&me.id))
        .set((
            server_instances::heartbeat_at.eq(now),
            server_instances::workspace_shared.eq(workspace_shared),
        ))
        .execute(conn)?;
    if n == 1 {
        return Ok(true);
    }
    register(conn, me, advertise_url)?;
    Ok(false)
}

/// Marks this instance as draining: it takes no new session lease.
pub fn set_draining(conn: &mut DbConnection, me: &Instance) -> DbResult<()> {
    diesel::update(server_instances::table.find(&me.id))
        .set(server_instances::draining.eq(true))
        .execute(conn)?;
    Ok(())
}

/// Forgets this instance (a clean stop): the others need not wait for its
/// heartbeat to go stale.
pub fn deregister(conn: &mut DbConnection, me: &Instance) -> DbResult<()> {
    diesel::delete(server_instances::table.find(&me.id)).execute(conn)?;
    Ok(())
}

/// One instance as `/admin/nodes` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeView {
    pub id: String,
    pub node_id: String,
    pub advertise_url: Option<String>,
    pub draining: bool,
    pub alive: bool,
    pub workspace_shared: bool,
    /// Sessions whose live lease it holds.
    pub sessions: i64,
    pub started_at: NaiveDateTime,
    pub heartbeat_at: NaiveDateTime,
}

/// Every registered instance, alive (heartbeat at or after `stale_before`)
/// or not yet released, oldest first.
pub fn list(conn: &mut DbConnection, stale_before: NaiveDateTime) -> DbResult<Vec<NodeView>> {
    type Row = (
        String,
        String,
        Option<String>,
        bool,
        bool,
        NaiveDateTime,
        NaiveDateTime,
    );
    let rows: Vec<Row> = server_instances::table
        .order(server_instances::started_at.asc())
        .select((
            server_instances::id,
            server_instances::node_id,
            server_instances::advertise_url,
            server_instances::draining,
            server_instances::workspace_shared,
            server_instances::started_at,
            server_instances::heartbeat_at,
        ))
        .load(conn)?;
    let now = db_now(conn)?;
    let mut nodes = Vec::with_capacity(rows.len());
    for (id, node_id, advertise_url, draining, workspace_shared, started_at, heartbeat_at) in rows {
        let held: i64 = sessions::table
            .filter(sessions::owner_instance.eq(&id))
            .filter(sessions::lease_until.ge(now))
            .count()
            .get_result(conn)?;
        nodes.push(NodeView {
            alive: heartbeat_at >= stale_before,
            id,
            node_id,
            advertise_url,
            draining,
            workspace_shared,
            sessions: held,
            started_at,
            heartbeat_at,
        });
    }
    Ok(nodes)
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
    type Row = (Option<String>, i64, i64, i64, i64, i64);
    let rows: Vec<Row> = model_calls::table
        .filter(model_calls::session_id.eq(session_id))
        .filter(model_calls::created_at.ge(since))
        .select((
            model_calls::model,
            model_calls::input_tokens,
            model_calls::output_tokens,
            model_calls::cache_creation_input_tokens,
            model_calls::cache_read_input_tokens,
            model_calls::charged_micros,
        ))
        .load(conn)?;
    // A call the gateway charged directly (made outside any turn, wholly or
    // in part) is charged here only for what that left unpaid; its tokens
    // were counted with that charge.
    let mut calls = Vec::with_capacity(rows.len());
    let (mut charged, mut input, mut output) = (0, 0, 0);
    for (model, input_tokens, output_tokens, created, read, direct) in rows {
        let call = CallUsage {
            model,
            input_tokens,
            output_tokens,
            cache_creation_input_tokens: created,
            cache_read_input_tokens: read,
        };
        if direct == 0 {
            input += call.all_input_tokens();
            output += call.output_tokens;
        }
        charged += direct;
        calls.push(call);
    }
    let cost = (price(&calls) - charged).max(0);
    if cost == 0 {
        return Ok(0);
    }
    diesel::update(sessions::table.find(session_id))
        .set((
            sessions::total_cost_micros.eq(sessions::total_cost_micros + cost),
            sessions::input_tokens.eq(sessions::input_tokens + input),
            sessions::output_tokens.eq(sessions::output_tokens + output),
        ))
        .execute(conn)?;
    super::usage_daily::add(
        conn,
        tenant_id,
        super::usage_daily::TurnUsage {
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
/// `reserved_micros`, or `None` when it was already released (its instance
/// was counted dead, and the turn charged then: see `release_dead`).
pub fn take_reservation(conn: &mut DbConnection, held: &Held) -> DbResult<Option<i64>> {
    let Some(id) = &held.id else {
        return Ok(Some(0));
    };
    let n = diesel::delete(budget_reservations::table.find(id)).execute(conn)?;
    Ok((n == 1).then_some(held.amount_micros))
}
