//! The MCP tools and resources: each one a call to the services, as the
//! REST routes make them, so tools share every validation, tenant scope,
//! queue, audit entry and error of the REST API; no turn or session logic
//! is duplicated here.

use claude_code_api_core::error::ServiceError;
use std::sync::Arc;

use rmcp::model::{JsonObject, Resource, ResourceTemplate, Tool};
use serde_json::{json, Map, Value};

use crate::api::envelope::{self, Page, PageQuery};
use crate::api::views::chat::WaitingForApproval;
use crate::api::views::history::HistoryEntry;
use crate::api::views::sessions::{session_view, session_views, CreateSession, SessionData};
use crate::error::ApiError;
use claude_code_api_core::domain::role::Role;
use claude_code_api_core::domain::session::TurnOverrides;
use claude_code_api_core::domain::turn::TurnRequest;
use claude_code_api_core::files::FilesError;
use claude_code_api_core::security::paths;
use claude_code_api_core::services::sessions::{self, validate_name, SessionStatus};
use claude_code_api_core::services::turns::{self, Answer, Reply, Submitted, Target};
use claude_code_api_core::services::{files, jobs, Requester, Services};

/// Tools that change something: not a viewer's.
const WRITING_TOOLS: [&str; 4] = ["create_session", "chat", "delete_session", "create_job"];

/// `tools/list` for a caller of `role`: a viewer is shown the tools that read.
pub fn definitions_for(role: Role) -> Vec<Tool> {
    definitions()
        .into_iter()
        .filter(|tool| role > Role::Viewer || !WRITING_TOOLS.contains(&tool.name.as_ref()))
        .collect()
}

/// `tools/list`: name, description, input schema.
pub fn definitions() -> Vec<Tool> {
    let s = |t: &str, d: &str| json!({"type": t, "description": d});
    let name = s(
        "string",
        "Session name: 1-128 of A-Z a-z 0-9 . _ -, not starting with '.'",
    );
    let page = s("integer", "Page, from 1");
    let limit = s("integer", "Items per page, 1-100");
    let tools = [
        (
            "create_session",
            "Create a named session with its own workspace.",
            json!({"name": name, "template": s("string", "Agent template name"),
                   "model": s("string", "Model"), "system_prompt": s("string", "Replaces the system prompt"),
                   "append_system_prompt": s("string", "Appended to the system prompt"),
                   "max_turns": s("integer", "Model round-trips per turn"),
                   "permission_mode": s("string", "default, acceptEdits, plan, bypassPermissions or dontAsk")}),
            vec!["name"],
        ),
        (
            "chat",
            "Send a message to a session's agent and wait for its answer.",
            json!({"session": name, "message": s("string", "The prompt"),
                   "model": s("string", "Model for this turn only")}),
            vec!["session", "message"],
        ),
        (
            "list_sessions",
            "List the caller's sessions.",
            json!({"page": page, "limit": limit}),
            vec![],
        ),
        (
            "get_session",
            "A session's settings, workspace and totals.",
            json!({"name": name}),
            vec!["name"],
        ),
        (
            "delete_session",
            "Delete a session, its history and the workspace it created.",
            json!({"name": name}),
            vec!["name"],
        ),
        (
            "get_history",
            "A session's messages, oldest first.",
            json!({"session": name, "page": page, "limit": limit}),
            vec!["session"],
        ),
        (
            "list_files",
            "Files in a session's workspace.",
            json!({"session": name, "path": s("string", "Folder, relative to the workspace"),
                   "recursive": s("boolean", "Descend into folders")}),
            vec!["session"],
        ),
        (
            "create_job",
            "Queue a message as an async job; optionally POST the result to a webhook.",
            json!({"session": name, "message": s("string", "The prompt"),
                   "webhook_url": s("string", "https URL told when the job ends"),
                   "model": s("string", "Model for this turn only")}),
            vec!["session", "message"],
        ),
        (
            "get_job",
            "A job's status and result.",
            json!({"session": name, "id": s("string", "Job id")}),
            vec!["session", "id"],
        ),
    ];
    tools
        .into_iter()
        .map(|(name, description, properties, required)| {
            let schema = json!({"type": "object", "properties": properties, "required": required});
            let schema: JsonObject = match schema {
                Value::Object(fields) => fields,
                _ => JsonObject::new(),
            };
            Tool::new(name, description, Arc::new(schema))
        })
        .collect()
}

fn text(args: &Map<String, Value>, key: &str) -> Result<String, ToolError> {
    args.get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ToolError::Arguments(format!("argument {key:?} (a string) is required")))
}

fn optional_text(args: &Map<String, Value>, key: &str) -> Result<Option<String>, ToolError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ToolError::Arguments(format!(
            "argument {key:?} must be a string"
        ))),
    }
}

fn session(args: &Map<String, Value>, key: &str) -> Result<String, ToolError> {
    let name = text(args, key)?;
    validate_name(&name).map_err(|e| ToolError::Arguments(e.to_string()))?;
    Ok(name)
}

/// `page`, `limit`, … as query parameters when given.
fn query(args: &Map<String, Value>, keys: &[&str]) -> Vec<(String, String)> {
    keys.iter()
        .filter_map(|k| {
            let v = args.get(*k)?;
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Null => return None,
                other => other.to_string(),
            };
            Some(((*k).to_owned(), v))
        })
        .collect()
}

/// Only these fields of `args`, as a JSON body.
fn body(args: &Map<String, Value>, keys: &[&str]) -> Value {
    let fields: Map<String, Value> = keys
        .iter()
        .filter_map(|k| {
            args.get(*k)
                .filter(|v| !v.is_null())
                .map(|v| ((*k).to_owned(), v.clone()))
        })
        .collect();
    Value::Object(fields)
}

/// Why a `tools/call` gives no result.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("unknown tool {0:?}")]
    Unknown(String),
    /// The arguments do not make a call; the message is for the caller.
    #[error("{0}")]
    Arguments(String),
    /// The service refused or failed: its problem document is the result.
    #[error("{0}")]
    Refused(ServiceError),
}

impl From<ServiceError> for ToolError {
    fn from(e: ServiceError) -> Self {
        ToolError::Refused(e)
    }
}

impl From<ApiError> for ToolError {
    fn from(e: ApiError) -> Self {
        ToolError::Refused(e.0)
    }
}

/// A paging of `args` (`page`, `limit`), validated as the REST query is.
fn page(args: &Map<String, Value>) -> Result<Page, ToolError> {
    let field = |key: &str| query(args, &[key]).pop().map(|(_, v)| v);
    PageQuery {
        page: field("page"),
        limit: field("limit"),
    }
    .validate()
    .map_err(ToolError::from)
}

/// A turn from a tool's `message` and `model`.
fn turn_request(args: &Map<String, Value>) -> Result<TurnRequest, ToolError> {
    Ok(TurnRequest::text(
        text(args, "message")?,
        TurnOverrides {
            model: optional_text(args, "model")?,
            ..TurnOverrides::default()
        },
    ))
}

fn data(value: impl serde::Serialize) -> Result<Value, ToolError> {
    Ok(json!({ "data": serde_json::to_value(value).map_err(ServiceError::internal)? }))
}

fn paged(value: impl serde::Serialize, page: &Page, total: i64) -> Result<Value, ToolError> {
    let mut out = data(value)?;
    out["pagination"] =
        serde_json::to_value(envelope::pagination(page, total)).map_err(ServiceError::internal)?;
    Ok(out)
}

/// Runs a tool as its caller through the services (the same rules, tenant
/// scope and audit as the REST routes): its result's structured content.
pub async fn run(
    services: &Services,
    who: &Requester,
    tool: &str,
    args: &Map<String, Value>,
) -> Result<Value, ToolError> {
    let arguments = ToolError::Arguments;
    if WRITING_TOOLS.contains(&tool) {
        who.require(Role::Member)?;
    }
    match tool {
        "create_session" => {
            let body = body(
                args,
                &[
                    "name",
                    "template",
                    "model",
                    "system_prompt",
                    "append_system_prompt",
                    "max_turns",
                    "permission_mode",
                ],
            );
            let request: CreateSession = serde_json::from_value(body)
                .map_err(|e| arguments(format!("invalid arguments: {e}")))?;
            let new = request.into_new_session()?;
            let row = sessions::create(services, who, new).await?;
            data(SessionData::new(
                row,
                SessionStatus::Pending,
                &services.settings,
            ))
        }
        "list_sessions" => {
            let page = page(args)?;
            let (rows, total) = sessions::list(services, who, page.offset(), page.limit).await?;
            paged(session_views(services, who, rows).await?, &page, total)
        }
        "get_session" => {
            let row = sessions::load(services, who, &session(args, "name")?).await?;
            data(session_view(services, who, row).await?)
        }
        "delete_session" => {
            sessions::delete(services, who, &session(args, "name")?).await?;
            Ok(json!({ "status": 204 }))
        }
        "chat" => {
            let name = session(args, "session")?;
            let request = turn_request(args)?;
            let submitted =
                turns::submit(services, who, Target::Named(&name), request, Reply::Whole).await?;
            match turns::answer(services, submitted).await? {
                Answer::Done(response) => data(response),
                Answer::Waiting { approval_id } => {
                    data(WaitingForApproval::new(&name, approval_id))
                }
            }
        }
        "get_history" => {
            let page = page(args)?;
            let name = session(args, "session")?;
            let (rows, total, _) =
                sessions::history(services, who, &name, page.offset(), page.limit).await?;
            let entries: Vec<HistoryEntry> = rows.into_iter().map(HistoryEntry::from).collect();
            paged(entries, &page, total)
        }
        "list_files" => {
            let name = session(args, "session")?;
            let path = optional_text(args, "path")?.unwrap_or_default();
            let rel = paths::parse_relative(&path)
                .map_err(FilesError::from)
                .map_err(ApiError::from)?;
            let recursive = match query(args, &["recursive"]).pop() {
                None => false,
                Some((_, v)) if v == "true" => true,
                Some((_, v)) if v == "false" => false,
                Some(_) => return Err(arguments("recursive must be true or false".into())),
            };
            let entries = files::list(services, who, &name, rel, recursive, false).await?;
            let page = page(&Map::new())?;
            let total = entries.len() as i64;
            let shown: Vec<_> = entries
                .into_iter()
                .take(usize::try_from(page.limit).unwrap_or(0))
                .collect();
            paged(shown, &page, total)
        }
        "create_job" => {
            let name = session(args, "session")?;
            let request = turn_request(args)?;
            let reply = Reply::Job {
                webhook_url: optional_text(args, "webhook_url")?,
                job_id: None,
            };
            match turns::submit(services, who, Target::Named(&name), request, reply).await? {
                Submitted::Job { job, session } => data(job.data(&session.name)),
                _ => Err(ApiError::from(ServiceError::internal("a job was asked for")).into()),
            }
        }
        "get_job" => {
            let id = text(args, "id")?;
            if id.is_empty()
                || id.len() > 64
                || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return Err(arguments(format!("invalid job id {id:?}")));
            }
            let name = session(args, "session")?;
            let job = jobs::get(services, who, &name, &id).await?;
            data(job.data(&name))
        }
        _ => Err(ToolError::Unknown(tool.to_owned())),
    }
}

/// `resources/list`: the session list, the template list, and one entry per session.
pub fn resource_list(sessions: &[Value]) -> Vec<Resource> {
    let json = "application/json";
    let mut resources = vec![
        Resource::new("cca://sessions", "sessions")
            .with_title("Sessions")
            .with_description("The caller's sessions")
            .with_mime_type(json),
        Resource::new("cca://templates", "templates")
            .with_title("Agent templates")
            .with_description("Templates sessions can be created from")
            .with_mime_type(json),
    ];
    resources.extend(sessions.iter().filter_map(|s| {
        let name = s["name"].as_str()?;
        Some(
            Resource::new(format!("cca://sessions/{name}"), name)
                .with_description("A session")
                .with_mime_type(json),
        )
    }));
    resources
}

/// `resources/templates/list`.
pub fn resource_templates() -> Vec<ResourceTemplate> {
    vec![ResourceTemplate::new("cca://sessions/{name}", "session")
        .with_description("A session by name")
        .with_mime_type("application/json")]
}

/// What a resource URI reads: its JSON, or `None` for no such resource.
pub async fn read(
    services: &Services,
    who: &Requester,
    uri: &str,
) -> Result<Option<Value>, ApiError> {
    match uri.trim_end_matches('/').strip_prefix("cca://") {
        Some("sessions") => {
            let (rows, _) = sessions::list(services, who, 0, 100).await?;
            let views = session_views(services, who, rows).await?;
            Ok(Some(
                serde_json::to_value(views).map_err(ServiceError::internal)?,
            ))
        }
        Some("templates") => {
            let all = crate::api::views::templates::listing(&services.templates, &who.caller);
            Ok(Some(
                serde_json::to_value(all).map_err(ServiceError::internal)?,
            ))
        }
        Some(rest) => match rest.strip_prefix("sessions/") {
            Some(name) if validate_name(name).is_ok() => {
                match sessions::load(services, who, name).await {
                    Ok(row) => Ok(Some(
                        serde_json::to_value(session_view(services, who, row).await?)
                            .map_err(ServiceError::internal)?,
                    )),
                    Err(ServiceError::NotFound(_)) => Ok(None),
                    Err(e) => Err(e.into()),
                }
            }
            _ => Ok(None),
        },
        None => Ok(None),
    }
}
