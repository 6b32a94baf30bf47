//! Starting a turn: the one path every prompt takes, whether it comes from
//! `/chat`, `/chat/stream`, a job, the OpenAI surface, MCP or the console.
//!
//! The checks run in one order: the prompt itself, the deny patterns, the
//! tenant's budget, its disk quota, the session, the permission ceiling, the
//! webhook URL (jobs). Only then is the turn queued on the session's actor, and the
//! prompt written to the audit log.

use tokio::sync::{mpsc, oneshot};

use super::{Requester, Services};
use crate::actors::session::messages::{Enqueue, Interrupt, InterruptReply};
use crate::db::models::job::Job;
use crate::db::models::session::Session;
use crate::domain::attachment::Attachment;
use crate::domain::event::NumberedEvent;
use crate::domain::session::{PermissionMode, SessionSpec};
use crate::domain::turn::{ChatResponse, Turn, TurnError, TurnRequest};
use crate::error::ServiceError;

/// Longest prompt accepted, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Events buffered for a streaming client before it counts as too slow.
const STREAM_BUFFER: usize = 4096;
/// How long an interrupt waits for the turn to be stored.
const INTERRUPT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Which session the turn runs on.
pub enum Target<'a> {
    /// The caller's session of that name; 404 when there is none.
    Named(&'a str),
    /// The caller's session of that name, created with the server defaults
    /// on first use (the OpenAI surface).
    OpenOrCreate(&'a str),
}

/// How the caller wants the answer.
pub enum Reply {
    /// The answer whole, when the turn ends.
    Whole,
    /// The turn's events as they happen.
    Stream,
    /// In the background: stored as a job, told to `webhook_url` at the end.
    Job {
        webhook_url: Option<String>,
        /// The job's id when the caller chose it (a schedule's run, to find
        /// its job again after a crash); else a new one.
        job_id: Option<String>,
    },
}

/// A queued turn, as the caller asked to follow it.
pub enum Submitted {
    Whole {
        outcome: oneshot::Receiver<Result<ChatResponse, TurnError>>,
        /// `Some(id)` when the turn starts waiting on a tool approval,
        /// `None` when it is settled.
        approvals: mpsc::UnboundedReceiver<Option<String>>,
    },
    Stream(mpsc::Receiver<NumberedEvent>),
    /// Written before this returns: an accepted job is never lost.
    Job {
        job: Box<Job>,
        session: Box<Session>,
    },
}

/// Queues a turn after every check; see the module's documentation.
pub async fn submit(
    services: &Services,
    who: &Requester,
    target: Target<'_>,
    mut request: TurnRequest,
    reply: Reply,
) -> Result<Submitted, ServiceError> {
    if request.attachments.is_empty() {
        validate_message(&request.message)?;
    } else {
        validate_text_size(&request.message)?;
    }
    check_deny_patterns(&services.settings, &request.message)?;
    if let Some(agents) = &request.overrides.agents {
        crate::domain::agent::validate("agents", agents).map_err(ServiceError::Validation)?;
    }
    if let Some(servers) = &request.overrides.mcp_servers {
        super::mcp_servers::check(services, who.tenant(), servers).await?;
    }
    let tenant = super::policy::tenant(services, who).await?;
    if let Some(e) = tenant
        .as_ref()
        .and_then(crate::db::models::budget::tenant_over)
    {
        return Err(ServiceError::BudgetExceeded {
            scope: e.scope,
            spent_micros: e.spent_micros,
            limit_micros: e.limit_micros,
        });
    }
    services
        .disk
        .status_for_write(who.tenant().as_str())
        .await?
        .check()?;
    let session = match target {
        Target::Named(name) => super::sessions::load(services, who, name).await?,
        Target::OpenOrCreate(name) => super::sessions::open_or_create(services, who, name).await?,
    };
    super::policy::check_permission_mode(
        services,
        tenant.as_ref(),
        session_mode(&session),
        request.overrides.permission_mode,
    )?;
    let blocks = std::mem::take(&mut request.attachments);
    let attachments = super::attachments::resolve(services, who, &session, blocks).await?;
    let prompt: String = request
        .message
        .chars()
        .take(super::audit::PROMPT_CHARS)
        .collect();
    let (submitted, action, target) = match reply {
        Reply::Job {
            webhook_url,
            job_id,
        } => {
            if let Some(url) = &webhook_url {
                crate::webhooks::ssrf::check(url, &services.settings.webhooks.allowed_hosts)
                    .await
                    .map_err(|e| ServiceError::Validation(e.to_string()))?;
            }
            let job = super::jobs::insert(
                services,
                who,
                &session,
                request,
                attachments,
                webhook_url,
                job_id,
            )
            .await?;
            let target = format!("{}/{}", session.name, job.id);
            let submitted = Submitted::Job {
                job: Box::new(job),
                session: Box::new(session),
            };
            (submitted, "job.create", target)
        }
        Reply::Whole => {
            let (reply, outcome) = oneshot::channel();
            let (approvals_tx, approvals) = mpsc::unbounded_channel();
            let turn = Turn {
                reply: Some(reply),
                approvals: Some(approvals_tx),
                ..turn(request, attachments)
            };
            enqueue(services, &session, turn).await?;
            (
                Submitted::Whole { outcome, approvals },
                "chat",
                session.name,
            )
        }
        Reply::Stream => {
            let (tx, rx) = mpsc::channel(STREAM_BUFFER);
            let turn = Turn {
                subscriber: Some(tx),
                ..turn(request, attachments)
            };
            enqueue(services, &session, turn).await?;
            (Submitted::Stream(rx), "chat", session.name)
        }
    };
    super::audit::record_prompt(services, who, action, &target, &prompt).await;
    Ok(submitted)
}

/// How a turn asked for whole answered.
pub enum Answer {
    Done(Box<ChatResponse>),
    /// The turn waits on this tool approval for longer than
    /// `APPROVAL_HOLD_SECS`; it goes on, and the caller is told to decide.
    Waiting {
        approval_id: String,
    },
}

/// Waits for the answer of a turn submitted with `Reply::Whole`.
pub async fn answer(services: &Services, submitted: Submitted) -> Result<Answer, ServiceError> {
    let Submitted::Whole {
        mut outcome,
        mut approvals,
    } = submitted
    else {
        return Err(ServiceError::internal(
            "the turn was not submitted for a whole answer",
        ));
    };
    let hold = services.settings.approvals.hold;
    let mut waiting_on: Option<String> = None;
    let mut deadline = tokio::time::Instant::now();
    let result = loop {
        tokio::select! {
            result = &mut outcome => break result,
            Some(notice) = approvals.recv() => {
                if notice.is_some() {
                    deadline = tokio::time::Instant::now() + hold;
                }
                waiting_on = notice;
            }
            () = tokio::time::sleep_until(deadline), if waiting_on.is_some() => {
                let approval_id = waiting_on.unwrap_or_default();
                return Ok(Answer::Waiting { approval_id });
            }
        }
    };
    let response = result.map_err(|_| ServiceError::from(TurnError::Closed))??;
    Ok(Answer::Done(Box::new(response)))
}

/// Interrupts the session's running turn (its partial answer is kept,
/// marked interrupted); whether it was stored within the wait. No running
/// turn is a 409.
pub async fn interrupt(
    services: &Services,
    who: &Requester,
    name: &str,
) -> Result<bool, ServiceError> {
    let session = super::sessions::load(services, who, name).await?;
    let actor = super::ownership::actor(services, &session).await?;
    match actor.send(Interrupt).await? {
        InterruptReply::Idle => Err(ServiceError::Conflict(
            "no turn is running on this session".into(),
        )),
        InterruptReply::Interrupting(stored) => {
            Ok(tokio::time::timeout(INTERRUPT_WAIT, stored).await.is_ok())
        }
    }
}

/// A turn nobody follows yet; the caller adds its reply channel.
fn turn(request: TurnRequest, attachments: Vec<Attachment>) -> Turn {
    Turn {
        job_id: None,
        message: request.message,
        attachments,
        overrides: request.overrides,
        subscriber: None,
        reply: None,
        span: tracing::Span::current(),
        approvals: None,
        clock: crate::domain::turn::TurnClock::start(),
    }
}

async fn enqueue(services: &Services, session: &Session, turn: Turn) -> Result<(), ServiceError> {
    let addr = super::ownership::actor(services, session).await?;
    addr.send(Enqueue(turn)).await?;
    Ok(())
}

/// The permission mode a stored session asks for, if any.
fn session_mode(row: &Session) -> Option<PermissionMode> {
    serde_json::from_str::<SessionSpec>(&row.spec)
        .ok()
        .and_then(|spec| spec.permission_mode)
}

/// Optional deny patterns (`DENY_PATTERNS`): a guard rail against obvious
/// misuse, not a security boundary (rephrasing gets around any list).
fn check_deny_patterns(
    settings: &crate::config::Settings,
    message: &str,
) -> Result<(), ServiceError> {
    if settings.sessions.deny_patterns.is_empty() {
        return Ok(());
    }
    let lower = message.to_lowercase();
    match settings
        .sessions
        .deny_patterns
        .iter()
        .find(|p| lower.contains(p.as_str()))
    {
        Some(pattern) => Err(ServiceError::Validation(format!(
            "the message contains {pattern:?}, which this server refuses (DENY_PATTERNS)"
        ))),
        None => Ok(()),
    }
}

/// A prompt must say something and stay within `MAX_MESSAGE_BYTES`.
pub fn validate_message(message: &str) -> Result<(), ServiceError> {
    if message.trim().is_empty() {
        return Err(ServiceError::Validation("message must not be empty".into()));
    }
    validate_text_size(message)
}

/// The text of a prompt (which may be empty beside attachments) stays
/// within `MAX_MESSAGE_BYTES`.
fn validate_text_size(message: &str) -> Result<(), ServiceError> {
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(ServiceError::Validation(format!(
            "message is {} bytes; the limit is {MAX_MESSAGE_BYTES}",
            message.len()
        )));
    }
    Ok(())
}

/// The JSON Schema an `output_format` asks for, or a validation error.
pub fn output_schema(
    format: Option<&crate::domain::session::OutputFormat>,
) -> Result<Option<serde_json::Value>, ServiceError> {
    format
        .map(crate::domain::session::OutputFormat::json_schema)
        .transpose()
        .map_err(ServiceError::Validation)
}
