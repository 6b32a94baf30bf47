//! Prometheus metrics, served at `/metrics` (see `api::scrape`) on a separate listener
//! (`METRICS_ADDR`) so the scrape port can be kept off the public address:
//! HTTP requests by route pattern and status (with latency), live CLI
//! processes, queued turns, turns by outcome with their latency, cost, webhook
//! attempts by outcome, pending tool approvals, what the model gateway
//! refused or charged outside turns, and each tenant's disk usage and quota.
//!
//! The collectors live in one process-wide registry, like Prometheus' own
//! default registry: instrumentation points sit in the actors and the
//! webhook dispatcher, and a handle threaded through every constructor would
//! buy nothing. Several servers in one process (the tests) share it.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::domain::turn::{ChatResponse, TurnError};

/// Buckets of a turn's steps, seconds: from microseconds (a key resolved
/// from memory) to a process start.
const STAGE_BUCKETS: &[f64] = &[
    0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5,
];

/// Latency buckets, seconds: from a warm turn (~30 ms) to long agent runs.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    live_processes: IntGauge,
    live_sessions: IntGauge,
    waiting_for_slot: IntGauge,
    turns_queued: IntGauge,
    turns: IntCounterVec,
    turn_duration: HistogramVec,
    turn_stages: HistogramVec,
    process_start: HistogramVec,
    auth_duration: prometheus::Histogram,
    cost_micros: IntCounter,
    webhook_attempts: IntCounterVec,
    schedule_runs: IntCounterVec,
    approvals_pending: IntGauge,
    cli_spawns: IntCounter,
    gateway_refused: IntCounterVec,
    outside_turns_micros: IntCounter,
    agent_egress: IntCounterVec,
    disk_used: prometheus::IntGaugeVec,
    disk_limit: prometheus::IntGaugeVec,
    workspace_snapshots: HistogramVec,
    session_forks: IntCounter,
    pipelines_started: IntCounter,
    pipelines_ended: IntCounterVec,
    pipeline_steps_ended: IntCounterVec,
    pipeline_jobs: IntCounter,
}

/// Static metric definitions: a bad one is a bug seen at the first start.
fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new();
    let http_requests = IntCounterVec::new(
        Opts::new("cca_http_requests_total", "HTTP requests served"),
        &["method", "route", "status"],
    )?;
    let http_duration = HistogramVec::new(
        HistogramOpts::new(
            "cca_http_request_duration_seconds",
            "Time to the response head, by route pattern",
        )
        .buckets(BUCKETS.to_vec()),
        &["method", "route"],
    )?;
    let live_processes = IntGauge::new("cca_live_cli_processes", "Live Claude CLI processes")?;
    let live_sessions = IntGauge::new("cca_live_sessions", "Sessions with a live actor")?;
    let waiting_for_slot = IntGauge::new(
        "cca_sessions_waiting_for_slot",
        "Sessions waiting for a live-process slot (MAX_LIVE_SESSIONS)",
    )?;
    let turns_queued = IntGauge::new(
        "cca_turns_queued",
        "Turns waiting in session queues (not yet running)",
    )?;
    let turns = IntCounterVec::new(
        Opts::new(
            "cca_turns_total",
            "Finished turns (chat, stream, job) by outcome",
        ),
        &["outcome"],
    )?;
    let turn_duration = HistogramVec::new(
        HistogramOpts::new(
            "cca_turn_duration_seconds",
            "Time from a turn's start to its end",
        )
        .buckets(BUCKETS.to_vec()),
        &["outcome"],
    )?;
    let turn_stages = HistogramVec::new(
        HistogramOpts::new(
            "cca_turn_stage_seconds",
            "A turn's time by step: permit (queued to a running-turn permit), cli_write \
             (to its message written to the CLI: process start, disk and budget checks), \
             first_output (to the CLI's first line), answer (to its result), store (to its \
             record stored)",
        )
        .buckets(STAGE_BUCKETS.to_vec()),
        &["stage"],
    )?;
    let process_start = HistogramVec::new(
        HistogramOpts::new(
            "cca_process_start_seconds",
            "A CLI process's start by step: prepare (its agent user, its transcript checked or \
             rebuilt, the disk quota), confine (its folders opened and handed over, its cgroup), \
             spawn (bubblewrap started), initialize (to the CLI's answer to `initialize`)",
        )
        .buckets(STAGE_BUCKETS.to_vec()),
        &["step"],
    )?;
    let auth_duration = prometheus::Histogram::with_opts(
        HistogramOpts::new(
            "cca_auth_duration_seconds",
            "Time to resolve a request's API key (from memory, or the database)",
        )
        .buckets(STAGE_BUCKETS.to_vec()),
    )?;
    let cost_micros = IntCounter::new(
        "cca_cost_micro_usd_total",
        "Model cost charged to turns, in micro-USD",
    )?;
    let schedule_runs = IntCounterVec::new(
        Opts::new(
            "cca_schedule_runs_total",
            "Runs of schedules by origin (schedule, catch_up, manual) and outcome (started, skipped, waiting, error)",
        ),
        &["origin", "outcome"],
    )?;
    let webhook_attempts = IntCounterVec::new(
        Opts::new(
            "cca_webhook_attempts_total",
            "Webhook delivery attempts by outcome (the delivery's new status)",
        ),
        &["outcome"],
    )?;
    let approvals_pending = IntGauge::new(
        "cca_approvals_pending",
        "Tool approvals waiting for an answer",
    )?;
    let cli_spawns = IntCounter::new("cca_cli_spawns_total", "Claude CLI processes started")?;
    let gateway_refused = IntCounterVec::new(
        Opts::new(
            "cca_gateway_refused_total",
            "Requests of CLI processes the model gateway refused to forward",
        ),
        &["reason"],
    )?;
    let outside_turns_micros = IntCounter::new(
        "cca_gateway_outside_turns_micro_usd_total",
        "Model cost of calls made outside any turn, charged to tenants directly, in micro-USD",
    )?;
    let agent_egress = IntCounterVec::new(
        Opts::new(
            "cca_agent_egress_requests_total",
            "Connections asked of the agents' egress proxy, by outcome (allowed, not_allowed, \
             private_address, over_limit, bad_request, upstream_error)",
        ),
        &["outcome"],
    )?;
    let disk_used = prometheus::IntGaugeVec::new(
        Opts::new(
            "cca_disk_used_bytes",
            "What a tenant's agents keep on disk (workspaces and CLI state), as last measured",
        ),
        &["tenant"],
    )?;
    let disk_limit = prometheus::IntGaugeVec::new(
        Opts::new("cca_disk_quota_bytes", "A tenant's disk quota"),
        &["tenant"],
    )?;
    let workspace_snapshots = HistogramVec::new(
        HistogramOpts::new(
            "cca_workspace_snapshot_seconds",
            "Workspace snapshots taken at the end of turns, by result (stored, over_limit, \
             failed, off), and how long each took",
        )
        .buckets(BUCKETS.to_vec()),
        &["result"],
    )?;
    let session_forks = IntCounter::new(
        "cca_session_forks_total",
        "Sessions made as a fork of another session at one of its turns",
    )?;
    let pipelines_started = IntCounter::new("cca_pipelines_started_total", "Pipelines accepted")?;
    let pipelines_ended = IntCounterVec::new(
        Opts::new(
            "cca_pipelines_ended_total",
            "Pipelines that ended, by status (done, failed, cancelled)",
        ),
        &["status"],
    )?;
    let pipeline_steps_ended = IntCounterVec::new(
        Opts::new(
            "cca_pipeline_steps_ended_total",
            "Pipeline steps that ended, by state (done, failed, stopped, cancelled)",
        ),
        &["state"],
    )?;
    let pipeline_jobs = IntCounter::new(
        "cca_pipeline_jobs_queued_total",
        "Jobs queued by pipeline steps (one per item of a fan-out)",
    )?;
    for c in [
        Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
        Box::new(http_duration.clone()),
        Box::new(live_processes.clone()),
        Box::new(live_sessions.clone()),
        Box::new(waiting_for_slot.clone()),
        Box::new(turns_queued.clone()),
        Box::new(turns.clone()),
        Box::new(turn_duration.clone()),
        Box::new(turn_stages.clone()),
        Box::new(process_start.clone()),
        Box::new(auth_duration.clone()),
        Box::new(cost_micros.clone()),
        Box::new(webhook_attempts.clone()),
        Box::new(schedule_runs.clone()),
        Box::new(approvals_pending.clone()),
        Box::new(cli_spawns.clone()),
        Box::new(gateway_refused.clone()),
        Box::new(outside_turns_micros.clone()),
        Box::new(agent_egress.clone()),
        Box::new(disk_used.clone()),
        Box::new(disk_limit.clone()),
        Box::new(workspace_snapshots.clone()),
        Box::new(session_forks.clone()),
        Box::new(pipelines_started.clone()),
        Box::new(pipelines_ended.clone()),
        Box::new(pipeline_steps_ended.clone()),
        Box::new(pipeline_jobs.clone()),
    ] {
        registry.register(c)?;
    }
    Ok(Metrics {
        registry,
        http_requests,
        http_duration,
        live_processes,
        live_sessions,
        waiting_for_slot,
        turns_queued,
        turns,
        turn_duration,
        turn_stages,
        process_start,
        auth_duration,
        cost_micros,
        webhook_attempts,
        schedule_runs,
        approvals_pending,
        cli_spawns,
        gateway_refused,
        outside_turns_micros,
        agent_egress,
        disk_used,
        disk_limit,
        workspace_snapshots,
        session_forks,
        pipelines_started,
        pipelines_ended,
        pipeline_steps_ended,
        pipeline_jobs,
    })
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// Builds the registry; called once at start, before any request. Until
/// then (unit tests of other modules) recording does nothing.
pub fn init() -> Result<(), prometheus::Error> {
    if METRICS.get().is_none() {
        // Two servers starting at once in one process (the tests): the
        // first one's registry stays, the other is dropped.
        let _ = METRICS.set(build()?);
    }
    Ok(())
}

/// The registry, once `init` has run.
fn metrics() -> Option<&'static Metrics> {
    METRICS.get()
}

/// One HTTP request answered: counted by its route pattern
/// (`/api/v1/sessions/{name}`, never the raw path, so labels stay few),
/// method and status.
pub fn http_request_answered(method: &str, route: &str, status: u16, elapsed: Duration) {
    let Some(m) = metrics() else { return };
    let method = method_label(method);
    let status = status.to_string();
    m.http_requests
        .with_label_values(&[method, route, status.as_str()])
        .inc();
    m.http_duration
        .with_label_values(&[method, route])
        .observe(elapsed.as_secs_f64());
}

/// The method as a label: any token is a valid HTTP method, so one a client
/// makes up would otherwise become a series of its own, forever.
fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// A session's queue changed length by `delta`.
pub fn turns_queued_changed(delta: i64) {
    if let Some(m) = metrics() {
        m.turns_queued.add(delta);
    }
}

/// A turn ended (answered, failed or cancelled) after `elapsed`.
pub fn turn_finished(elapsed: Duration, outcome: &Result<ChatResponse, TurnError>) {
    let (label, cost) = match outcome {
        Ok(r) => ("ok", r.cost_micros),
        Err(TurnError::Cli { response, .. }) => {
            ("cli_error", response.as_ref().map_or(0, |r| r.cost_micros))
        }
        Err(TurnError::Process(_)) => ("process_error", 0),
        Err(TurnError::Timeout(_)) => ("timeout", 0),
        Err(TurnError::Closed) => ("closed", 0),
        Err(TurnError::Cancelled) => ("cancelled", 0),
        Err(TurnError::OverBudget { .. }) => ("over_budget", 0),
        Err(TurnError::Busy) => ("busy", 0),
        Err(TurnError::NoModelCredential) => ("no_model_credential", 0),
        Err(TurnError::DiskQuota { .. }) => ("disk_quota", 0),
    };
    let Some(m) = metrics() else { return };
    m.turns.with_label_values(&[label]).inc();
    m.turn_duration
        .with_label_values(&[label])
        .observe(elapsed.as_secs_f64());
    if cost > 0 {
        m.cost_micros.inc_by(cost.unsigned_abs());
    }
}

/// One step of a turn took `took` (see `TurnClock::stages`).
pub fn turn_stage(stage: &str, took: Duration) {
    if let Some(m) = metrics() {
        m.turn_stages
            .with_label_values(&[stage])
            .observe(took.as_secs_f64());
    }
}

/// One step of a CLI process's start took `took`.
pub fn process_start_step(step: &str, took: Duration) {
    if let Some(m) = metrics() {
        m.process_start
            .with_label_values(&[step])
            .observe(took.as_secs_f64());
    }
}

/// A request's API key was resolved in `took`.
pub fn authenticated(took: Duration) {
    if let Some(m) = metrics() {
        m.auth_duration.observe(took.as_secs_f64());
    }
}

/// A webhook attempt ended; `outcome` is the delivery's new status
/// (`delivered`, `pending` = will retry, `failed`, …).
pub fn webhook_attempt(outcome: &str) {
    if let Some(m) = metrics() {
        m.webhook_attempts.with_label_values(&[outcome]).inc();
    }
}

/// A schedule's run was started, skipped, put to wait or could not start.
pub fn schedule_run(origin: &str, outcome: &str) {
    if let Some(m) = metrics() {
        m.schedule_runs.with_label_values(&[origin, outcome]).inc();
    }
}

/// A pipeline was accepted.
pub fn pipeline_started() {
    if let Some(m) = metrics() {
        m.pipelines_started.inc();
    }
}

/// A pipeline ended with `status`.
pub fn pipeline_ended(status: &str) {
    if let Some(m) = metrics() {
        m.pipelines_ended.with_label_values(&[status]).inc();
    }
}

/// A pipeline's step moved to `state` (an end, or `running`).
pub fn pipeline_step_ended(state: &str) {
    if let Some(m) = metrics() {
        if crate::domain::pipeline::step_is_final(state) {
            m.pipeline_steps_ended.with_label_values(&[state]).inc();
        }
    }
}

/// A pipeline's step queued a job.
pub fn pipeline_job_queued() {
    if let Some(m) = metrics() {
        m.pipeline_jobs.inc();
    }
}

/// A CLI process was started.
pub fn cli_spawned() {
    if let Some(m) = metrics() {
        m.cli_spawns.inc();
    }
}

/// The model gateway refused a request (`reason`: `not_normalised` or
/// `not_allowed`).
pub fn gateway_refused(reason: &'static str) {
    if let Some(m) = metrics() {
        m.gateway_refused.with_label_values(&[reason]).inc();
    }
}

/// A model call made outside any turn was charged `micros` directly.
pub fn charged_outside_turns(micros: i64) {
    if let Some(m) = metrics() {
        if micros > 0 {
            m.outside_turns_micros.inc_by(micros.unsigned_abs());
        }
    }
}

/// A turn's workspace snapshot ended with `result`, after `took`.
pub fn workspace_snapshot(result: &str, took: Duration) {
    if let Some(m) = metrics() {
        m.workspace_snapshots
            .with_label_values(&[result])
            .observe(took.as_secs_f64());
    }
}

/// A session was forked.
pub fn session_forked() {
    if let Some(m) = metrics() {
        m.session_forks.inc();
    }
}

/// The egress proxy decided on one connection of an agent.
pub fn agent_egress(outcome: &str) {
    if let Some(m) = metrics() {
        m.agent_egress.with_label_values(&[outcome]).inc();
    }
}

/// An approval started (+1) or stopped (-1) waiting on a client.
pub fn approvals_pending_changed(delta: i64) {
    if let Some(m) = metrics() {
        m.approvals_pending.add(delta);
    }
}

/// The live-process figures, read from the supervisor at scrape time.
pub fn set_live(processes: usize, sessions: usize, waiting_for_slot: usize) {
    let Some(m) = metrics() else { return };
    let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
    m.live_processes.set(n(processes));
    m.live_sessions.set(n(sessions));
    m.waiting_for_slot.set(n(waiting_for_slot));
}

/// A tenant's disk usage was measured. Tenants are made by admins, so the
/// label takes no value a client made up.
pub fn disk_measured(tenant: &str, used_bytes: u64, limit_bytes: u64) {
    let Some(m) = metrics() else { return };
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    m.disk_used.with_label_values(&[tenant]).set(n(used_bytes));
    m.disk_limit
        .with_label_values(&[tenant])
        .set(n(limit_bytes));
}

/// Every metric in the text exposition format; `None` before `init`.
pub fn encode() -> Option<Result<Vec<u8>, prometheus::Error>> {
    let m = metrics()?;
    let mut out = Vec::new();
    Some(
        TextEncoder::new()
            .encode(&m.registry.gather(), &mut out)
            .map(|()| out),
    )
}
