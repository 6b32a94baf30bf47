//! The pipeline engine. On every node, every `PIPELINE_POLL_INTERVAL_MS`,
//! it reads the running pipelines and moves each on: a running step whose
//! jobs all ended ends; a waiting step whose dependencies ended is stopped
//! (a dependency failed) or claimed and launched; a pipeline whose steps all
//! ended ends and queues its webhook. All it knows is in the database, so a
//! restart carries on where the last run was; each move is a conditional
//! update, so with several nodes only one launches a step.
//!
//! A step cut short while launching (the server died between queuing its
//! jobs and recording them) is taken over once its node is gone: each of
//! its units first looks for the job the dead launch queued (same session,
//! same message, queued since the claim) and adopts it, so no job is queued
//! twice.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::document::{self, JobsById};
use super::{OnFailure, StepPlan};
use crate::db::models::job;
use crate::db::models::pipeline::{self, Pipeline, PipelineStep, Unit};
use crate::domain::job as job_status;
use crate::domain::pipeline::{
    self as graph, Outputs, StepOutput, Template, UnitOutput, CANCELLED, DONE, FAILED, LAUNCHING,
    RUNNING, STOPPED, WAITING,
};
use crate::error::ServiceError;
use crate::services::launch;
use crate::services::{Requester, Services};

/// Jobs whose cancel was asked for and has not come back yet.
type Cancelling = Arc<Mutex<HashSet<String>>>;

/// Starts the engine's loop on the current actix system.
pub fn spawn(services: Services) {
    let every = services.settings.jobs.pipelines.poll_interval;
    actix::spawn(async move {
        let cancelling = Cancelling::default();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = run_once(&services, &cancelling).await {
                tracing::warn!(error = %e, "cannot move pipelines on");
            }
        }
    });
}

/// What one pass knows: the steps of the pipelines it moves on, their
/// jobs, and the instances alive.
struct Snapshot {
    steps: Vec<PipelineStep>,
    jobs: JobsById,
    live: HashSet<String>,
}

async fn load(
    services: &Services,
    pipelines: Vec<Pipeline>,
) -> Result<(Vec<Pipeline>, Snapshot), ServiceError> {
    Ok(crate::db::run(&services.pool, move |c| {
        let ids: Vec<&str> = pipelines.iter().map(|p| p.id.as_str()).collect();
        let steps = pipeline::steps(c, &ids)?;
        let jobs = super::jobs_of(c, &steps)?;
        let live = pipeline::live_instances(c)?.into_iter().collect();
        Ok((pipelines, Snapshot { steps, jobs, live }))
    })
    .await?)
}

/// One pass over every running pipeline.
async fn run_once(services: &Services, cancelling: &Cancelling) -> Result<(), ServiceError> {
    let running = crate::db::run(&services.pool, pipeline::running).await?;
    if running.is_empty() {
        return Ok(());
    }
    let (running, snapshot) = load(services, running).await?;
    for p in &running {
        if let Err(e) = advance(services, p, &snapshot, cancelling, true).await {
            tracing::warn!(pipeline = %p.id, error = %e, "cannot move a pipeline on");
        }
    }
    Ok(())
}

/// Moves one pipeline on without launching anything (a cancel settling).
pub(super) async fn advance_one(services: &Services, id: &str) -> Result<(), ServiceError> {
    let id = id.to_owned();
    let Some(found) = crate::db::run(&services.pool, move |c| pipeline::find_by_id(c, &id)).await?
    else {
        return Ok(());
    };
    if found.status != RUNNING {
        return Ok(());
    }
    let (running, snapshot) = load(services, vec![found]).await?;
    for p in &running {
        advance(services, p, &snapshot, &Cancelling::default(), false).await?;
    }
    Ok(())
}

/// Whether a waiting step may start.
enum Readiness {
    Pending,
    Blocked(String),
    Ready,
}

fn readiness(
    plan: &StepPlan,
    plans: &[StepPlan],
    rows: &HashMap<&str, &PipelineStep>,
) -> Readiness {
    let mut pending = false;
    for dep in &plan.depends_on {
        let Some(row) = rows.get(dep.as_str()) else {
            return Readiness::Blocked(format!("step {dep:?} is missing"));
        };
        let continues = plans
            .iter()
            .find(|p| &p.id == dep)
            .is_some_and(|p| p.on_failure == OnFailure::Continue);
        let why = row
            .reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        match row.state.as_str() {
            DONE => {}
            FAILED if continues => {}
            FAILED => return Readiness::Blocked(format!("step {dep:?} failed{why}")),
            STOPPED => return Readiness::Blocked(format!("step {dep:?} was stopped{why}")),
            CANCELLED => return Readiness::Blocked(format!("step {dep:?} was cancelled")),
            _ => pending = true,
        }
    }
    if pending {
        Readiness::Pending
    } else {
        Readiness::Ready
    }
}

async fn advance(
    services: &Services,
    p: &Pipeline,
    snapshot: &Snapshot,
    cancelling: &Cancelling,
    may_launch: bool,
) -> Result<(), ServiceError> {
    let plans: Vec<StepPlan> =
        serde_json::from_str(&p.definition).map_err(ServiceError::internal)?;
    let steps: Vec<&PipelineStep> = snapshot
        .steps
        .iter()
        .filter(|s| s.pipeline_id == p.id)
        .collect();
    if steps.iter().all(|s| graph::step_is_final(&s.state)) {
        return finish(services, p, &steps, &snapshot.jobs).await;
    }
    let rows: HashMap<&str, &PipelineStep> =
        steps.iter().map(|s| (s.step_id.as_str(), *s)).collect();
    let who = launch::requester(super::caller(p), format!("pipeline-{}", p.id));
    let me = services.instance.id.as_str();
    for step in &steps {
        let Some(plan) = plans.iter().find(|s| s.id == step.step_id) else {
            continue;
        };
        match step.state.as_str() {
            RUNNING => settle(services, p, step, &snapshot.jobs, &who, cancelling).await?,
            LAUNCHING if may_launch => {
                // This loop is the only launcher of its node and runs one
                // pass at a time: a launch it claimed and did not finish,
                // like one of a node that is gone, was cut short.
                let claimer = step.claimed_by.as_deref().unwrap_or_default();
                if claimer != me && snapshot.live.contains(claimer) {
                    continue;
                }
                let (pid, sid, dead, mine) = (
                    p.id.clone(),
                    step.step_id.clone(),
                    claimer.to_owned(),
                    me.to_owned(),
                );
                let taken = crate::db::run(&services.pool, move |c| {
                    pipeline::reclaim(c, &pid, &sid, &dead, &mine)
                })
                .await?;
                if taken {
                    tracing::warn!(pipeline = %p.id, step = %step.step_id, "resuming a launch cut short");
                    launch_step(
                        services,
                        p,
                        &plans,
                        &steps,
                        step,
                        plan,
                        &snapshot.jobs,
                        &who,
                        true,
                    )
                    .await?;
                }
            }
            WAITING if p.cancel_requested => {
                move_step(
                    services,
                    p,
                    step,
                    &[WAITING],
                    CANCELLED,
                    Some("the pipeline was cancelled before this step started"),
                )
                .await?;
            }
            WAITING => match readiness(plan, &plans, &rows) {
                Readiness::Pending => {}
                Readiness::Blocked(why) => {
                    let reason = format!("not started: {why}");
                    move_step(services, p, step, &[WAITING], STOPPED, Some(&reason)).await?;
                }
                Readiness::Ready if may_launch => {
                    let (pid, sid, mine) = (p.id.clone(), step.step_id.clone(), me.to_owned());
                    let claimed = crate::db::run(&services.pool, move |c| {
                        pipeline::claim(c, &pid, &sid, &mine)
                    })
                    .await?;
                    if claimed {
                        // The claim's time, for adopting its jobs after a crash.
                        let mut claimed_step = (*step).clone();
                        claimed_step.claimed_at = Some(crate::db::now());
                        claimed_step.state = LAUNCHING.into();
                        launch_step(
                            services,
                            p,
                            &plans,
                            &steps,
                            &claimed_step,
                            plan,
                            &snapshot.jobs,
                            &who,
                            false,
                        )
                        .await?;
                    }
                }
                Readiness::Ready => {}
            },
            _ => {}
        }
    }
    Ok(())
}

async fn move_step(
    services: &Services,
    p: &Pipeline,
    step: &PipelineStep,
    from: &'static [&'static str],
    to: &'static str,
    reason: Option<&str>,
) -> Result<bool, ServiceError> {
    let (pid, sid, reason) = (
        p.id.clone(),
        step.step_id.clone(),
        reason.map(str::to_owned),
    );
    let moved = crate::db::run(&services.pool, move |c| {
        pipeline::move_step(c, &pid, &sid, from, to, reason.as_deref())
    })
    .await?;
    if moved {
        crate::metrics::pipeline_step_ended(to);
    }
    Ok(moved)
}

/// A running step whose jobs all ended ends too; while a cancelled
/// pipeline's jobs run, they are cancelled.
async fn settle(
    services: &Services,
    p: &Pipeline,
    step: &PipelineStep,
    jobs: &JobsById,
    who: &Requester,
    cancelling: &Cancelling,
) -> Result<(), ServiceError> {
    let units = step.units();
    let unfinished: Vec<(String, String)> = units
        .iter()
        .filter_map(|u| u.job_id.as_ref())
        .filter_map(|id| jobs.get(id))
        .filter(|(j, _)| !job_status::is_final(&j.status))
        .map(|(j, session)| (session.clone(), j.id.clone()))
        .collect();
    if !unfinished.is_empty() {
        if p.cancel_requested {
            for (session, id) in unfinished {
                cancel_in_background(services, who, session, id, cancelling);
            }
        }
        return Ok(());
    }
    let (state, reason) = outcome(&units, jobs, p.cancel_requested);
    move_step(services, p, step, &[RUNNING], state, reason.as_deref()).await?;
    Ok(())
}

fn cancel_in_background(
    services: &Services,
    who: &Requester,
    session: String,
    id: String,
    cancelling: &Cancelling,
) {
    let asked = cancelling
        .lock()
        .map(|mut set| set.insert(id.clone()))
        .unwrap_or(false);
    if !asked {
        return;
    }
    let (services, who, cancelling) = (services.clone(), who.clone(), cancelling.clone());
    actix::spawn(async move {
        if let Err(e) = crate::services::jobs::cancel(&services, &who, &session, &id).await {
            tracing::debug!(job = %id, error = %e, "a cancelled pipeline's job did not cancel");
        }
        if let Ok(mut set) = cancelling.lock() {
            set.remove(&id);
        }
    });
}

/// How a step whose jobs all ended turned out, and why when not `done`.
fn outcome(
    units: &[Unit],
    jobs: &JobsById,
    cancel_requested: bool,
) -> (&'static str, Option<String>) {
    let mut failures = Vec::new();
    let mut cancelled = false;
    for unit in units {
        let problem = match (&unit.job_id, &unit.error) {
            (_, Some(error)) => Some(format!("could not start: {error}")),
            (Some(id), None) => match jobs.get(id) {
                Some((j, _)) if j.status == job_status::DONE => None,
                Some((j, _)) => {
                    cancelled |= j.status == job_status::CANCELLED;
                    Some(match &j.error {
                        Some(error) => format!("job {id} {}: {error}", j.status),
                        None => format!("job {id} {}", j.status),
                    })
                }
                None => Some(format!("job {id} is gone")),
            },
            (None, None) => Some("never queued".to_owned()),
        };
        if let Some(problem) = problem {
            failures.push((unit.index, problem));
        }
    }
    if failures.is_empty() {
        return (DONE, None);
    }
    if cancelled && cancel_requested {
        return (CANCELLED, Some("the pipeline was cancelled".into()));
    }
    if units.len() == 1 {
        return (FAILED, failures.pop().map(|(_, p)| p));
    }
    let listed: Vec<String> = failures
        .iter()
        .map(|(i, problem)| format!("[{i}] {problem}"))
        .collect();
    (
        FAILED,
        Some(format!(
            "{} of {} jobs failed: {}",
            failures.len(),
            units.len(),
            listed.join("; ")
        )),
    )
}

/// What the ended steps gave, as templates read it.
fn outputs(plans: &[StepPlan], steps: &[&PipelineStep], jobs: &JobsById) -> Outputs {
    let mut outputs = Outputs::new();
    for row in steps {
        if row.state != DONE && row.state != FAILED {
            continue;
        }
        let fanned_out = plans
            .iter()
            .find(|p| p.id == row.step_id)
            .is_some_and(|p| p.for_each.is_some());
        let units: Vec<UnitOutput> = row
            .units()
            .iter()
            .map(
                |unit| match unit.job_id.as_ref().and_then(|id| jobs.get(id)) {
                    Some((j, _)) if j.status == job_status::DONE => {
                        let answer: Value = j
                            .result
                            .as_deref()
                            .and_then(|r| serde_json::from_str(r).ok())
                            .unwrap_or(Value::Null);
                        UnitOutput::Done {
                            text: answer["content"].as_str().unwrap_or_default().to_owned(),
                            structured: Some(answer["structured_output"].clone())
                                .filter(|v| !v.is_null()),
                        }
                    }
                    Some((j, _)) => UnitOutput::Failed {
                        error: j.error.clone().unwrap_or_else(|| j.status.clone()),
                    },
                    None => UnitOutput::Failed {
                        error: unit.error.clone().unwrap_or_else(|| "not started".into()),
                    },
                },
            )
            .collect();
        let output = if units.is_empty() && row.state == FAILED {
            // It failed before any job: its reason stands for its result.
            StepOutput {
                fanned_out: false,
                units: vec![UnitOutput::Failed {
                    error: row.reason.clone().unwrap_or_default(),
                }],
            }
        } else {
            StepOutput { fanned_out, units }
        };
        outputs.insert(row.step_id.clone(), output);
    }
    outputs
}

/// A new session of a pipeline's step: unique to the pipeline, the step
/// and the item, so a launch done again finds it.
fn session_name(p: &Pipeline, step: &str, index: usize) -> String {
    let tail = &p.id[p.id.len().saturating_sub(12)..];
    format!("pl-{tail}-{step}-{index}")
}

/// Renders a claimed step's messages and queues its jobs (one per item
/// with `for_each`), recording each; then the step is `running`.
#[expect(clippy::too_many_arguments, reason = "one pass's state, passed down")]
async fn launch_step(
    services: &Services,
    p: &Pipeline,
    plans: &[StepPlan],
    steps: &[&PipelineStep],
    step: &PipelineStep,
    plan: &StepPlan,
    jobs: &JobsById,
    who: &Requester,
    resuming: bool,
) -> Result<(), ServiceError> {
    let limits = &services.settings.jobs.pipelines;
    if p.cancel_requested {
        move_step(
            services,
            p,
            step,
            &[LAUNCHING],
            CANCELLED,
            Some("the pipeline was cancelled before this step started"),
        )
        .await?;
        return Ok(());
    }
    let outputs = outputs(plans, steps, jobs);
    let template = Template::parse(&plan.message).map_err(ServiceError::Validation)?;
    let items: Vec<Option<Value>> = match &plan.for_each {
        None => vec![None],
        Some(expression) => {
            let (source, path) =
                graph::parse_for_each(expression).map_err(ServiceError::Validation)?;
            match graph::for_each_value(&source, &path, &outputs) {
                Value::Array(items) if items.len() <= limits.max_fan_out => {
                    items.into_iter().map(Some).collect()
                }
                Value::Array(items) => {
                    let reason = format!(
                        "for_each {expression} has {} items, more than PIPELINE_MAX_FAN_OUT ({})",
                        items.len(),
                        limits.max_fan_out
                    );
                    move_step(services, p, step, &[LAUNCHING], FAILED, Some(&reason)).await?;
                    return Ok(());
                }
                other => {
                    let shown: String = other.to_string().chars().take(200).collect();
                    let reason = format!("for_each {expression} is not an array: {shown}");
                    move_step(services, p, step, &[LAUNCHING], FAILED, Some(&reason)).await?;
                    return Ok(());
                }
            }
        }
    };
    let messages: Vec<String> = items
        .iter()
        .map(|item| template.render(&outputs, item.as_ref()))
        .collect();
    if let Some((i, long)) = messages
        .iter()
        .enumerate()
        .find(|(_, m)| m.len() > limits.max_message_bytes)
    {
        let reason = format!(
            "the message of item {i} is {} bytes once rendered, more than PIPELINE_MAX_MESSAGE_KB allows ({})",
            long.len(),
            limits.max_message_bytes
        );
        move_step(services, p, step, &[LAUNCHING], FAILED, Some(&reason)).await?;
        return Ok(());
    }
    if messages.is_empty() {
        move_step(
            services,
            p,
            step,
            &[LAUNCHING],
            DONE,
            Some("for_each named no items"),
        )
        .await?;
        return Ok(());
    }
    let planned = i64::try_from(messages.len()).unwrap_or(i64::MAX);
    let since = step.claimed_at.unwrap_or(p.created_at);
    let mut units = step.units();
    for (index, message) in messages.into_iter().enumerate() {
        if units.iter().any(|u| u.index == index) {
            continue;
        }
        let session = match &plan.session {
            Some(name) => name.clone(),
            None => session_name(p, &step.step_id, index),
        };
        let unit = launch_unit(
            services, who, plan, message, session, index, since, resuming,
        )
        .await;
        units.push(unit);
        let (pid, sid, mine, recorded) = (
            p.id.clone(),
            step.step_id.clone(),
            services.instance.id.clone(),
            units.clone(),
        );
        let kept = crate::db::run(&services.pool, move |c| {
            pipeline::set_units(c, &pid, &sid, &mine, &recorded, planned)
        })
        .await?;
        if !kept {
            // Another node took the step over: it carries on from here.
            return Ok(());
        }
    }
    move_step(services, p, step, &[LAUNCHING], RUNNING, None).await?;
    Ok(())
}

/// Queues one job of a step. Resuming a launch cut short, it first adopts
/// the job that launch queued, and uses the session it made.
#[expect(clippy::too_many_arguments, reason = "one unit's whole description")]
async fn launch_unit(
    services: &Services,
    who: &Requester,
    plan: &StepPlan,
    message: String,
    session: String,
    index: usize,
    since: chrono::NaiveDateTime,
    resuming: bool,
) -> Unit {
    let mut unit = Unit {
        index,
        session: session.clone(),
        job_id: None,
        error: None,
    };
    let mut job_plan = plan.job();
    if resuming {
        let (tenant, name, asked) = (who.tenant().clone(), session.clone(), message.clone());
        match crate::db::run(&services.pool, move |c| {
            job::find_queued_since(c, &tenant, &name, &asked, since)
        })
        .await
        {
            Ok(Some(found)) => {
                unit.job_id = Some(found.id);
                return unit;
            }
            Ok(None) => {}
            Err(e) => {
                unit.error = Some(e.to_string());
                return unit;
            }
        }
        if job_plan.new_session.is_some()
            && crate::services::sessions::load(services, who, &session)
                .await
                .is_ok()
        {
            job_plan.session = Some(session.clone());
            job_plan.new_session = None;
        }
    }
    match launch::launch(services, who, &job_plan, message, &session).await {
        Ok((queued, _)) => {
            crate::metrics::pipeline_job_queued();
            unit.job_id = Some(queued.id);
        }
        Err(e) => unit.error = Some(e.to_string()),
    }
    unit
}

/// Ends a pipeline whose steps all ended and queues its webhook.
async fn finish(
    services: &Services,
    p: &Pipeline,
    steps: &[&PipelineStep],
    jobs: &JobsById,
) -> Result<(), ServiceError> {
    let status = if p.cancel_requested {
        CANCELLED
    } else if steps.iter().all(|s| s.state == DONE) {
        DONE
    } else {
        FAILED
    };
    let mut ended = p.clone();
    ended.status = status.into();
    ended.completed_at = Some(crate::db::now());
    let rows: Vec<PipelineStep> = steps.iter().map(|s| (*s).clone()).collect();
    let data = document::build(&ended, &rows, jobs);
    let (event_type, body) = document::completion_event(&data);
    let (id, body) = (p.id.clone(), body.to_string());
    let finished = crate::db::run(&services.pool, move |c| {
        pipeline::finish(c, &id, status, (&event_type, &body))
    })
    .await?;
    if let Some(finished) = finished {
        tracing::info!(pipeline = %finished.id, status, "pipeline ended");
        crate::metrics::pipeline_ended(status);
        if finished.webhook_url.is_some() {
            services.webhooks.do_send(crate::actors::webhooks::Wake);
        }
    }
    Ok(())
}
