//! Session leases: which instance of a cluster runs a session, until when,
//! and under which epoch. Only PostgreSQL coordinates a cluster; on SQLite
//! (one server) every call is a no-op that says "yours".
//!
//! Times are the database's own clock (`DB_NOW`), so nodes whose clocks
//! drift still agree on when a lease ran out.

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Double, Nullable, Text};

use crate::db::{DbConnection, DbResult};

/// The database's current time, as the UTC `TIMESTAMP` the tables keep.
pub const DB_NOW: &str = "(now() AT TIME ZONE 'UTC')";

/// A lease held by this instance: the epoch every write of the session's
/// actor must still find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub session_id: String,
    pub instance_id: String,
    pub epoch: i64,
}

/// What taking a lease came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// This instance holds it; `taken_over` when it came from another
    /// holder (or none): what that holder left unfinished is this one's now.
    Held { lease: Lease, taken_over: bool },
    /// A live lease of another instance (or one taken a moment ago).
    Elsewhere,
    /// This instance is draining: it takes no lease.
    Draining,
}

#[derive(QueryableByName)]
struct EpochRow {
    #[diesel(sql_type = BigInt)]
    owner_epoch: i64,
    #[diesel(sql_type = Nullable<Text>)]
    previous: Option<String>,
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = Text)]
    id: String,
}

#[derive(QueryableByName)]
struct OwnerRow {
    #[diesel(sql_type = Nullable<Text>)]
    advertise_url: Option<String>,
}

/// Takes the session's lease for `instance` for `ttl_secs`: in one
/// conditional update, when it is unowned, already this instance's, or run
/// out. A change of holder raises the epoch; a renewal keeps it.
pub fn acquire(
    conn: &mut DbConnection,
    session_id: &str,
    instance_id: &str,
    ttl_secs: f64,
) -> DbResult<Taken> {
    let DbConnection::Postgres(pg) = conn else {
        return Ok(Taken::Held {
            lease: Lease {
                session_id: session_id.to_owned(),
                instance_id: instance_id.to_owned(),
                epoch: 0,
            },
            taken_over: false,
        });
    };
    // The sub-select locks the row and reads the holder before the update.
    let sql = format!(
        "UPDATE sessions s SET \
           owner_epoch = CASE WHEN p.previous IS NOT DISTINCT FROM $2 \
                              THEN s.owner_epoch ELSE s.owner_epoch + 1 END, \
           owner_instance = $2, \
           lease_until = {DB_NOW} + make_interval(secs => $3) \
         FROM (SELECT owner_instance AS previous FROM sessions WHERE id = $1 FOR UPDATE) p \
         WHERE s.id = $1 \
           AND (s.owner_instance IS NULL OR s.owner_instance = $2 OR s.lease_until < {DB_NOW}) \
           AND NOT EXISTS (SELECT 1 FROM server_instances WHERE id = $2 AND draining) \
         RETURNING s.owner_epoch, p.previous"
    );
    let taken: Option<EpochRow> = diesel::sql_query(sql)
        .bind::<Text, _>(session_id)
        .bind::<Text, _>(instance_id)
        .bind::<Double, _>(ttl_secs)
        .get_result(pg)
        .optional()?;
    if let Some(row) = taken {
        return Ok(Taken::Held {
            taken_over: row.previous.as_deref() != Some(instance_id),
            lease: Lease {
                session_id: session_id.to_owned(),
                instance_id: instance_id.to_owned(),
                epoch: row.owner_epoch,
            },
        });
    }
    if is_draining(pg, instance_id)? {
        return Ok(Taken::Draining);
    }
    Ok(Taken::Elsewhere)
}

fn is_draining(pg: &mut diesel::PgConnection, instance_id: &str) -> DbResult<bool> {
    let row: Option<IdRow> =
        diesel::sql_query("SELECT id FROM server_instances WHERE id = $1 AND draining")
            .bind::<Text, _>(instance_id)
            .get_result(pg)
            .optional()?;
    Ok(row.is_some())
}

/// The live holder of the lease of the tenant's session `name` when it is
/// another instance than `me`: `Some(its advertise_url)`; `None` when the
/// session is free, mine, or not there.
pub fn owner_of_named(
    conn: &mut DbConnection,
    tenant_id: &str,
    name: &str,
    me: &str,
) -> DbResult<Option<Option<String>>> {
    let DbConnection::Postgres(pg) = conn else {
        return Ok(None);
    };
    let sql = format!(
        "SELECT i.advertise_url FROM sessions s \
           LEFT JOIN server_instances i ON i.id = s.owner_instance \
         WHERE s.tenant_id = $1 AND s.name = $2 \
           AND s.owner_instance IS NOT NULL AND s.owner_instance <> $3 \
           AND s.lease_until >= {DB_NOW}"
    );
    let row: Option<OwnerRow> = diesel::sql_query(sql)
        .bind::<Text, _>(tenant_id)
        .bind::<Text, _>(name)
        .bind::<Text, _>(me)
        .get_result(pg)
        .optional()?;
    Ok(row.map(|r| r.advertise_url))
}

/// Renews, in one statement, the leases `instance` still holds among
/// `session_ids`; the ids it still holds. A lease that ran out and was
/// taken by another instance is not among them.
pub fn renew(
    conn: &mut DbConnection,
    instance_id: &str,
    session_ids: &[String],
    ttl_secs: f64,
) -> DbResult<Vec<String>> {
    let DbConnection::Postgres(pg) = conn else {
        return Ok(session_ids.to_vec());
    };
    if session_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "UPDATE sessions SET lease_until = {DB_NOW} + make_interval(secs => $3) \
         WHERE owner_instance = $1 AND id = ANY($2) RETURNING id"
    );
    let rows: Vec<IdRow> = diesel::sql_query(sql)
        .bind::<Text, _>(instance_id)
        .bind::<Array<Text>, _>(session_ids)
        .bind::<Double, _>(ttl_secs)
        .load(pg)?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Gives a session's lease back (its actor stopped), so the next request on
/// any node takes it at once.
pub fn release(conn: &mut DbConnection, session_id: &str, instance_id: &str) -> DbResult<()> {
    let DbConnection::Postgres(pg) = conn else {
        return Ok(());
    };
    diesel::sql_query(
        "UPDATE sessions SET owner_instance = NULL, lease_until = NULL \
         WHERE id = $1 AND owner_instance = $2",
    )
    .bind::<Text, _>(session_id)
    .bind::<Text, _>(instance_id)
    .execute(pg)?;
    Ok(())
}

/// Gives back every lease `instance` holds (it is draining or stopping);
/// how many.
pub fn release_all(conn: &mut DbConnection, instance_id: &str) -> DbResult<usize> {
    let DbConnection::Postgres(pg) = conn else {
        return Ok(0);
    };
    Ok(diesel::sql_query(
        "UPDATE sessions SET owner_instance = NULL, lease_until = NULL \
         WHERE owner_instance = $1",
    )
    .bind::<Text, _>(instance_id)
    .execute(pg)?)
}

/// Checks, inside the caller's transaction, that `lease` is still held, and
/// locks the session's row until the transaction ends: a node taking the
/// lease over waits for this write, then finds the epoch moved on. `Err`
/// (`DbError::LeaseLost`) when another instance holds the session now.
pub fn hold(conn: &mut DbConnection, lease: &Lease) -> DbResult<()> {
    let DbConnection::Postgres(pg) = conn else {
        return Ok(());
    };
    let n = diesel::sql_query(
        "UPDATE sessions SET owner_epoch = owner_epoch \
         WHERE id = $1 AND owner_instance = $2 AND owner_epoch = $3",
    )
    .bind::<Text, _>(&lease.session_id)
    .bind::<Text, _>(&lease.instance_id)
    .bind::<BigInt, _>(lease.epoch)
    .execute(pg)?;
    if n == 1 {
        Ok(())
    } else {
        Err(crate::db::DbError::LeaseLost(lease.session_id.clone()))
    }
}

/// Sessions with unfinished jobs (queued or running) that no live lease
/// covers: their node died, or stopped before it ran them.
pub fn orphaned_job_sessions(conn: &mut DbConnection, limit: i64) -> DbResult<Vec<String>> {
    let DbConnection::Postgres(pg) = conn else {
        return Ok(Vec::new());
    };
    let sql = format!(
        "SELECT DISTINCT s.id FROM jobs j JOIN sessions s ON s.id = j.session_id \
         WHERE j.status IN ('queued', 'running') \
           AND (s.owner_instance IS NULL OR s.lease_until < {DB_NOW}) \
         LIMIT $1"
    );
    let rows: Vec<IdRow> = diesel::sql_query(sql).bind::<BigInt, _>(limit).load(pg)?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// The tenant's sessions whose live lease another instance than `me` holds
/// and whose last turn has not ended on their stream: running there.
pub fn running_elsewhere(
    conn: &mut DbConnection,
    tenant_id: &str,
    me: &str,
) -> DbResult<Vec<String>> {
    let DbConnection::Postgres(pg) = conn else {
        return Ok(Vec::new());
    };
    let sql = format!(
        "SELECT s.id FROM sessions s \
         WHERE s.tenant_id = $1 AND s.owner_instance IS NOT NULL AND s.owner_instance <> $2 \
           AND s.lease_until >= {DB_NOW} \
           AND (SELECT max(seq) FROM events WHERE session_id = s.id AND kind = 'turn_started') > \
               COALESCE((SELECT max(seq) FROM events WHERE session_id = s.id \
                         AND kind IN ('done', 'error', 'turn_interrupted')), 0)"
    );
    let rows: Vec<IdRow> = diesel::sql_query(sql)
        .bind::<Text, _>(tenant_id)
        .bind::<Text, _>(me)
        .load(pg)?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}
