//! stream-json lines, both ways. Parsing is lenient (every field optional,
//! unknown types kept as `Other`) because the CLI adds fields between versions.

use serde::Serialize;
use serde_json::{json, Value};

/// One line the CLI wrote, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum CliMessage {
    /// `system/init`: first line of every turn.
    Init {
        session_id: String,
        model: String,
        /// `[{name, status}]` of the MCP servers, as the CLI sees them.
        mcp_servers: Vec<Value>,
        /// The MCP tools offered (`mcp__server__tool`).
        mcp_tools: Vec<String>,
    },
    /// A finished content block of the model's answer.
    Assistant {
        blocks: Vec<Block>,
        /// Set on synthetic messages for API failures.
        error: Option<String>,
        /// The message's `uuid`: its entry in the transcript.
        uuid: Option<String>,
    },
    /// Tool results the CLI feeds back to the model.
    ToolResults(Vec<ToolResult>),
    /// A token of text from a partial message.
    TextDelta(String),
    /// End of the turn: exactly one per turn.
    Result(Box<TurnResult>),
    /// Answer to one of the host's control requests.
    ControlResponse {
        request_id: String,
        outcome: Result<Value, String>,
    },
    /// The CLI asks the host something (permission, hook, MCP).
    ControlRequest {
        request_id: String,
        subtype: String,
        request: Value,
    },
    /// The CLI withdraws one of its own requests.
    ControlCancel { request_id: String },
    /// `transcript_mirror` (with `--session-mirror`): entries the CLI
    /// appended to its transcript file. Stored, never shown to clients.
    TranscriptMirror(Mirror),
    /// Anything else (status, api_retry, other stream events…), by type.
    Other { kind: String },
}

/// One `transcript_mirror` frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Mirror {
    /// The transcript file the entries were appended to.
    pub file_path: String,
    pub entries: Vec<MirrorEntry>,
}

impl Mirror {
    /// The conversation the file belongs to: its name without `.jsonl`.
    pub fn cli_session_id(&self) -> Option<&str> {
        std::path::Path::new(&self.file_path)
            .file_stem()?
            .to_str()
            .filter(|id| !id.is_empty())
    }
}

/// One transcript entry: the line the CLI wrote to its file for it, and the
/// key it is stored once under.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorEntry {
    /// The entry's `uuid`; for entries without one (`queue-operation`,
    /// `last-prompt`, …) the SHA-256 of the line, in hex.
    pub key: String,
    /// The entry as one JSON line, without the newline. serde_json keeps the
    /// keys' order (its `preserve_order` feature is on in this build), so
    /// this is byte for byte the line of the CLI's file.
    pub line: String,
}

impl MirrorEntry {
    /// The entry `entry` as stored: its line and its key.
    pub fn of(entry: &Value) -> MirrorEntry {
        let line = entry.to_string();
        let key = match entry.get("uuid").and_then(Value::as_str) {
            Some(uuid) if !uuid.is_empty() => uuid.to_owned(),
            _ => {
                use sha2::{Digest, Sha256};
                Sha256::digest(line.as_bytes())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect()
            }
        };
        MirrorEntry { key, line }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    Other,
}

/// A tool's result, as the `tool_result` event carries it.
pub use crate::domain::event::ToolResult;

/// The `result` line of a turn.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct TurnResult {
    pub subtype: String,
    pub is_error: bool,
    /// Final text (on API failures: the error prose).
    pub result: Option<String>,
    /// Present on error subtypes.
    pub errors: Vec<String>,
    /// Cumulative for the process: charge the delta.
    pub total_cost_usd: f64,
    pub usage: Value,
    pub num_turns: i64,
    pub duration_ms: i64,
    pub stop_reason: Option<String>,
    pub session_id: Option<String>,
    pub api_error_status: Option<i64>,
    pub permission_denials: Value,
    /// With `--json-schema`: the object the model returned.
    pub structured_output: Option<Value>,
}

impl TurnResult {
    pub fn input_tokens(&self) -> i64 {
        [
            "input_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        ]
        .iter()
        .filter_map(|k| self.usage.get(*k).and_then(Value::as_i64))
        .sum()
    }

    pub fn output_tokens(&self) -> i64 {
        self.usage
            .get("output_tokens")
            .and_then(Value::as_i64)
            .unwrap_or(0)
    }

    /// What to tell a client about a failed turn.
    pub fn error_text(&self) -> String {
        if let Some(text) = self.result.as_deref().filter(|t| !t.is_empty()) {
            return text.to_owned();
        }
        if !self.errors.is_empty() {
            return self.errors.join("; ");
        }
        format!("the CLI ended the turn with {}", self.subtype)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("not a JSON object line: {0}")]
pub struct ParseError(String);

/// Classifies one stdout line. Blank lines are `Ok(None)`.
pub fn parse_line(line: &str) -> Result<Option<CliMessage>, ParseError> {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    let value: Value = serde_json::from_str(trimmed).map_err(|e| ParseError(e.to_string()))?;
    if !value.is_object() {
        return Err(ParseError("not an object".into()));
    }
    Ok(Some(classify(value)))
}

fn str_of(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn classify(v: Value) -> CliMessage {
    let kind = str_of(&v, "type");
    match kind.as_str() {
        "system" if v.get("subtype").and_then(Value::as_str) == Some("init") => CliMessage::Init {
            session_id: str_of(&v, "session_id"),
            model: str_of(&v, "model"),
            mcp_servers: v
                .get("mcp_servers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            mcp_tools: v
                .get("tools")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter(|t| t.starts_with("mcp__"))
                .map(str::to_owned)
                .collect(),
        },
        "assistant" => {
            let blocks = v
                .pointer("/message/content")
                .and_then(Value::as_array)
                .map(|items| items.iter().map(block).collect())
                .unwrap_or_default();
            CliMessage::Assistant {
                blocks,
                error: v.get("error").and_then(Value::as_str).map(str::to_owned),
                uuid: v.get("uuid").and_then(Value::as_str).map(str::to_owned),
            }
        }
        "user" => {
            let results = v
                .pointer("/message/content")
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
                        .map(|b| ToolResult {
                            tool_use_id: str_of(b, "tool_use_id"),
                            content: b.get("content").cloned().unwrap_or(Value::Null),
                            is_error: b.get("is_error").and_then(Value::as_bool).unwrap_or(false),
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            if results.is_empty() {
                CliMessage::Other { kind }
            } else {
                CliMessage::ToolResults(results)
            }
        }
        "stream_event" => {
            let event = v.get("event").cloned().unwrap_or(Value::Null);
            let is_text_delta = event.get("type").and_then(Value::as_str)
                == Some("content_block_delta")
                && event.pointer("/delta/type").and_then(Value::as_str) == Some("text_delta");
            match event.pointer("/delta/text").and_then(Value::as_str) {
                Some(text) if is_text_delta => CliMessage::TextDelta(text.to_owned()),
                _ => CliMessage::Other { kind },
            }
        }
        "result" => CliMessage::Result(Box::new(TurnResult {
            structured_output: v.get("structured_output").filter(|s| !s.is_null()).cloned(),
            subtype: str_of(&v, "subtype"),
            is_error: v.get("is_error").and_then(Value::as_bool).unwrap_or(false),
            result: v.get("result").and_then(Value::as_str).map(str::to_owned),
            errors: v
                .get("errors")
                .and_then(Value::as_array)
                .map(|e| {
                    e.iter()
                        .map(|x| {
                            x.as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| x.to_string())
                        })
                        .collect()
                })
                .unwrap_or_default(),
            total_cost_usd: v
                .get("total_cost_usd")
                .and_then(Value::as_f64)
                .unwrap_or(0.0),
            usage: v.get("usage").cloned().unwrap_or_else(|| json!({})),
            num_turns: v.get("num_turns").and_then(Value::as_i64).unwrap_or(0),
            duration_ms: v.get("duration_ms").and_then(Value::as_i64).unwrap_or(0),
            stop_reason: v
                .get("stop_reason")
                .and_then(Value::as_str)
                .map(str::to_owned),
            session_id: v
                .get("session_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            api_error_status: v.get("api_error_status").and_then(Value::as_i64),
            permission_denials: v
                .get("permission_denials")
                .cloned()
                .unwrap_or_else(|| json!([])),
        })),
        "control_response" => {
            let response = v.get("response").cloned().unwrap_or(Value::Null);
            let request_id = str_of(&response, "request_id");
            let outcome = if response.get("subtype").and_then(Value::as_str) == Some("error") {
                Err(str_of(&response, "error"))
            } else {
                // Some successes carry no payload at all: treat that as {}.
                Ok(response
                    .get("response")
                    .cloned()
                    .unwrap_or_else(|| json!({})))
            };
            CliMessage::ControlResponse {
                request_id,
                outcome,
            }
        }
        "control_request" => {
            let request = v.get("request").cloned().unwrap_or(Value::Null);
            CliMessage::ControlRequest {
                request_id: str_of(&v, "request_id"),
                subtype: str_of(&request, "subtype"),
                request,
            }
        }
        "control_cancel_request" => CliMessage::ControlCancel {
            request_id: str_of(&v, "request_id"),
        },
        "transcript_mirror" => CliMessage::TranscriptMirror(Mirror {
            file_path: str_of(&v, "filePath"),
            entries: v
                .get("entries")
                .and_then(Value::as_array)
                .map(|entries| entries.iter().map(MirrorEntry::of).collect())
                .unwrap_or_default(),
        }),
        _ => CliMessage::Other { kind },
    }
}

fn block(b: &Value) -> Block {
    match b.get("type").and_then(Value::as_str) {
        Some("text") => Block::Text {
            text: str_of(b, "text"),
        },
        Some("tool_use") => Block::ToolUse {
            id: str_of(b, "id"),
            name: str_of(b, "name"),
            input: b.get("input").cloned().unwrap_or(Value::Null),
        },
        _ => Block::Other,
    }
}

/// A user turn, as one line (serialised by serde, never by hand).
pub fn user_line(text: &str) -> String {
    user_message(json!(text))
}

/// A user message line with `content` (a string or content blocks).
fn user_message(content: Value) -> String {
    json!({
        "type": "user",
        "message": {"role": "user", "content": content},
        "parent_tool_use_id": null,
        "session_id": "",
    })
    .to_string()
}

/// A user message of attachments (first, as the model reads them best)
/// and text; plain text when there are no attachments.
pub fn user_line_with(text: &str, attachments: &[crate::domain::attachment::Attachment]) -> String {
    if attachments.is_empty() {
        return user_line(text);
    }
    let mut content: Vec<Value> = attachments.iter().map(|a| a.content_block()).collect();
    if !text.trim().is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    user_message(Value::Array(content))
}

/// The `initialize` control request: no hooks; the session's subagents
/// and the MCP servers the server relays.
pub fn initialize(spec: &crate::spec::LaunchSpec) -> Value {
    let mut request = json!({"subtype": "initialize", "hooks": null});
    if !spec.agents.is_empty() {
        request["agents"] = json!(spec.agents);
    }
    let relayed = crate::domain::mcp::relayed_names(&spec.mcp_servers);
    if !relayed.is_empty() {
        request["sdkMcpServers"] = json!(relayed);
    }
    request
}

/// A host → CLI control request.
pub fn control_request_line(request_id: &str, request: Value) -> String {
    json!({"type": "control_request", "request_id": request_id, "request": request}).to_string()
}

/// A host → CLI success answer to one of the CLI's requests.
pub fn control_success_line(request_id: &str, response: Value) -> String {
    json!({
        "type": "control_response",
        "response": {"subtype": "success", "request_id": request_id, "response": response},
    })
    .to_string()
}

/// A host → CLI error answer to one of the CLI's requests.
pub fn control_error_line(request_id: &str, error: &str) -> String {
    json!({
        "type": "control_response",
        "response": {"subtype": "error", "request_id": request_id, "error": error},
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_documented_lines() {
        let init = r#"{"type":"system","subtype":"init","cwd":"/srv/ws","session_id":"6ce7","tools":[],"model":"claude-opus-4-8"}"#;
        assert_eq!(
            parse_line(init).unwrap(),
            Some(CliMessage::Init {
                session_id: "6ce7".into(),
                model: "claude-opus-4-8".into(),
                mcp_servers: vec![],
                mcp_tools: vec![],
            })
        );
        let tool = r#"{"type":"assistant","message":{"content":[{"type":"tool_use","id":"toolu_w4","name":"Write","input":{"file_path":"hello.py"}}]}}"#;
        match parse_line(tool).unwrap() {
            Some(CliMessage::Assistant { blocks, error, .. }) => {
                assert_eq!(error, None);
                assert_eq!(
                    blocks,
                    vec![Block::ToolUse {
                        id: "toolu_w4".into(),
                        name: "Write".into(),
                        input: json!({"file_path": "hello.py"})
                    }]
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        let delta = r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}}"#;
        assert_eq!(
            parse_line(delta).unwrap(),
            Some(CliMessage::TextDelta("Hel".into()))
        );
        let json_delta = r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{"}}}"#;
        assert!(matches!(
            parse_line(json_delta).unwrap(),
            Some(CliMessage::Other { .. })
        ));
    }

    #[test]
    fn result_fields_and_tokens() {
        let line = r#"{"type":"result","subtype":"success","is_error":false,"duration_ms":193,"num_turns":1,"result":"Hello","stop_reason":"end_turn","session_id":"s","total_cost_usd":0.000235,"usage":{"input_tokens":12,"cache_creation_input_tokens":3,"cache_read_input_tokens":0,"output_tokens":7},"permission_denials":[]}"#;
        let Some(CliMessage::Result(r)) = parse_line(line).unwrap() else {
            panic!("not a result")
        };
        assert_eq!(r.result.as_deref(), Some("Hello"));
        assert_eq!(r.total_cost_usd, 0.000235);
        assert_eq!(r.input_tokens(), 15);
        assert_eq!(r.output_tokens(), 7);
        assert!(!r.is_error);
    }

    #[test]
    fn error_results_explain_themselves() {
        let line = r#"{"type":"result","subtype":"error_during_execution","is_error":true,"errors":["No conversation found with session ID: x"]}"#;
        let Some(CliMessage::Result(r)) = parse_line(line).unwrap() else {
            panic!("not a result")
        };
        assert_eq!(r.error_text(), "No conversation found with session ID: x");
    }

    #[test]
    fn control_responses_with_and_without_payload() {
        let ok =
            r#"{"type":"control_response","response":{"subtype":"success","request_id":"req_2"}}"#;
        assert_eq!(
            parse_line(ok).unwrap(),
            Some(CliMessage::ControlResponse {
                request_id: "req_2".into(),
                outcome: Ok(json!({}))
            })
        );
        let err = r#"{"type":"control_response","response":{"subtype":"error","request_id":"r","error":"nope"}}"#;
        assert_eq!(
            parse_line(err).unwrap(),
            Some(CliMessage::ControlResponse {
                request_id: "r".into(),
                outcome: Err("nope".into())
            })
        );
    }

    #[test]
    fn garbage_is_an_error_and_blank_is_nothing() {
        assert!(parse_line("this is not json").is_err());
        assert!(parse_line("[1,2]").is_err());
        assert_eq!(parse_line("   ").unwrap(), None);
    }

    #[test]
    fn user_text_is_escaped_by_the_encoder() {
        let line = user_line("quote \" and\nnewline");
        assert!(!line.contains('\n'));
        let back: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["message"]["content"], "quote \" and\nnewline");
    }

    /// Parses a transcript recorded from the real CLI (see tests/fixtures).
    fn fixture(name: &str) -> Vec<CliMessage> {
        let path = format!(
            "{}/../../tests/fixtures/cli-2.1.197/{name}.jsonl",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).expect("fixture exists");
        text.lines()
            .filter_map(|line| parse_line(line).expect("every real line parses"))
            .collect()
    }

    fn results(messages: &[CliMessage]) -> Vec<&TurnResult> {
        messages
            .iter()
            .filter_map(|m| match m {
                CliMessage::Result(r) => Some(r.as_ref()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn real_text_turn() {
        let messages = fixture("text_turn");
        assert!(
            matches!(&messages[0], CliMessage::ControlResponse { request_id, outcome: Ok(_) } if request_id == "req_1")
        );
        assert!(messages
            .iter()
            .any(|m| matches!(m, CliMessage::Init { session_id, .. } if !session_id.is_empty())));
        let deltas: String = messages
            .iter()
            .filter_map(|m| match m {
                CliMessage::TextDelta(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        let results = results(&messages);
        assert_eq!(results.len(), 1);
        assert!(!results[0].is_error);
        assert_eq!(Some(deltas.as_str()), results[0].result.as_deref());
        assert!(results[0].total_cost_usd > 0.0);
        assert!(results[0].output_tokens() > 0);
    }

    #[test]
    fn real_write_tool_turn() {
        let messages = fixture("write_tool_turn");
        let tool = messages.iter().find_map(|m| match m {
            CliMessage::Assistant { blocks, .. } => blocks.iter().find_map(|b| match b {
                Block::ToolUse { name, input, .. } => Some((name.clone(), input.clone())),
                _ => None,
            }),
            _ => None,
        });
        let (name, input) = tool.expect("a tool_use block");
        assert_eq!(name, "Write");
        assert!(input["file_path"].is_string());
        assert!(messages
            .iter()
            .any(|m| matches!(m, CliMessage::ToolResults(r) if !r[0].is_error)));
        let results = results(&messages);
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].num_turns, 2);
    }

    #[test]
    fn real_api_error_and_interrupt() {
        let error = fixture("api_error_500");
        let r = results(&error);
        assert_eq!(r.len(), 1);
        assert!(r[0].is_error);
        assert_eq!(r[0].api_error_status, Some(500));
        assert!(r[0].error_text().contains("500"));

        let interrupted = fixture("interrupt_during_stream");
        let r = results(&interrupted);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].subtype, "error_during_execution");
        assert!(interrupted.iter().any(|m| matches!(m, CliMessage::ControlResponse { request_id, outcome: Ok(_) } if request_id == "req_2")));
    }

    #[test]
    fn real_mirror_frames_are_the_transcript_file() {
        let messages = fixture("session_mirror");
        let mirrors: Vec<&Mirror> = messages
            .iter()
            .filter_map(|m| match m {
                CliMessage::TranscriptMirror(mirror) => Some(mirror),
                _ => None,
            })
            .collect();
        assert_eq!(mirrors.len(), 3, "one per turn, one at the end");
        assert!(mirrors
            .iter()
            .all(|m| m.cli_session_id() == Some("6ce7a1b0-0000-4000-8000-000000000001")));
        let path = format!(
            "{}/../../tests/fixtures/cli-2.1.197/session_mirror.transcript.jsonl",
            env!("CARGO_MANIFEST_DIR")
        );
        let file = std::fs::read_to_string(&path).expect("fixture exists");
        let lines: Vec<&str> = mirrors
            .iter()
            .flat_map(|m| m.entries.iter().map(|e| e.line.as_str()))
            .collect();
        assert_eq!(lines, file.lines().collect::<Vec<_>>());
        // Entries with a uuid are keyed by it, the others by their line's hash.
        let first = &mirrors[0].entries;
        assert!(first
            .iter()
            .any(|e| e.line.contains(&format!("\"uuid\":\"{}\"", e.key))));
        let queued = first
            .iter()
            .find(|e| e.line.starts_with(r#"{"type":"queue-operation""#))
            .expect("a queue-operation entry");
        assert_eq!(queued.key.len(), 64);
        assert!(queued.key.chars().all(|c| c.is_ascii_hexdigit()));
        // Every key of a frame is its own.
        let mut keys: Vec<&str> = mirrors
            .iter()
            .flat_map(|m| m.entries.iter().map(|e| e.key.as_str()))
            .collect();
        let all = keys.len();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), all);
    }
}
