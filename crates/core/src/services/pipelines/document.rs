//! A pipeline as clients and webhook receivers see it: the graph, each
//! step's state and jobs, cost, and the event its end sends.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{json, Value};

use super::StepPlan;
use crate::db::models::job::Job;
use crate::db::models::pipeline::{Pipeline, PipelineStep};
use crate::domain::money::micros_to_usd;
use crate::domain::pipeline::LAUNCHING;
use crate::domain::timestamp;

/// Jobs of pipelines by id, with their session's name.
pub type JobsById = HashMap<String, (Job, String)>;

/// A pipeline: its status and every step.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PipelineData {
    pub id: String,
    pub name: Option<String>,
    /// `running`, then `done` (every step done), `failed` (a step failed
    /// or was stopped) or `cancelled`.
    pub status: String,
    pub webhook_url: Option<String>,
    /// What its jobs cost so far, summed.
    pub cost: f64,
    pub cost_micros: i64,
    pub created_at: String,
    pub completed_at: Option<String>,
    pub steps: Vec<StepData>,
}

/// A step: what it asks, its state, and its jobs.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StepData {
    pub id: String,
    /// `waiting`, `running`, then `done`, `failed`, `stopped` (a step it
    /// depends on failed or was stopped) or `cancelled`.
    pub state: String,
    /// Why it failed, was stopped or cancelled.
    pub reason: Option<String>,
    pub depends_on: Vec<String>,
    /// `stop` or `continue`: whether its dependents run when it fails.
    pub on_failure: String,
    pub for_each: Option<String>,
    /// Its message as given (with its templates).
    pub message: String,
    /// Its jobs ids, in item order (several for a fan-out).
    pub job_ids: Vec<String>,
    pub jobs: Vec<StepJob>,
    pub cost: f64,
    pub cost_micros: i64,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
}

/// One job of a step.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StepJob {
    /// Its item's index (0 for a step without `for_each`).
    pub index: usize,
    /// The job's id; none when it could not be queued (`error` says why).
    pub id: Option<String>,
    pub session: String,
    /// The job's status (`queued`, `running`, `done`, …), or `failed`.
    pub status: String,
    /// The answer text, once done.
    pub result: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub structured_output: Option<Value>,
    pub error: Option<String>,
    pub cost_micros: i64,
}

/// The document of `pipeline` from its step rows and their jobs.
pub fn build(pipeline: &Pipeline, steps: &[PipelineStep], jobs: &JobsById) -> PipelineData {
    let plans: Vec<StepPlan> = serde_json::from_str(&pipeline.definition).unwrap_or_default();
    let steps: Vec<StepData> = steps
        .iter()
        .map(|row| {
            let plan = plans.iter().find(|p| p.id == row.step_id);
            let step_jobs: Vec<StepJob> = row
                .units()
                .into_iter()
                .map(|unit| step_job(unit, jobs))
                .collect();
            let cost_micros = step_jobs.iter().map(|j| j.cost_micros).sum();
            StepData {
                id: row.step_id.clone(),
                // Launching is this server's business; to a client the
                // step has started.
                state: match row.state.as_str() {
                    LAUNCHING => crate::domain::pipeline::RUNNING.to_owned(),
                    other => other.to_owned(),
                },
                reason: row.reason.clone(),
                depends_on: plan.map(|p| p.depends_on.clone()).unwrap_or_default(),
                on_failure: plan
                    .map(|p| p.on_failure.as_str())
                    .unwrap_or("stop")
                    .to_owned(),
                for_each: plan.and_then(|p| p.for_each.clone()),
                message: plan.map(|p| p.message.clone()).unwrap_or_default(),
                job_ids: step_jobs.iter().filter_map(|j| j.id.clone()).collect(),
                jobs: step_jobs,
                cost: micros_to_usd(cost_micros),
                cost_micros,
                started_at: row.started_at.as_ref().map(timestamp),
                completed_at: row.completed_at.as_ref().map(timestamp),
            }
        })
        .collect();
    let cost_micros = steps.iter().map(|s| s.cost_micros).sum();
    PipelineData {
        id: pipeline.id.clone(),
        name: pipeline.name.clone(),
        status: pipeline.status.clone(),
        webhook_url: pipeline.webhook_url.clone(),
        cost: micros_to_usd(cost_micros),
        cost_micros,
        created_at: timestamp(&pipeline.created_at),
        completed_at: pipeline.completed_at.as_ref().map(timestamp),
        steps,
    }
}

fn step_job(unit: crate::db::models::pipeline::Unit, jobs: &JobsById) -> StepJob {
    let job = unit.job_id.as_ref().and_then(|id| jobs.get(id));
    let answer: Option<Value> = job
        .and_then(|(j, _)| j.result.as_deref())
        .and_then(|r| serde_json::from_str(r).ok());
    StepJob {
        index: unit.index,
        id: unit.job_id.clone(),
        session: unit.session,
        status: match (job, &unit.error) {
            (Some((j, _)), _) => j.status.clone(),
            (None, Some(_)) => crate::domain::job::FAILED.to_owned(),
            (None, None) => crate::domain::job::QUEUED.to_owned(),
        },
        result: answer
            .as_ref()
            .and_then(|a| a["content"].as_str().map(str::to_owned)),
        structured_output: answer
            .as_ref()
            .map(|a| a["structured_output"].clone())
            .filter(|v| !v.is_null()),
        error: unit
            .error
            .clone()
            .or_else(|| job.and_then(|(j, _)| j.error.clone())),
        cost_micros: job.map(|(j, _)| j.cost_micros).unwrap_or(0),
    }
}

/// The webhook body of a pipeline that ended, typed like a job's
/// (`event: pipeline.completed`, `type: pipeline.<status>`).
pub fn completion_event(data: &PipelineData) -> (String, Value) {
    let event_type = format!("pipeline.{}", data.status);
    let body = json!({
        "event": "pipeline.completed",
        "type": event_type,
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "pipeline": data,
    });
    (event_type, body)
}
