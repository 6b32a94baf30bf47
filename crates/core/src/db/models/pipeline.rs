//! Pipeline rows and their steps. Every move of a step is a conditional
//! update from the state it is expected in, so when several nodes run the
//! engine on one database only one of them launches or finishes a step.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::TenantId;
use crate::db::schema::{pipeline_steps, pipelines, server_instances};
use crate::db::{DbConnection, DbResult};
use crate::domain::pipeline::{CANCELLED, LAUNCHING, RUNNING, WAITING};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = pipelines)]
pub struct Pipeline {
    pub id: String,
    pub tenant_id: String,
    pub name: Option<String>,
    /// `running`, then `done`, `failed` or `cancelled`.
    pub status: String,
    /// The steps as the client sent them (JSON).
    pub definition: String,
    pub webhook_url: Option<String>,
    pub key_id: String,
    pub key_label: String,
    pub role: String,
    pub cancel_requested: bool,
    pub created_at: NaiveDateTime,
    pub completed_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = pipeline_steps)]
pub struct PipelineStep {
    pub pipeline_id: String,
    pub step_id: String,
    pub position: i64,
    pub state: String,
    pub reason: Option<String>,
    /// JSON of `Vec<Unit>`.
    pub units: String,
    pub planned: Option<i64>,
    pub claimed_by: Option<String>,
    pub claimed_at: Option<NaiveDateTime>,
    pub started_at: Option<NaiveDateTime>,
    pub completed_at: Option<NaiveDateTime>,
}

/// One job of a step (several for a fan-out): where it runs, its job once
/// queued, or why it could not be queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    pub index: usize,
    pub session: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PipelineStep {
    pub fn units(&self) -> Vec<Unit> {
        serde_json::from_str(&self.units).unwrap_or_default()
    }
}

/// Stores a pipeline with its steps (all `waiting`) in one transaction,
/// unless its tenant has `limit` running already (`false`).
pub fn insert_under_limit(
    conn: &mut DbConnection,
    tenant: &TenantId,
    pipeline: &Pipeline,
    steps: &[PipelineStep],
    limit: i64,
) -> DbResult<bool> {
    crate::db::write_transaction(conn, |conn| {
        if count_running(conn, tenant)? >= limit {
            return Ok(false);
        }
        diesel::insert_into(pipelines::table)
            .values(pipeline)
            .execute(conn)?;
        for step in steps {
            diesel::insert_into(pipeline_steps::table)
                .values(step)
                .execute(conn)?;
        }
        Ok(true)
    })
}

/// The tenant's pipelines that have not ended.
pub fn count_running(conn: &mut DbConnection, tenant: &TenantId) -> DbResult<i64> {
    Ok(pipelines::table
        .filter(pipelines::tenant_id.eq(tenant.as_str()))
        .filter(pipelines::status.eq(RUNNING))
        .count()
        .get_result(conn)?)
}

pub fn find(conn: &mut DbConnection, tenant: &TenantId, id: &str) -> DbResult<Option<Pipeline>> {
    Ok(pipelines::table
        .find(id)
        .filter(pipelines::tenant_id.eq(tenant.as_str()))
        .select(Pipeline::as_select())
        .first(conn)
        .optional()?)
}

pub fn find_by_id(conn: &mut DbConnection, id: &str) -> DbResult<Option<Pipeline>> {
    Ok(pipelines::table
        .find(id)
        .select(Pipeline::as_select())
        .first(conn)
        .optional()?)
}

/// One page of the tenant's pipelines, newest first, and the total.
pub fn list(
    conn: &mut DbConnection,
    tenant: &TenantId,
    offset: i64,
    limit: i64,
) -> DbResult<(Vec<Pipeline>, i64)> {
    let scope = pipelines::table.filter(pipelines::tenant_id.eq(tenant.as_str()));
    let total = scope.count().get_result(conn)?;
    let rows = scope
        .order((pipelines::created_at.desc(), pipelines::id.desc()))
        .offset(offset)
        .limit(limit)
        .select(Pipeline::as_select())
        .load(conn)?;
    Ok((rows, total))
}

/// Every tenant's pipelines that have not ended, oldest first (the engine).
pub fn running(conn: &mut DbConnection) -> DbResult<Vec<Pipeline>> {
    Ok(pipelines::table
        .filter(pipelines::status.eq(RUNNING))
        .order((pipelines::created_at.asc(), pipelines::id.asc()))
        .select(Pipeline::as_select())
        .load(conn)?)
}

/// The steps of the pipelines `ids`, in their pipeline's order.
pub fn steps(conn: &mut DbConnection, ids: &[&str]) -> DbResult<Vec<PipelineStep>> {
    Ok(pipeline_steps::table
        .filter(pipeline_steps::pipeline_id.eq_any(ids))
        .order((
            pipeline_steps::pipeline_id.asc(),
            pipeline_steps::position.asc(),
        ))
        .select(PipelineStep::as_select())
        .load(conn)?)
}

fn step(
    pipeline_id: &str,
    step_id: &str,
) -> diesel::dsl::Filter<
    diesel::dsl::Filter<
        pipeline_steps::table,
        diesel::dsl::Eq<pipeline_steps::pipeline_id, String>,
    >,
    diesel::dsl::Eq<pipeline_steps::step_id, String>,
> {
    pipeline_steps::table
        .filter(pipeline_steps::pipeline_id.eq(pipeline_id.to_owned()))
        .filter(pipeline_steps::step_id.eq(step_id.to_owned()))
}

/// `waiting → launching` for `instance`; `false` when another node (or an
/// earlier tick) took it first. This is what makes a launch happen once.
pub fn claim(
    conn: &mut DbConnection,
    pipeline_id: &str,
    step_id: &str,
    instance: &str,
) -> DbResult<bool> {
    let now = crate::db::now();
    let n = diesel::update(step(pipeline_id, step_id).filter(pipeline_steps::state.eq(WAITING)))
        .set((
            pipeline_steps::state.eq(LAUNCHING),
            pipeline_steps::claimed_by.eq(instance),
            pipeline_steps::claimed_at.eq(now),
            pipeline_steps::started_at.eq(now),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// Takes over a step left `launching` by `dead` (an instance that is no
/// more); `false` when another node took it first.
pub fn reclaim(
    conn: &mut DbConnection,
    pipeline_id: &str,
    step_id: &str,
    dead: &str,
    instance: &str,
) -> DbResult<bool> {
    let n = diesel::update(
        step(pipeline_id, step_id)
            .filter(pipeline_steps::state.eq(LAUNCHING))
            .filter(pipeline_steps::claimed_by.eq(dead)),
    )
    .set(pipeline_steps::claimed_by.eq(instance))
    .execute(conn)?;
    Ok(n == 1)
}

/// Ids of the instances still registered (alive, or not yet released).
pub fn live_instances(conn: &mut DbConnection) -> DbResult<Vec<String>> {
    Ok(server_instances::table
        .select(server_instances::id)
        .load(conn)?)
}

/// Records the units of a step `instance` is launching (after each one,
/// so a restart knows which were queued).
pub fn set_units(
    conn: &mut DbConnection,
    pipeline_id: &str,
    step_id: &str,
    instance: &str,
    units: &[Unit],
    planned: i64,
) -> DbResult<bool> {
    let units = serde_json::to_string(units).map_err(|e| {
        crate::db::DbError::Query(diesel::result::Error::SerializationError(Box::new(e)))
    })?;
    let n = diesel::update(
        step(pipeline_id, step_id)
            .filter(pipeline_steps::state.eq(LAUNCHING))
            .filter(pipeline_steps::claimed_by.eq(instance)),
    )
    .set((
        pipeline_steps::units.eq(units),
        pipeline_steps::planned.eq(planned),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Moves a step from one of `from` to `to` (with why, for an end); `false`
/// when it was no longer in one of them.
pub fn move_step(
    conn: &mut DbConnection,
    pipeline_id: &str,
    step_id: &str,
    from: &[&str],
    to: &str,
    reason: Option<&str>,
) -> DbResult<bool> {
    let ended = crate::domain::pipeline::step_is_final(to).then(crate::db::now);
    let n = diesel::update(step(pipeline_id, step_id).filter(pipeline_steps::state.eq_any(from)))
        .set((
            pipeline_steps::state.eq(to),
            pipeline_steps::reason.eq(reason),
            pipeline_steps::completed_at.eq(ended),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// Asks a running pipeline to stop; its waiting steps never start.
/// `false` when it had already ended.
pub fn request_cancel(conn: &mut DbConnection, tenant: &TenantId, id: &str) -> DbResult<bool> {
    crate::db::write_transaction(conn, |conn| {
        let n = diesel::update(
            pipelines::table
                .find(id)
                .filter(pipelines::tenant_id.eq(tenant.as_str()))
                .filter(pipelines::status.eq(RUNNING)),
        )
        .set(pipelines::cancel_requested.eq(true))
        .execute(conn)?;
        if n == 0 {
            return Ok(false);
        }
        diesel::update(
            pipeline_steps::table
                .filter(pipeline_steps::pipeline_id.eq(id))
                .filter(pipeline_steps::state.eq(WAITING)),
        )
        .set((
            pipeline_steps::state.eq(CANCELLED),
            pipeline_steps::reason.eq("the pipeline was cancelled before this step started"),
            pipeline_steps::completed_at.eq(crate::db::now()),
        ))
        .execute(conn)?;
        Ok(true)
    })
}

/// Ends a running pipeline with `status` and, when it has a webhook URL,
/// queues `event` (type, body) in the same transaction. `None` when
/// another node ended it first.
pub fn finish(
    conn: &mut DbConnection,
    id: &str,
    status: &str,
    event: (&str, &str),
) -> DbResult<Option<Pipeline>> {
    crate::db::write_transaction(conn, |conn| {
        let n = diesel::update(
            pipelines::table
                .find(id)
                .filter(pipelines::status.eq(RUNNING)),
        )
        .set((
            pipelines::status.eq(status),
            pipelines::completed_at.eq(crate::db::now()),
        ))
        .execute(conn)?;
        if n == 0 {
            return Ok(None);
        }
        let Some(ended) = find_by_id(conn, id)? else {
            return Ok(None);
        };
        if let Some(url) = &ended.webhook_url {
            let (event_type, body) = event;
            super::webhook::enqueue(conn, &ended.tenant_id, &ended.id, url, event_type, body)?;
        }
        Ok(Some(ended))
    })
}
