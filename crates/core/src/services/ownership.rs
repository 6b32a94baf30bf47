//! Where a session runs. A server alone runs every session itself. In a
//! cluster a session runs on the node holding its lease: every path that
//! needs a session's actor comes here, which takes the lease first (a
//! request for a session leased elsewhere was already forwarded there by
//! `api::forward`). Whatever a previous holder left unfinished (jobs queued
//! or running when it died or drained) is picked up when its lease is
//! taken over, and a sweep adopts sessions whose jobs no live node holds.
//! Recovering a session's jobs lives here too (a server alone recovers
//! every session's at start, through `jobs::recover`).

use actix::Addr;

use super::Services;
use crate::actors::session::messages::Enqueue;
use crate::actors::session::SessionActor;
use crate::actors::supervisor::messages::{LiveSession, OpenSession, WarmSession};
use crate::db::models::job::{self, Job};
use crate::db::models::lease::{self, Lease, Taken};
use crate::db::models::session::Session;
use crate::domain::job as status;
use crate::error::ServiceError;

/// The session's actor on this node, its lease taken first in a cluster.
pub async fn actor(
    services: &Services,
    session: &Session,
) -> Result<Addr<SessionActor>, ServiceError> {
    // Held here with its actor live: that actor holds the lease (and every
    // write of it checks so), so there is nothing to take. A draining node
    // goes the long way, which refuses new work.
    if services.node.is_clustered()
        && !services.node.is_draining()
        && services
            .held_leases
            .holds(&session.tenant_id, &session.name)
    {
        if let Ok(Some(addr)) = services
            .supervisor
            .send(LiveSession(session.id.clone()))
            .await
        {
            return Ok(addr);
        }
    }
    let (lease, taken_over) = take(services, session).await?;
    if taken_over {
        // Before the actor starts, so its numbering follows this event.
        close_open_turn(services, session).await;
    }
    let addr = services
        .supervisor
        .send(OpenSession(session.clone(), lease))
        .await??;
    if taken_over {
        adopt(services, session, &addr).await;
    }
    Ok(addr)
}

/// Starts the session's CLI ahead of its first turn if a slot is free (see
/// `WarmSession`); in a cluster only when its lease can be taken here.
pub async fn warm(services: &Services, session: &Session) {
    if !services.settings.sessions.warm_on_create {
        return;
    }
    match take(services, session).await {
        Ok((lease, taken_over)) => {
            if taken_over {
                if let Ok(addr) = services
                    .supervisor
                    .send(OpenSession(session.clone(), lease.clone()))
                    .await
                    .map_err(ServiceError::from)
                    .and_then(|r| r.map_err(ServiceError::from))
                {
                    adopt(services, session, &addr).await;
                }
            }
            services
                .supervisor
                .do_send(WarmSession(session.clone(), lease));
        }
        Err(e) => {
            tracing::debug!(session = %session.name, error = %e, "not warming a session held elsewhere")
        }
    }
}

/// Takes the session's lease for this node (cluster only); whether it came
/// from another holder.
async fn take(
    services: &Services,
    session: &Session,
) -> Result<(Option<Lease>, bool), ServiceError> {
    let node = &services.node;
    if !node.is_clustered() {
        return Ok((None, false));
    }
    let (id, me, ttl) = (
        session.id.clone(),
        node.instance_id().to_owned(),
        node.lease_ttl_secs(),
    );
    let taken = crate::db::run(&services.pool, move |c| lease::acquire(c, &id, &me, ttl)).await?;
    match taken {
        Taken::Held { lease, taken_over } => Ok((Some(lease), taken_over)),
        // The request was routed here a moment before another node took the
        // session: the client's retry is forwarded there.
        Taken::Elsewhere => Err(ServiceError::Unavailable(
            "the session just moved to another node; retry the request".into(),
        )),
        Taken::Draining => Err(ServiceError::Unavailable(
            "this node is shutting down; retry the request".into(),
        )),
    }
}

/// A turn the previous holder was running when it died ends `interrupted`
/// on the session's stream, so whoever follows it is not left waiting (a
/// job's turn then runs again, see `adopt`).
async fn close_open_turn(services: &Services, session: &Session) {
    let response = crate::domain::turn::ChatResponse {
        session_id: session.name.clone(),
        cli_session_id: session.cli_session_id.clone(),
        content: String::new(),
        structured_output: None,
        cost: 0.0,
        cost_micros: 0,
        duration_ms: 0,
        num_turns: 0,
        tools_used: Vec::new(),
        is_error: false,
        stop_reason: Some("node_stopped".into()),
        usage: serde_json::json!({}),
        interrupted: true,
    };
    let payload = serde_json::to_string(&response).unwrap_or_else(|_| "{}".into());
    let id = session.id.clone();
    match crate::db::run(&services.pool, move |c| {
        crate::db::models::event::close_open_turn(c, &id, &payload)
    })
    .await
    {
        Ok(Some(seq)) => {
            tracing::warn!(session = %session.name, seq, "ended the turn a stopped node left open")
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(session = %session.name, error = %e, "cannot end a turn left open")
        }
    }
}

/// Picks up the jobs a previous holder of the session left.
async fn adopt(services: &Services, session: &Session, addr: &Addr<SessionActor>) {
    match recover_session(services, session, addr).await {
        Ok(report) if !report.is_empty() => tracing::warn!(
            session = %session.name,
            resumed = report.resumed,
            interrupted = report.interrupted,
            dispatched = report.dispatched,
            "took over a session's unfinished jobs"
        ),
        Ok(_) => {}
        Err(e) => {
            tracing::error!(session = %session.name, error = %e, "cannot recover a session's jobs")
        }
    }
}

/// Adopts sessions with unfinished jobs that no live node holds (their
/// node died): each is taken by whichever node's sweep gets its lease.
pub async fn adopt_orphans(services: &Services) -> usize {
    if !services.node.is_clustered() || services.node.is_draining() {
        return 0;
    }
    let orphans = crate::db::run(&services.pool, |c| {
        let ids = lease::orphaned_job_sessions(c, 100)?;
        let mut sessions = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(s) = crate::db::models::session::find_by_id(c, &id)? {
                sessions.push(s);
            }
        }
        Ok(sessions)
    })
    .await;
    let sessions = match orphans {
        Ok(sessions) => sessions,
        Err(e) => {
            tracing::warn!(error = %e, "cannot look for sessions left by dead nodes");
            return 0;
        }
    };
    let mut adopted = 0;
    for session in sessions {
        // Another node's sweep may win the lease: then it is theirs.
        if actor(services, &session).await.is_ok() {
            adopted += 1;
        }
    }
    adopted
}

/// Hands a queued job to its session's actor (FIFO with the session's chats).
pub async fn enqueue_job(
    actor: &actix::Addr<crate::actors::session::SessionActor>,
    job: &Job,
) -> Result<(), String> {
    actor
        .send(Enqueue(crate::actors::session::job_turn(job)))
        .await
        .map_err(|e| e.to_string())
}

/// What recovery did.
#[derive(Debug, Default)]
pub struct Recovery {
    pub resumed: usize,
    pub interrupted: usize,
    pub dispatched: usize,
}

impl Recovery {
    pub fn add(&mut self, other: &Recovery) {
        self.resumed += other.resumed;
        self.interrupted += other.interrupted;
        self.dispatched += other.dispatched;
    }

    pub fn is_empty(&self) -> bool {
        self.resumed + self.interrupted + self.dispatched == 0
    }
}

/// Jobs whose runner died (a crash, a restart, a node of a cluster gone):
/// those that were running run again (their session resumes its
/// conversation) while attempts remain, else they end `interrupted` with
/// their webhook. `session_id`: one session's jobs (taken over in a
/// cluster), else every job (the start of a server that runs alone).
pub(super) fn requeue_running(
    c: &mut crate::db::DbConnection,
    session_id: Option<&str>,
    max_attempts: i64,
) -> crate::db::DbResult<Recovery> {
    let mut report = Recovery::default();
    let running = match session_id {
        Some(id) => job::of_session_with_status(c, id, status::RUNNING)?,
        None => job::with_status(c, status::RUNNING)?,
    };
    for running in running {
        if running.attempts < max_attempts {
            job::requeue(c, &running.id)?;
            report.resumed += 1;
        } else {
            let done = job::JobCompletion {
                job_id: running.id.clone(),
                status: status::INTERRUPTED.into(),
                result: None,
                error: Some(format!(
                    "the server stopped while the job was running, {} time(s); giving up",
                    running.attempts
                )),
                cost_micros: 0,
                duration_ms: 0,
                tools_used: running.tools_used.clone(),
                git: None,
            };
            job::complete_and_notify(c, &done)?;
            report.interrupted += 1;
        }
    }
    Ok(report)
}

/// Recovers one session's jobs into its actor (see `requeue_running`);
/// queued jobs are handed over oldest first.
pub async fn recover_session(
    services: &Services,
    session: &Session,
    actor: &actix::Addr<crate::actors::session::SessionActor>,
) -> crate::db::DbResult<Recovery> {
    let max_attempts = i64::from(services.settings.jobs.max_attempts);
    let id = session.id.clone();
    let (mut report, queued) = crate::db::run(&services.pool, move |c| {
        let report = requeue_running(c, Some(&id), max_attempts)?;
        Ok((report, job::of_session_with_status(c, &id, status::QUEUED)?))
    })
    .await?;
    for queued in queued {
        match enqueue_job(actor, &queued).await {
            Ok(()) => report.dispatched += 1,
            Err(e) => {
                tracing::error!(job = %queued.id, error = %e, "cannot dispatch a recovered job")
            }
        }
    }
    Ok(report)
}
