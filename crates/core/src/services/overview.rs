//! Read models for dashboards (the web console): a tenant's sessions with
//! their live state, one session's transcript and state, its jobs with
//! their deliveries, its spend. Scoped to the caller's tenant.

use std::collections::{HashMap, HashSet};

use super::Services;
use crate::db::models::approval::{self, Approval};
use crate::db::models::job::Job;
use crate::db::models::message::Message;
use crate::db::models::overview;
use crate::db::models::session::{self, Session};
use crate::db::models::tenant::{self, Tenant};
use crate::db::models::usage::{self, Usage};
use crate::db::models::webhook::{self, DeliveryWithAttempts};
use crate::error::ServiceError;
use crate::security::auth::Caller;

/// The tenant's sessions and their state.
pub struct SessionsOverview {
    /// Up to the asked number, newest activity first.
    pub sessions: Vec<Session>,
    /// How many the tenant has in all.
    pub total: i64,
    /// Ids of sessions whose last answer failed.
    pub failed: HashSet<String>,
    /// Pending approvals by session id (they count only while running).
    pub pending: HashMap<String, Vec<Approval>>,
    /// Ids of sessions with a turn running now.
    pub running: HashSet<String>,
}

pub async fn sessions(
    services: &Services,
    caller: &Caller,
    max: i64,
) -> Result<SessionsOverview, ServiceError> {
    let running = running(services, caller).await?;
    let (tenant, sight) = (caller.tenant.clone(), caller.sight());
    let (sessions, failed, pending, total) = crate::db::run(&services.pool, move |c| {
        overview::sessions_with_state(c, &tenant, &sight, max)
    })
    .await?;
    Ok(SessionsOverview {
        sessions,
        total,
        failed,
        pending,
        running,
    })
}

/// One session as its page shows it.
pub struct SessionOverview {
    pub session: Session,
    /// The newest messages (up to the asked number).
    pub messages: Vec<Message>,
    /// How many older messages were left out.
    pub skipped: i64,
    /// The event id to follow the live stream from.
    pub after: i64,
    pub running: bool,
    pub last_failed: bool,
    pub pending: Vec<Approval>,
}

pub async fn session(
    services: &Services,
    caller: &Caller,
    name: &str,
    max_messages: i64,
) -> Result<SessionOverview, ServiceError> {
    let (tenant, lookup) = (caller.tenant.clone(), name.to_owned());
    let row = crate::db::run(&services.pool, move |c| {
        session::find_by_name(c, &tenant, &lookup)
    })
    .await?
    .filter(|row| caller.sight().sees(row))
    .ok_or_else(|| ServiceError::NotFound(format!("no session named {name:?}")))?;
    let (tenant, id) = (caller.tenant.clone(), row.id.clone());
    let (messages, skipped, after) = crate::db::run(&services.pool, move |c| {
        overview::transcript(c, &tenant, &id, max_messages)
    })
    .await?;
    let running = running(services, caller).await?.contains(&row.id);
    let (tenant, id) = (caller.tenant.clone(), row.id.clone());
    let (last_failed, pending) = crate::db::run(&services.pool, move |c| {
        Ok((
            overview::last_failed(c, &id)?,
            approval::list_pending(c, &tenant, &id)?,
        ))
    })
    .await?;
    Ok(SessionOverview {
        session: row,
        messages,
        skipped,
        after,
        running,
        last_failed,
        pending,
    })
}

/// The tenant's newest jobs with their sessions' names, their deliveries,
/// and the names of the tenant's sessions (to start a job on).
pub struct JobsOverview {
    pub jobs: Vec<(Job, String)>,
    pub deliveries: Vec<DeliveryWithAttempts>,
    pub session_names: Vec<String>,
}

pub async fn jobs(
    services: &Services,
    caller: &Caller,
    max_jobs: i64,
    max_sessions: i64,
) -> Result<JobsOverview, ServiceError> {
    let (tenant, sight) = (caller.tenant.clone(), caller.sight());
    Ok(crate::db::run(&services.pool, move |c| {
        let jobs = overview::jobs_with_sessions(c, &tenant, &sight, max_jobs)?;
        // A job has a few deliveries (started, completed, retries of each).
        let (deliveries, _) = webhook::list(c, &tenant, &sight, None, 0, max_jobs * 4)?;
        let session_names = overview::session_names(c, &tenant, &sight, max_sessions)?;
        Ok(JobsOverview {
            jobs,
            deliveries,
            session_names,
        })
    })
    .await?)
}

/// The tenant's usage, and its row (budget, spend, reservations).
pub async fn spend(
    services: &Services,
    caller: &Caller,
) -> Result<(Usage, Option<Tenant>), ServiceError> {
    let tenant = caller.tenant.clone();
    Ok(crate::db::run(&services.pool, move |c| {
        Ok((
            usage::for_tenant(c, &tenant)?,
            tenant::find_tenant(c, tenant.as_str())?,
        ))
    })
    .await?)
}

/// Ids of the tenant's sessions with a turn running now.
async fn running(services: &Services, caller: &Caller) -> Result<HashSet<String>, ServiceError> {
    Ok(services.running_turns.of(caller.tenant.as_str()))
}
