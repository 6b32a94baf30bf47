//! `settings.jobs` and `settings.webhooks`.

use std::time::Duration;

use super::parse::Env;
use super::ConfigError;

#[derive(Debug, Clone)]
pub struct JobSettings {
    /// `JOB_MAX_ATTEMPTS`: runs of a job cut short by a crash before it ends `interrupted`.
    pub max_attempts: u32,
    pub schedules: ScheduleSettings,
    /// Pipelines of jobs (`PIPELINE_*`).
    pub pipelines: PipelineSettings,
}

impl JobSettings {
    pub(super) fn read(env: &Env) -> Result<JobSettings, ConfigError> {
        Ok(JobSettings {
            max_attempts: env.bounded("JOB_MAX_ATTEMPTS", 1, 100)?,
            schedules: ScheduleSettings::read(env)?,
            pipelines: PipelineSettings::read(env)?,
        })
    }
}

/// `settings.jobs.schedules`: limits of schedules and how often due ones
/// are looked for.
#[derive(Debug, Clone)]
pub struct ScheduleSettings {
    /// `SCHEDULES_PER_TENANT`: schedules a tenant may have.
    pub per_tenant: i64,
    /// `SCHEDULE_RUNS_PER_HOUR`: runs a tenant's schedules may start in
    /// any hour; runs past it are skipped.
    pub runs_per_hour: i64,
    /// `SCHEDULE_TICK_MS`: how often due schedules are looked for.
    pub tick: Duration,
}

impl ScheduleSettings {
    fn read(env: &Env) -> Result<ScheduleSettings, ConfigError> {
        Ok(ScheduleSettings {
            per_tenant: env.bounded("SCHEDULES_PER_TENANT", 0, 100_000)?,
            runs_per_hour: env.bounded("SCHEDULE_RUNS_PER_HOUR", 0, 1_000_000)?,
            tick: Duration::from_millis(env.bounded("SCHEDULE_TICK_MS", 50, 60_000)?),
        })
    }
}

/// `settings.jobs.pipelines`: the limits of pipelines.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    /// `PIPELINE_MAX_STEPS`: steps one pipeline may have.
    pub max_steps: usize,
    /// `PIPELINE_MAX_FAN_OUT`: jobs one `for_each` step may start.
    pub max_fan_out: usize,
    /// `PIPELINE_MAX_MESSAGE_KB`: a step's message after rendering, in bytes.
    pub max_message_bytes: usize,
    /// `PIPELINE_MAX_RUNNING_PER_TENANT`: a tenant's pipelines running at once.
    pub max_running_per_tenant: i64,
    /// `PIPELINE_POLL_INTERVAL_MS`: how often running pipelines are moved on.
    pub poll_interval: Duration,
}

impl PipelineSettings {
    fn read(env: &Env) -> Result<PipelineSettings, ConfigError> {
        Ok(PipelineSettings {
            max_steps: env.bounded("PIPELINE_MAX_STEPS", 1, 1000)?,
            max_fan_out: env.bounded("PIPELINE_MAX_FAN_OUT", 1, 1000)?,
            max_message_bytes: env.bounded::<usize>("PIPELINE_MAX_MESSAGE_KB", 1, 1024)? * 1024,
            max_running_per_tenant: env.bounded("PIPELINE_MAX_RUNNING_PER_TENANT", 1, 10_000)?,
            poll_interval: Duration::from_millis(env.bounded(
                "PIPELINE_POLL_INTERVAL_MS",
                50,
                60_000,
            )?),
        })
    }
}

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// `WEBHOOK_SECRET`: `whsec_<base64>` signing secret; unset → generated once and stored.
    pub secret: Option<String>,
    /// `WEBHOOK_ALLOWED_HOSTS`: hosts exempt from the internal-address refusal.
    pub allowed_hosts: Vec<String>,
    /// `WEBHOOK_TIMEOUT_SECONDS`: one delivery attempt's time limit.
    pub timeout: Duration,
    /// `WEBHOOK_RETRY_SCHEDULE_SECONDS`: delays before each retry, so one
    /// attempt more than its length in all (quick at first, then hours: 9
    /// attempts over about 24.3 hours by default).
    pub retry_schedule: Vec<Duration>,
    /// `WEBHOOK_POLL_INTERVAL_MS`: how often due deliveries are looked for.
    pub poll_interval: Duration,
}

impl WebhookSettings {
    pub(super) fn read(env: &Env) -> Result<WebhookSettings, ConfigError> {
        let secret = env.get("WEBHOOK_SECRET");
        if let Some(raw) = &secret {
            crate::webhooks::signing::WebhookSecret::parse(raw)
                .map_err(|reason| env.error("WEBHOOK_SECRET", raw, reason))?;
        }
        Ok(WebhookSettings {
            secret,
            allowed_hosts: env.list("WEBHOOK_ALLOWED_HOSTS"),
            timeout: env.seconds("WEBHOOK_TIMEOUT_SECONDS", 1, 300)?,
            retry_schedule: retry_schedule(env)?,
            poll_interval: Duration::from_millis(env.bounded(
                "WEBHOOK_POLL_INTERVAL_MS",
                10,
                60_000,
            )?),
        })
    }
}

fn retry_schedule(env: &Env) -> Result<Vec<Duration>, ConfigError> {
    let name = "WEBHOOK_RETRY_SCHEDULE_SECONDS";
    let raw = env.string(name);
    let delays: Result<Vec<u64>, _> = raw.split(',').map(|s| s.trim().parse::<u64>()).collect();
    match delays {
        Ok(delays) if !delays.is_empty() && delays.len() <= 50 => {
            Ok(delays.into_iter().map(Duration::from_secs).collect())
        }
        _ => Err(env.error(name, &raw, "expected 1 to 50 comma-separated whole seconds")),
    }
}
