//! A tiny stand-in for the Claude Code CLI (stream-json mode) that produces the faults the
//! real CLI cannot be made to show on demand. Only std + serde_json.
//!
//! Per `user` line it prints `system/init`, then acts on the prompt text:
//! `CRASH` (assistant text, stderr line, exit 3 without a result), `GARBAGE` (non-JSON lines
//! before a normal answer), `HANG` (nothing more until an `interrupt`), `BIGLINE` (a 20 MB
//! assistant line and result); anything else gets `fake reply: <prompt>`.

use std::io::{self, BufRead, Write};
use std::process::exit;

use serde_json::{json, Value};

const DEFAULT_SESSION_ID: &str = "fa4ec1a0-0000-4000-8000-000000000000";
const BIGLINE_BYTES: usize = 20 * 1024 * 1024;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--version") {
        println!("0.0.1-fake (Claude Code)");
        return;
    }
    let mut fake = Fake {
        session_id: session_id_from(&args),
        cost: 0.0,
        counter: 0,
        hanging: false,
        queued: Vec::new(),
    };

    for line in io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(&line) {
            Ok(msg) => fake.handle(&msg),
            Err(e) => {
                // The real CLI dies the same way on a malformed input line.
                eprintln!("Error parsing streaming input line: {line}: {e}");
                exit(1);
            }
        }
    }
    if fake.hanging {
        // A hung turn never ends, not even on stdin EOF: the host has to kill us.
        loop {
            std::thread::park();
        }
    }
}

/// `--session-id=X`, `--session-id X`, `--resume=X` or `--resume X`; else a fixed uuid.
fn session_id_from(args: &[String]) -> String {
    for (i, arg) in args.iter().enumerate() {
        for flag in ["--session-id", "--resume"] {
            if let Some(value) = arg.strip_prefix(&format!("{flag}=")) {
                return value.to_string();
            }
            if arg == flag {
                if let Some(value) = args.get(i + 1) {
                    return value.clone();
                }
            }
        }
    }
    DEFAULT_SESSION_ID.to_string()
}

struct Fake {
    session_id: String,
    /// Cumulative over the process, like the real `total_cost_usd`.
    cost: f64,
    counter: u64,
    /// A `HANG` turn is running; only an interrupt ends it.
    hanging: bool,
    /// Prompts received while hanging, merged into one turn afterwards (as the CLI does).
    queued: Vec<String>,
}

impl Fake {
    fn handle(&mut self, msg: &Value) {
        match msg["type"].as_str() {
            Some("control_request") => self.control_request(msg),
            Some("user") => {
                let prompt = prompt_text(&msg["message"]["content"]);
                if self.hanging {
                    self.queued.push(prompt);
                } else {
                    self.turn(&prompt);
                }
            }
            // control_response, keep_alive, unknown types: ignored like the real CLI does.
            _ => {}
        }
    }

    fn control_request(&mut self, msg: &Value) {
        let request_id = msg["request_id"].clone();
        match msg["request"]["subtype"].as_str().unwrap_or("") {
            "initialize" => emit(&json!({
                "type": "control_response",
                "response": {"subtype": "success", "request_id": request_id, "response": {
                    "commands": [], "agents": [], "output_style": "default",
                    "available_output_styles": ["default"], "models": [],
                    "account": {"apiKeySource": "none"}, "pid": std::process::id(),
                }},
            })),
            "interrupt" => {
                emit(&json!({
                    "type": "control_response",
                    "response": {"subtype": "success", "request_id": request_id},
                }));
                if self.hanging {
                    self.hanging = false;
                    self.interrupted_result();
                    let queued = std::mem::take(&mut self.queued);
                    if !queued.is_empty() {
                        self.turn(&queued.join("\n"));
                    }
                }
            }
            other => emit(&json!({
                "type": "control_response",
                "response": {"subtype": "error", "request_id": request_id,
                             "error": format!("Unsupported control request subtype: {other}")},
            })),
        }
    }

    fn turn(&mut self, prompt: &str) {
        emit(&json!({
            "type": "system", "subtype": "init", "cwd": cwd(), "session_id": self.session_id,
            "tools": [], "mcp_servers": [], "model": "fake-model", "permissionMode": "default",
            "slash_commands": [], "apiKeySource": "none", "claude_code_version": "0.0.1-fake",
            "output_style": "default", "agents": [], "skills": [], "plugins": [],
            "uuid": self.uuid(),
        }));
        if prompt.contains("CRASH") {
            self.assistant("about to crash");
            eprintln!("fake: crashing on purpose");
            exit(3);
        } else if prompt.contains("HANG") {
            self.hanging = true;
        } else if prompt.contains("BIGLINE") {
            let text = "y".repeat(BIGLINE_BYTES);
            self.assistant(&text);
            self.success_result(&text);
        } else {
            if prompt.contains("GARBAGE") {
                let mut out = io::stdout().lock();
                for _ in 0..3 {
                    let _ = writeln!(out, "this is not json");
                }
                let _ = out.flush();
            }
            let text = format!("fake reply: {prompt}");
            self.assistant(&text);
            self.success_result(&text);
        }
    }

    fn assistant(&mut self, text: &str) {
        self.counter += 1;
        emit(&json!({
            "type": "assistant",
            "message": {
                "id": format!("msg_fake_{}", self.counter), "type": "message",
                "role": "assistant", "model": "fake-model",
                "content": [{"type": "text", "text": text}],
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 1, "output_tokens": 1},
            },
            "parent_tool_use_id": null, "session_id": self.session_id, "uuid": self.uuid(),
        }));
    }

    fn success_result(&mut self, text: &str) {
        self.cost += 0.001;
        emit(&json!({
            "type": "result", "subtype": "success", "is_error": false, "result": text,
            "total_cost_usd": self.cost, "usage": {"input_tokens": 1, "output_tokens": 1},
            "num_turns": 1, "duration_ms": 1, "stop_reason": "end_turn",
            "session_id": self.session_id, "uuid": self.uuid(),
        }));
    }

    fn interrupted_result(&mut self) {
        emit(&json!({
            "type": "user",
            "message": {"role": "user",
                        "content": [{"type": "text", "text": "[Request interrupted by user]"}]},
            "parent_tool_use_id": null, "session_id": self.session_id, "uuid": self.uuid(),
        }));
        emit(&json!({
            "type": "result", "subtype": "error_during_execution", "is_error": true,
            "total_cost_usd": self.cost, "usage": {"input_tokens": 0, "output_tokens": 0},
            "num_turns": 1, "duration_ms": 1, "stop_reason": null,
            "terminal_reason": "aborted_streaming", "session_id": self.session_id,
            "uuid": self.uuid(), "errors": ["fake: interrupted"],
        }));
    }

    fn uuid(&mut self) -> String {
        self.counter += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.counter)
    }
}

fn prompt_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn cwd() -> String {
    std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// One JSON object per line, flushed at once so the host sees it without delay.
fn emit(value: &Value) {
    let mut out = io::stdout().lock();
    let written = serde_json::to_writer(&mut out, value)
        .map_err(io::Error::from)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if written.is_err() {
        // The host closed our stdout: nobody is listening any more.
        exit(0);
    }
}
