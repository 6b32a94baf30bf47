//! Jobs the server starts on a tenant's behalf: a schedule's run, a
//! pipeline's step. A `JobPlan` names where the job runs (an existing
//! session, or a new one made for it from a template or a repository) and
//! what it asks; `launch` makes that session when needed and queues the job
//! through `turns::submit`, so every check a client's job meets applies.

use serde::{Deserialize, Serialize};

use super::turns::{self, Reply, Submitted, Target};
use super::{Requester, Services};
use crate::db::models::job::Job;
use crate::db::models::session::Session;
use crate::domain::session::{Effort, OutputFormat, PermissionMode, SessionSpec, TurnOverrides};
use crate::domain::turn::TurnRequest;
use crate::error::ServiceError;
use crate::security::auth::Caller;

/// A job the server starts by itself, as a client describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobPlan {
    /// An existing session of the tenant to run in (its queue, its
    /// conversation). Exactly one of `session` and `new_session`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// A session made for each run, from a template or a repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_session: Option<NewSessionPlan>,
    /// The prompt (text, not empty, at most 1 MiB).
    pub message: String,
    /// Receives the job's signed `job.completed` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<Effort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_mode: Option<PermissionMode>,
    /// Structured output: the result's `structured_output` follows the schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_format: Option<OutputFormat>,
}

/// `new_session` of a plan: what each run's own session is made of.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSessionPlan {
    /// An agent template (`GET /api/v1/templates`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// A repository of the tenant to start from (as `repo` of `POST /sessions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<super::git::RepoChoice>,
    /// `private`: seen only by the job's maker and the tenant's admins.
    #[serde(
        default,
        skip_serializing_if = "crate::domain::session::Visibility::is_tenant"
    )]
    pub visibility: crate::domain::session::Visibility,
}

impl JobPlan {
    /// What can be checked before anything runs; `field` names the plan in
    /// the request (`job`, `steps[2]`) for the error.
    pub fn check(&self, field: &str) -> Result<(), ServiceError> {
        match (&self.session, &self.new_session) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(ServiceError::Validation(format!(
                    "{field} needs exactly one of session and new_session"
                )))
            }
            (Some(name), None) => super::named_session::validate_name(name)?,
            (None, Some(plan)) => {
                if let Some(template) = &plan.template {
                    if !crate::templates::valid_name(template) {
                        return Err(ServiceError::Validation(format!(
                            "{field}.new_session.template {template:?} is not a template name"
                        )));
                    }
                }
            }
        }
        if self.message.trim().is_empty() {
            return Err(ServiceError::Validation(format!(
                "{field}.message must not be empty"
            )));
        }
        turns::output_schema(self.output_format.as_ref())?;
        Ok(())
    }

    fn overrides(&self) -> Result<TurnOverrides, ServiceError> {
        Ok(TurnOverrides {
            model: self.model.clone(),
            system: self.system.clone(),
            effort: self.effort,
            permission_mode: self.permission_mode,
            json_schema: turns::output_schema(self.output_format.as_ref())?,
            ..TurnOverrides::default()
        })
    }
}

/// The caller a background run acts as: the tenant, and the key that made
/// the schedule or pipeline (named in the audit log), with `request_id`
/// saying which run it is.
pub fn requester(caller: Caller, request_id: String) -> Requester {
    Requester {
        caller,
        client_addr: None,
        request_id,
    }
}

/// Makes the plan's session when it asks for a new one (named
/// `new_session_name`), then queues `message` there as a job. The job is
/// stored before this returns.
pub async fn launch(
    services: &Services,
    who: &Requester,
    plan: &JobPlan,
    message: String,
    new_session_name: &str,
) -> Result<(Job, Session), ServiceError> {
    launch_as(services, who, plan, message, new_session_name, None).await
}

/// `launch`, with the job's id chosen by the caller (`None`: a new one).
pub async fn launch_as(
    services: &Services,
    who: &Requester,
    plan: &JobPlan,
    message: String,
    new_session_name: &str,
    job_id: Option<String>,
) -> Result<(Job, Session), ServiceError> {
    let name = match (&plan.session, &plan.new_session) {
        (Some(name), _) => name.clone(),
        (None, Some(new)) => {
            let spec = SessionSpec {
                template: new.template.clone(),
                ..SessionSpec::default()
            };
            let session = super::sessions::create(
                services,
                who,
                super::sessions::NewSession {
                    name: new_session_name.to_owned(),
                    spec,
                    budget_micros: None,
                    repo: new.repo.clone(),
                    private: new.visibility.is_private(),
                },
            )
            .await?;
            session.name
        }
        (None, None) => return Err(ServiceError::Validation("a job needs a session".into())),
    };
    let request = TurnRequest::from_input(
        crate::domain::attachment::MessageInput::Text(message),
        plan.overrides()?,
    );
    let reply = Reply::Job {
        webhook_url: plan.webhook_url.clone(),
        job_id,
    };
    match turns::submit(services, who, Target::Named(&name), request, reply).await? {
        Submitted::Job { job, session } => Ok((*job, *session)),
        _ => Err(ServiceError::internal("a job was asked for")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(json: serde_json::Value) -> JobPlan {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_plan_names_exactly_one_place_to_run() {
        assert!(plan(serde_json::json!({"session": "s", "message": "hi"}))
            .check("job")
            .is_ok());
        assert!(
            plan(serde_json::json!({"new_session": {}, "message": "hi"}))
                .check("job")
                .is_ok()
        );
        let both = plan(serde_json::json!({"session": "s", "new_session": {}, "message": "hi"}));
        assert!(
            matches!(both.check("job"), Err(ServiceError::Validation(m)) if m.contains("exactly one"))
        );
        let none = plan(serde_json::json!({"message": "hi"}));
        assert!(none.check("job").is_err());
        let empty = plan(serde_json::json!({"session": "s", "message": " "}));
        assert!(
            matches!(empty.check("steps[1]"), Err(ServiceError::Validation(m)) if m.contains("steps[1].message"))
        );
    }
}
