//! Pipelines: a graph of jobs a tenant hands over at once. Here they are
//! checked (before anything runs), stored, read, listed and cancelled; the
//! engine (`engine.rs`) starts each step's jobs when the steps it depends
//! on end, and sends the pipeline's webhook at its end.

pub mod document;
pub mod engine;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::launch::{JobPlan, NewSessionPlan};
use super::{Requester, Services};
use crate::db::models::pipeline::{self, Pipeline, PipelineStep};
use crate::db::models::{job, TenantId};
use crate::domain::pipeline::{self as graph, StepShape, WAITING};
use crate::domain::session::{Effort, OutputFormat, PermissionMode};
use crate::error::ServiceError;
use crate::security::auth::Caller;
use document::{JobsById, PipelineData};

/// A pipeline as a client asks for it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPipeline {
    /// A label for people (at most 200 characters).
    #[serde(default)]
    #[schema(max_length = 200)]
    pub name: Option<String>,
    /// The steps, each starting when those it depends on ended (at most
    /// `PIPELINE_MAX_STEPS`).
    #[schema(min_items = 1)]
    pub steps: Vec<StepPlan>,
    /// Receives the signed `pipeline.completed` event (typed
    /// `pipeline.<status>`) with every step's outcome when it ends.
    #[serde(default)]
    #[schema(max_length = 2048)]
    pub webhook_url: Option<String>,
}

/// Whether the steps depending on a failed step run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// They are stopped, with the reason.
    #[default]
    Stop,
    /// They run, and see the failure in their templates.
    Continue,
}

impl OnFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Stop => "stop",
            OnFailure::Continue => "continue",
        }
    }
}

/// One step: a job (or one per item of `for_each`) and what it waits for.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepPlan {
    /// What other steps and templates call it (1-40 of A-Z a-z 0-9 _ -).
    #[schema(pattern = "^[A-Za-z0-9_-]{1,40}$")]
    pub id: String,
    /// An existing session of the tenant to run in. Exactly one of
    /// `session` and `new_session`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// A session made for the step (one per item with `for_each`), from a
    /// template or a repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_session: Option<NewSessionPlan>,
    /// The prompt; may use `{{steps.<id>.result}}`,
    /// `{{steps.<id>.structured[.path]}}` of the steps it depends on, and
    /// `{{item[.path]}}` with `for_each`.
    pub message: String,
    #[serde(default)]
    pub depends_on: Vec<String>,
    #[serde(default)]
    pub on_failure: OnFailure,
    /// `{{steps.<id>.structured[.path]}}` naming an array: one job per item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<Effort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_mode: Option<PermissionMode>,
    /// Structured output, for `{{steps.<id>.structured}}` and `for_each`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_format: Option<OutputFormat>,
}

impl StepPlan {
    /// The job this step queues (its message rendered elsewhere).
    pub fn job(&self) -> JobPlan {
        JobPlan {
            session: self.session.clone(),
            new_session: self.new_session.clone(),
            message: self.message.clone(),
            webhook_url: None,
            model: self.model.clone(),
            system: self.system.clone(),
            effort: self.effort,
            permission_mode: self.permission_mode,
            output_format: self.output_format.clone(),
        }
    }
}

/// Everything that can be wrong with a pipeline before it runs, each a 422
/// naming the step and the problem.
fn check(services: &Services, body: &NewPipeline) -> Result<(), ServiceError> {
    let limits = &services.settings.jobs.pipelines;
    if body.steps.is_empty() || body.steps.len() > limits.max_steps {
        return Err(ServiceError::Validation(format!(
            "a pipeline has 1 to {} steps (PIPELINE_MAX_STEPS); this one has {}",
            limits.max_steps,
            body.steps.len()
        )));
    }
    if body.name.as_ref().is_some_and(|n| n.chars().count() > 200) {
        return Err(ServiceError::Validation(
            "name is longer than 200 characters".into(),
        ));
    }
    let shapes: Vec<StepShape<'_>> = body
        .steps
        .iter()
        .map(|s| StepShape {
            id: &s.id,
            depends_on: &s.depends_on,
            message: &s.message,
            for_each: s.for_each.as_deref(),
            structured: s.output_format.is_some(),
        })
        .collect();
    graph::check(&shapes).map_err(ServiceError::Validation)?;
    for (i, step) in body.steps.iter().enumerate() {
        let field = format!("steps[{i}] ({})", step.id);
        step.job().check(&field)?;
        if step.for_each.is_some() && step.new_session.is_none() {
            return Err(ServiceError::Validation(format!(
                "{field} has for_each, so it needs new_session (each item runs in a session of its own)"
            )));
        }
        if step.message.len() > limits.max_message_bytes {
            return Err(ServiceError::PayloadTooLarge(format!(
                "{field}.message is {} bytes, more than PIPELINE_MAX_MESSAGE_KB allows ({})",
                step.message.len(),
                limits.max_message_bytes
            )));
        }
    }
    Ok(())
}

/// Checks and stores a pipeline; its first steps start within a poll of
/// the engine. Audited as `pipeline.create`.
pub async fn create(
    services: &Services,
    who: &Requester,
    body: NewPipeline,
) -> Result<PipelineData, ServiceError> {
    check(services, &body)?;
    if let Some(url) = &body.webhook_url {
        crate::webhooks::ssrf::check(url, &services.settings.webhooks.allowed_hosts)
            .await
            .map_err(|e| ServiceError::Validation(format!("webhook_url: {e}")))?;
    }
    let row = Pipeline {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: who.tenant().0.clone(),
        name: body.name.clone(),
        status: graph::RUNNING.into(),
        definition: serde_json::to_string(&body.steps).map_err(ServiceError::internal)?,
        webhook_url: body.webhook_url.clone(),
        key_id: who.key_id.clone(),
        key_label: who.key_label.clone(),
        role: who.role.clone(),
        cancel_requested: false,
        created_at: crate::db::now(),
        completed_at: None,
    };
    let steps: Vec<PipelineStep> = body
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| PipelineStep {
            pipeline_id: row.id.clone(),
            step_id: s.id.clone(),
            position: i64::try_from(i).unwrap_or(i64::MAX),
            state: WAITING.into(),
            reason: None,
            units: "[]".into(),
            planned: None,
            claimed_by: None,
            claimed_at: None,
            started_at: None,
            completed_at: None,
        })
        .collect();
    let limit = services.settings.jobs.pipelines.max_running_per_tenant;
    let (insert, insert_steps, tenant) = (row.clone(), steps.clone(), who.tenant().clone());
    let stored = crate::db::run(&services.pool, move |c| {
        pipeline::insert_under_limit(c, &tenant, &insert, &insert_steps, limit)
    })
    .await?;
    if !stored {
        return Err(ServiceError::RateLimited(format!(
            "this tenant already has {limit} pipelines running (PIPELINE_MAX_RUNNING_PER_TENANT); \
             wait for one to end or cancel one"
        )));
    }
    crate::metrics::pipeline_started();
    super::audit::record(services, who, "pipeline.create", &row.id).await;
    Ok(document::build(&row, &steps, &HashMap::new()))
}

/// The caller's pipeline `id` with its steps and their jobs.
pub async fn get(
    services: &Services,
    who: &Requester,
    id: &str,
) -> Result<PipelineData, ServiceError> {
    let (tenant, id_owned) = (who.tenant().clone(), id.to_owned());
    let found = crate::db::run(&services.pool, move |c| {
        pipeline::find(c, &tenant, &id_owned)
    })
    .await?
    .ok_or_else(|| ServiceError::NotFound(format!("no pipeline {id:?}")))?;
    let mut documents = documents(services, vec![found]).await?;
    documents
        .pop()
        .ok_or_else(|| ServiceError::internal("a pipeline without its document"))
}

/// A page of the caller's pipelines, newest first, and their total.
pub async fn list(
    services: &Services,
    who: &Requester,
    offset: i64,
    limit: i64,
) -> Result<(Vec<PipelineData>, i64), ServiceError> {
    let tenant = who.tenant().clone();
    let (rows, total) = crate::db::run(&services.pool, move |c| {
        pipeline::list(c, &tenant, offset, limit)
    })
    .await?;
    Ok((documents(services, rows).await?, total))
}

/// Documents of `rows`, with their steps and jobs read in two queries.
async fn documents(
    services: &Services,
    rows: Vec<Pipeline>,
) -> Result<Vec<PipelineData>, ServiceError> {
    let (rows, steps, jobs) = crate::db::run(&services.pool, move |c| {
        let ids: Vec<&str> = rows.iter().map(|p| p.id.as_str()).collect();
        let steps = pipeline::steps(c, &ids)?;
        let jobs = jobs_of(c, &steps)?;
        Ok((rows, steps, jobs))
    })
    .await?;
    Ok(rows
        .iter()
        .map(|p| {
            let mine: Vec<PipelineStep> = steps
                .iter()
                .filter(|s| s.pipeline_id == p.id)
                .cloned()
                .collect();
            document::build(p, &mine, &jobs)
        })
        .collect())
}

/// The jobs the units of `steps` queued.
fn jobs_of(
    conn: &mut crate::db::DbConnection,
    steps: &[PipelineStep],
) -> crate::db::DbResult<JobsById> {
    let ids: Vec<String> = steps
        .iter()
        .flat_map(|s| s.units())
        .filter_map(|u| u.job_id)
        .collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    Ok(job::with_session_names(conn, &refs)?
        .into_iter()
        .map(|(j, name)| (j.id.clone(), (j, name)))
        .collect())
}

/// Cancels what has not finished: waiting steps never start, queued and
/// running jobs are cancelled (as `POST …/jobs/{id}/cancel` does). A
/// pipeline that already ended is a 409. Audited as `pipeline.cancel`.
pub async fn cancel(
    services: &Services,
    who: &Requester,
    id: &str,
) -> Result<PipelineData, ServiceError> {
    let before = get(services, who, id).await?;
    let (tenant, id_owned) = (who.tenant().clone(), id.to_owned());
    let requested = crate::db::run(&services.pool, move |c| {
        pipeline::request_cancel(c, &tenant, &id_owned)
    })
    .await?;
    if !requested {
        return Err(ServiceError::Conflict(format!(
            "the pipeline already ended: {}",
            before.status
        )));
    }
    super::audit::record(services, who, "pipeline.cancel", id).await;
    let unfinished = before
        .steps
        .iter()
        .flat_map(|s| &s.jobs)
        .filter(|j| !crate::domain::job::is_final(&j.status))
        .filter_map(|j| j.id.clone().map(|id| (j.session.clone(), id)));
    let cancels = unfinished.map(|(session, job_id)| async move {
        // A job that ended meanwhile is a 409 here: nothing to do.
        let _ = super::jobs::cancel(services, who, &session, &job_id).await;
    });
    futures_util::future::join_all(cancels).await;
    // Settle now, so the answer shows the pipeline cancelled.
    engine::advance_one(services, id).await?;
    engine::advance_one(services, id).await?;
    get(services, who, id).await
}

/// The caller a pipeline's jobs run as: the key that made it.
pub(crate) fn caller(pipeline: &Pipeline) -> Caller {
    Caller {
        tenant: TenantId(pipeline.tenant_id.clone()),
        key_id: pipeline.key_id.clone(),
        key_label: pipeline.key_label.clone(),
        role: pipeline.role.clone(),
        person: None,
    }
}
