//! The MCP tools and resources, and the REST call each one becomes: a thin
//! adapter over the REST API, so tools share every validation, tenant
//! scope, queue and error of the REST routes; no turn or session logic is
//! duplicated here.

use std::sync::Arc;

use rmcp::model::{JsonObject, Resource, ResourceTemplate, Tool};
use serde_json::{json, Map, Value};

use crate::api::sessions::validate_name;

/// One REST call a tool becomes.
pub struct Call {
    pub method: reqwest::Method,
    /// Path segments after `/api/v1`, each percent-encoded on its own.
    pub segments: Vec<String>,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
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

fn text(args: &Map<String, Value>, key: &str) -> Result<String, String> {
    args.get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("argument {key:?} (a string) is required"))
}

fn session(args: &Map<String, Value>, key: &str) -> Result<String, String> {
    let name = text(args, key)?;
    validate_name(&name).map_err(|e| e.to_string())?;
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

/// Why a `tools/call` makes no REST call.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("unknown tool {0:?}")]
    Unknown(String),
    /// The arguments do not make a call; the message is for the caller.
    #[error("{0}")]
    Arguments(String),
}

/// The REST call of a tool.
pub fn call(tool: &str, args: &Map<String, Value>) -> Result<Call, ToolError> {
    rest_call(tool, args)
        .map_err(ToolError::Arguments)?
        .ok_or_else(|| ToolError::Unknown(tool.to_owned()))
}

/// The REST call of a tool (`None` for an unknown tool), or why the
/// arguments do not make one.
fn rest_call(tool: &str, args: &Map<String, Value>) -> Result<Option<Call>, String> {
    use reqwest::Method;
    let seg = |parts: &[&str]| parts.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>();
    let c = |method, segments, query, body| Call {
        method,
        segments,
        query,
        body,
    };
    Ok(Some(match tool {
        "create_session" => c(
            Method::POST,
            seg(&["sessions"]),
            vec![],
            Some(body(
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
            )),
        ),
        "list_sessions" => c(
            Method::GET,
            seg(&["sessions"]),
            query(args, &["page", "limit"]),
            None,
        ),
        "get_session" => c(
            Method::GET,
            seg(&["sessions", &session(args, "name")?]),
            vec![],
            None,
        ),
        "delete_session" => c(
            Method::DELETE,
            seg(&["sessions", &session(args, "name")?]),
            vec![],
            None,
        ),
        "chat" => c(
            Method::POST,
            seg(&["sessions", &session(args, "session")?, "chat"]),
            vec![],
            Some(body(args, &["message", "model"])),
        ),
        "get_history" => c(
            Method::GET,
            seg(&["sessions", &session(args, "session")?, "history"]),
            query(args, &["page", "limit"]),
            None,
        ),
        "list_files" => c(
            Method::GET,
            seg(&["sessions", &session(args, "session")?, "files"]),
            query(args, &["path", "recursive"]),
            None,
        ),
        "create_job" => c(
            Method::POST,
            seg(&["sessions", &session(args, "session")?, "jobs"]),
            vec![],
            Some(body(args, &["message", "webhook_url", "model"])),
        ),
        "get_job" => {
            let id = text(args, "id")?;
            if id.is_empty()
                || id.len() > 64
                || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return Err(format!("invalid job id {id:?}"));
            }
            c(
                Method::GET,
                seg(&["sessions", &session(args, "session")?, "jobs", &id]),
                vec![],
                None,
            )
        }
        _ => return Ok(None),
    }))
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

/// The REST call behind a resource URI.
pub fn resource_call(uri: &str) -> Result<Call, String> {
    let get = |segments: Vec<String>| Call {
        method: reqwest::Method::GET,
        segments,
        query: vec![("limit".into(), "100".into())],
        body: None,
    };
    match uri.trim_end_matches('/').strip_prefix("cca://") {
        Some("sessions") => Ok(get(vec!["sessions".into()])),
        Some("templates") => Ok(get(vec!["templates".into()])),
        Some(rest) => match rest.strip_prefix("sessions/") {
            Some(name) if validate_name(name).is_ok() => {
                Ok(get(vec!["sessions".into(), name.to_owned()]))
            }
            _ => Err(format!("unknown resource {uri:?}")),
        },
        None => Err(format!("unknown resource {uri:?}")),
    }
}
