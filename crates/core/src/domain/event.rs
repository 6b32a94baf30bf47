//! The events of a session's turns: what the session actor emits, what the
//! SSE streams write, what replay reads back from storage and what the
//! OpenAPI document shows. One type, one contract. The stored form is the
//! wire form: an event's name is stored as its `kind`, its data as the
//! `payload`, and `from_stored` reads rows written by any version.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::answer::ChatResponse;
use super::approval::ApprovalView;
use super::problem::Problem;

/// An event of a session's turns, tagged by its name (the SSE `event:`
/// line) with its data (the SSE `data:` line). The large payloads are
/// boxed: events are queued and cloned per subscriber.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum StreamEvent {
    TurnStarted(TurnStarted),
    Delta(TextDelta),
    Assistant(AssistantText),
    Tool(ToolCall),
    ToolResult(ToolResult),
    PermissionRequest(Box<ApprovalView>),
    PermissionResolved(PermissionResolved),
    Done(Box<ChatResponse>),
    TurnInterrupted(Box<ChatResponse>),
    Error(Box<TurnProblem>),
    JobStatus(JobStatus),
    GitCommit(GitCommit),
    GitPush(GitPush),
    PullRequestOpened(PullRequestOpened),
}

/// One event of the catalogue: its name, what it means, the schema of its
/// data, and whether a chat's own stream carries it.
pub struct EventKind {
    pub name: &'static str,
    pub description: &'static str,
    pub data_schema: &'static str,
    pub in_chat_stream: bool,
}

/// Every event, in the order a turn produces them.
pub const EVENT_KINDS: &[EventKind] = &[
    EventKind {
        name: "turn_started",
        description: "A turn began (a chat's, or the job's named by `job_id`)",
        data_schema: "TurnStarted",
        in_chat_stream: true,
    },
    EventKind {
        name: "delta",
        description: "A piece of the answer's text, as the model streams it",
        data_schema: "TextDelta",
        in_chat_stream: true,
    },
    EventKind {
        name: "assistant",
        description: "A finished text block of the answer",
        data_schema: "AssistantText",
        in_chat_stream: true,
    },
    EventKind {
        name: "tool",
        description: "The agent calls a tool",
        data_schema: "ToolCall",
        in_chat_stream: true,
    },
    EventKind {
        name: "tool_result",
        description: "A tool call's result; `content` is as the CLI reported it",
        data_schema: "ToolResult",
        in_chat_stream: true,
    },
    EventKind {
        name: "permission_request",
        description: "A tool call waits on an approval (`POST` its `url`)",
        data_schema: "ApprovalView",
        in_chat_stream: true,
    },
    EventKind {
        name: "permission_resolved",
        description: "An approval was decided, expired or withdrawn; or a call was denied by \
                      the server's policy (`by: policy`, `id: null`)",
        data_schema: "PermissionResolved",
        in_chat_stream: true,
    },
    EventKind {
        name: "done",
        description: "The turn's answer, as `/chat` returns it; the stream of a `chat/stream` ends",
        data_schema: "ChatResponse",
        in_chat_stream: true,
    },
    EventKind {
        name: "turn_interrupted",
        description: "The turn was interrupted: its partial answer",
        data_schema: "ChatResponse",
        in_chat_stream: true,
    },
    EventKind {
        name: "error",
        description: "The turn failed: a problem document; the stream of a `chat/stream` ends",
        data_schema: "TurnProblem",
        in_chat_stream: true,
    },
    EventKind {
        name: "job_status",
        description: "A job's state changed",
        data_schema: "JobStatus",
        in_chat_stream: false,
    },
    EventKind {
        name: "git_commit",
        description: "The server committed the session's worktree",
        data_schema: "GitCommit",
        in_chat_stream: false,
    },
    EventKind {
        name: "git_push",
        description: "The server pushed the session's branch to its repository",
        data_schema: "GitPush",
        in_chat_stream: false,
    },
    EventKind {
        name: "pull_request_opened",
        description: "A pull request (merge request) was opened for the session's branch",
        data_schema: "PullRequestOpened",
        in_chat_stream: false,
    },
];

/// The names of the events that end a turn.
pub const TURN_ENDS: [&str; 3] = ["done", "error", "turn_interrupted"];

impl StreamEvent {
    /// The event's name: its SSE `event:` line and its stored `kind`.
    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::TurnStarted(_) => "turn_started",
            StreamEvent::Delta(_) => "delta",
            StreamEvent::Assistant(_) => "assistant",
            StreamEvent::Tool(_) => "tool",
            StreamEvent::ToolResult(_) => "tool_result",
            StreamEvent::PermissionRequest(_) => "permission_request",
            StreamEvent::PermissionResolved(_) => "permission_resolved",
            StreamEvent::Done(_) => "done",
            StreamEvent::TurnInterrupted(_) => "turn_interrupted",
            StreamEvent::Error(_) => "error",
            StreamEvent::JobStatus(_) => "job_status",
            StreamEvent::GitCommit(_) => "git_commit",
            StreamEvent::GitPush(_) => "git_push",
            StreamEvent::PullRequestOpened(_) => "pull_request_opened",
        }
    }

    /// The event's data as JSON text: its SSE `data:` line and its stored
    /// `payload`. Each payload is serialized on its own, once per use: no
    /// tagged document is built and taken apart on the way.
    pub fn data_json(&self) -> String {
        let encoded = match self {
            StreamEvent::TurnStarted(d) => serde_json::to_string(d),
            StreamEvent::Delta(d) => serde_json::to_string(d),
            StreamEvent::Assistant(d) => serde_json::to_string(d),
            StreamEvent::Tool(d) => serde_json::to_string(d),
            StreamEvent::ToolResult(d) => serde_json::to_string(d),
            StreamEvent::PermissionRequest(d) => serde_json::to_string(d),
            StreamEvent::PermissionResolved(d) => serde_json::to_string(d),
            StreamEvent::Done(d) | StreamEvent::TurnInterrupted(d) => serde_json::to_string(d),
            StreamEvent::Error(d) => serde_json::to_string(d),
            StreamEvent::JobStatus(d) => serde_json::to_string(d),
            StreamEvent::GitCommit(d) => serde_json::to_string(d),
            StreamEvent::GitPush(d) => serde_json::to_string(d),
            StreamEvent::PullRequestOpened(d) => serde_json::to_string(d),
        };
        encoded.unwrap_or_else(|_| "null".to_owned())
    }

    /// An event as it was stored (`kind`, `payload`).
    pub fn from_stored(kind: &str, payload: &str) -> Result<StreamEvent, serde_json::Error> {
        let data: Value = serde_json::from_str(payload)?;
        serde_json::from_value(serde_json::json!({"event": kind, "data": data}))
    }
}

/// An event with its place in the session's stream (`seq`, the SSE `id:`).
#[derive(Debug, Clone, PartialEq)]
pub struct NumberedEvent {
    pub seq: i64,
    pub event: StreamEvent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TurnStarted {
    /// The job this turn runs, if a job's.
    pub job_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TextDelta {
    pub text: String,
}

/// A finished text block. `content` repeats `text` and `tool_name` is
/// `null`: the members clients of the original read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AssistantText {
    pub text: String,
    pub content: String,
    pub tool_name: Option<String>,
}

impl AssistantText {
    pub fn new(text: String) -> AssistantText {
        AssistantText {
            content: text.clone(),
            text,
            tool_name: None,
        }
    }
}

/// A tool call. `tool_name` repeats `name` and `content` is `null`: the
/// members clients of the original read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    #[schema(value_type = Object)]
    pub input: Value,
    pub tool_name: String,
    pub content: Option<String>,
}

impl ToolCall {
    pub fn new(id: String, name: String, input: Value) -> ToolCall {
        ToolCall {
            id,
            tool_name: name.clone(),
            name,
            input,
            content: None,
        }
    }
}

/// A tool call's result, as the CLI reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ToolResult {
    pub tool_use_id: String,
    /// Text, or the content blocks the tool returned.
    #[schema(value_type = Object)]
    pub content: Value,
    pub is_error: bool,
}

/// How an approval ended; or a call the server's policy denied without
/// asking (`id: null`, `by: policy`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum PermissionResolved {
    Settled {
        id: String,
        /// `allowed`, `denied`, `expired` or `cancelled`.
        status: String,
        /// What the CLI was answered, when decided.
        #[schema(value_type = Option<Object>)]
        decision: Option<Value>,
    },
    DeniedByPolicy {
        /// Always `null`: there was no approval.
        id: Option<String>,
        tool: String,
        /// `denied`.
        status: String,
        /// `policy`.
        by: String,
        message: String,
    },
}

/// A failed turn: its problem document, with `detail` also as `error`
/// (the member clients of the original read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TurnProblem {
    #[serde(flatten)]
    pub problem: Problem,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobStatus {
    pub job_id: String,
    /// `queued`, `running`, `done`, `failed`, `cancelled` or `interrupted`.
    pub status: String,
    /// Only in a final status (`null` when it ended well).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schema(value_type = Option<String>)]
    pub error: Option<Option<String>>,
}

/// A member that is present, even as `null` (`Some(None)`), as against one
/// that is absent (`None`, by `default`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    impl StreamEvent {
        fn data(&self) -> Value {
            serde_json::from_str(&self.data_json()).unwrap()
        }
    }

    /// One event of each kind, with the data the server stores for it.
    fn one_of_each() -> Vec<(&'static str, Value)> {
        let answer = json!({
            "session_id": "s", "cli_session_id": null, "content": "hi",
            "structured_output": null, "cost": 0.001, "cost_micros": 1000,
            "duration_ms": 5, "num_turns": 1, "tools_used": [{"name": "Bash", "input": {}}],
            "is_error": false, "stop_reason": "end_turn", "usage": {"input_tokens": 3},
            "interrupted": false,
        });
        vec![
            ("turn_started", json!({"job_id": null})),
            ("delta", json!({"text": "Hel"})),
            (
                "assistant",
                json!({"text": "Hello", "content": "Hello", "tool_name": null}),
            ),
            (
                "tool",
                json!({"id": "t1", "name": "Bash", "input": {"command": "ls"},
                            "tool_name": "Bash", "content": null}),
            ),
            (
                "tool_result",
                json!({"tool_use_id": "t1", "content": "a\nb", "is_error": false}),
            ),
            (
                "permission_request",
                json!({
                "id": "a1", "session_id": "s", "job_id": null, "tool": "Write",
                "input": {"file_path": "x"}, "suggestions": [], "status": "pending",
                "decision": null, "created_at": "2026-01-01T00:00:00.000000Z",
                "expires_at": "2026-01-01T00:10:00.000000Z",
                "url": "/api/v1/sessions/s/approvals/a1"}),
            ),
            (
                "permission_resolved",
                json!({"id": "a1", "status": "allowed",
                                            "decision": {"behavior": "allow"}}),
            ),
            (
                "permission_resolved",
                json!({"id": null, "tool": "Write", "status": "denied",
                                            "by": "policy", "message": "outside"}),
            ),
            ("done", answer.clone()),
            ("turn_interrupted", answer),
            (
                "error",
                json!({"type": "urn:claude-code-api:problem:cli-error",
                             "title": "Bad Gateway", "status": 502, "detail": "boom",
                             "error": "boom"}),
            ),
            ("job_status", json!({"job_id": "j", "status": "running"})),
            (
                "job_status",
                json!({"job_id": "j", "status": "failed", "error": "boom"}),
            ),
            (
                "job_status",
                json!({"job_id": "j", "status": "done", "error": null}),
            ),
            (
                "git_commit",
                json!({"branch": "cca/s", "commit": "abc", "message": "Fix"}),
            ),
            (
                "git_push",
                json!({"repo": "app", "branch": "cca/s", "commit": "abc"}),
            ),
            (
                "pull_request_opened",
                json!({"repo": "app", "branch": "cca/s", "base": "main", "number": 7, "url": "https://x/7"}),
            ),
        ]
    }

    #[test]
    fn every_kind_reads_back_from_its_stored_form_unchanged() {
        let cases = one_of_each();
        for kind in EVENT_KINDS {
            assert!(
                cases.iter().any(|(name, _)| *name == kind.name),
                "no case for {}",
                kind.name
            );
        }
        for (kind, data) in cases {
            let event = StreamEvent::from_stored(kind, &data.to_string())
                .unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert_eq!(event.name(), kind);
            assert_eq!(event.data(), data, "{kind} round-trips byte for byte");
            assert_eq!(
                event.data().to_string(),
                data.to_string(),
                "{kind}: member order"
            );
        }
    }

    #[test]
    fn the_catalogue_names_every_variant() {
        let names: Vec<&str> = EVENT_KINDS.iter().map(|k| k.name).collect();
        for (kind, data) in one_of_each() {
            let event = StreamEvent::from_stored(kind, &data.to_string()).unwrap();
            assert!(
                names.contains(&event.name()),
                "{} is catalogued",
                event.name()
            );
        }
        assert_eq!(names.len(), 14);
    }

    #[test]
    fn an_unknown_kind_is_an_error() {
        assert!(StreamEvent::from_stored("nonsense", "{}").is_err());
    }
}

/// `git_commit`: the server committed the worktree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GitCommit {
    pub branch: String,
    pub commit: String,
    pub message: String,
}

/// `git_push`: the branch went to the repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GitPush {
    pub repo: String,
    pub branch: String,
    pub commit: String,
}

/// `pull_request_opened`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PullRequestOpened {
    pub repo: String,
    pub branch: String,
    pub base: String,
    pub number: u64,
    /// The page a person opens.
    pub url: String,
}
