//! Proves the mock model drives the REAL Claude Code CLI (no server code involved), and
//! records the CLI transcripts kept under `tests/fixtures/cli-2.1.197/` (ignored test
//! `record_fixtures`, see the README there).

#![expect(
    clippy::expect_used,
    reason = "test code: a step that fails panics, which fails the test"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use claude_code_api_testkit::mock_model::MockModel;
use serde_json::{json, Value};

/// Generous: CLI start-up alone takes ~1 s on an idle 2-core machine, far more under load.
const LINE_TIMEOUT: Duration = Duration::from_secs(90);
const FIXTURE_VERSION: &str = "2.1.197";

fn cli_path() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".claude-cli/node_modules/.bin/claude");
    path.exists().then_some(path)
}

/// A running CLI in stream-json mode with its stdout read line by line on its own thread.
struct Cli {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    next_request: u32,
}

impl Cli {
    fn spawn(
        bin: &Path,
        cwd: &Path,
        config_dir: &Path,
        base_url: &str,
        env: &[(&str, &str)],
    ) -> Cli {
        let mut cmd = Command::new(bin);
        cmd.args([
            "--input-format",
            "stream-json",
            "--output-format",
            "stream-json",
            "--verbose",
            "--include-partial-messages",
            "--permission-mode",
            "bypassPermissions",
        ])
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .env("IS_SANDBOX", "1")
        .env("ANTHROPIC_BASE_URL", base_url)
        .env("ANTHROPIC_API_KEY", "test-key")
        .env("CLAUDE_CONFIG_DIR", config_dir)
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn claude");

        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            // Lines can be megabytes long; BufRead::lines has no length cap.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr_pipe = child.stderr.take().expect("stderr piped");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = String::new();
            let _ = stderr_pipe.read_to_string(&mut buf);
            sink.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_str(&buf);
        });

        let stdin = child.stdin.take();
        Cli {
            child,
            stdin,
            lines,
            stderr,
            next_request: 0,
        }
    }

    fn send(&mut self, value: &Value) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        let mut line = value.to_string();
        line.push('\n');
        stdin
            .write_all(line.as_bytes())
            .expect("write to claude stdin");
        stdin.flush().expect("flush claude stdin");
    }

    fn next_line(&mut self) -> String {
        match self.lines.recv_timeout(LINE_TIMEOUT) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!("no line from claude in {LINE_TIMEOUT:?}"),
            Err(RecvTimeoutError::Disconnected) => {
                // Give the stderr thread a moment to collect the reason.
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "claude closed stdout (status {:?}); stderr: {}",
                    self.child.try_wait(),
                    self.stderr()
                )
            }
        }
    }

    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sends a control request and returns its id.
    fn control(&mut self, subtype: &str) -> String {
        self.next_request += 1;
        let id = format!("req_{}", self.next_request);
        self.send(&json!({"type": "control_request", "request_id": id,
                          "request": {"subtype": subtype}}));
        id
    }

    /// Reads lines until `stop` matches one (included in the returned lines).
    fn read_until(&mut self, mut stop: impl FnMut(&Value) -> bool) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.next_line();
            let value: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("claude printed a non-JSON line ({e}): {line}"));
            lines.push(line);
            if stop(&value) {
                return lines;
            }
        }
    }

    fn initialize(&mut self) -> Vec<String> {
        let id = self.control("initialize");
        self.read_until(|v| v["type"] == "control_response" && v["response"]["request_id"] == id)
    }

    fn send_prompt(&mut self, prompt: &str) {
        self.send(
            &json!({"type": "user", "message": {"role": "user", "content": prompt},
                          "parent_tool_use_id": null, "session_id": ""}),
        );
    }

    /// One turn: sends the prompt, returns every line up to and including the `result`.
    fn turn(&mut self, prompt: &str) -> Vec<String> {
        self.send_prompt(prompt);
        self.read_until(|v| v["type"] == "result")
    }

    /// Closes stdin and collects whatever the CLI still prints before it exits.
    fn close(mut self) -> (ExitStatus, Vec<String>) {
        drop(self.stdin.take());
        let mut rest = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(LINE_TIMEOUT) {
            rest.push(line);
        }
        let status = self.child.wait().expect("wait for claude");
        (status, rest)
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        // Only matters when a test panics mid-way: never leave a CLI process behind.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The last `result` line of a transcript.
fn result_of(lines: &[String]) -> Value {
    lines
        .iter()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["type"] == "result")
        .unwrap_or_else(|| panic!("no result line in: {}", lines.join("\n")))
}

fn assert_success(lines: &[String]) -> Value {
    let result = result_of(lines);
    assert_eq!(
        result["subtype"],
        "success",
        "turn failed: {}",
        lines.join("\n")
    );
    assert_eq!(
        result["is_error"],
        false,
        "turn failed: {}",
        lines.join("\n")
    );
    result
}

struct Dirs {
    _root: tempfile::TempDir,
    workspace: PathBuf,
    config: PathBuf,
}

fn dirs() -> Dirs {
    let root = tempfile::tempdir().expect("tempdir");
    let workspace = root.path().join("ws");
    let config = root.path().join("config");
    std::fs::create_dir_all(&workspace).expect("create workspace");
    std::fs::create_dir_all(&config).expect("create config dir");
    Dirs {
        _root: root,
        workspace,
        config,
    }
}

#[test]
fn real_cli_runs_tools_against_the_mock_model() {
    let Some(bin) = cli_path() else {
        eprintln!("SKIPPED: the Claude Code CLI is not installed at .claude-cli/");
        return;
    };
    let started = Instant::now();
    let mock = MockModel::start();
    let dirs = dirs();
    let mut cli = Cli::spawn(&bin, &dirs.workspace, &dirs.config, &mock.base_url, &[]);
    cli.initialize();

    let write_prompt = "Please [[write hello.txt]]hi there[[/write]]";
    let lines = cli.turn(write_prompt);
    assert_success(&lines);
    let written = std::fs::read_to_string(dirs.workspace.join("hello.txt"))
        .unwrap_or_else(|e| panic!("hello.txt not written ({e}): {}", lines.join("\n")));
    assert_eq!(written, "hi there");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Tool result: File created successfully")),
        "the model did not get the tool result back: {}",
        lines.join("\n")
    );

    let bash_prompt = "[[bash]]echo ran > ran.txt[[/bash]]";
    let lines = cli.turn(bash_prompt);
    assert_success(&lines);
    let ran = std::fs::read_to_string(dirs.workspace.join("ran.txt")).expect("ran.txt written");
    assert_eq!(ran.trim(), "ran");

    let lines = cli.turn("[[recall]]");
    let result = assert_success(&lines);
    let text = result["result"].as_str().expect("result text");
    assert!(text.starts_with("Prompts so far: "), "{text}");
    assert!(
        text.contains(write_prompt) && text.contains(bash_prompt),
        "{text}"
    );

    let (status, _) = cli.close();
    assert!(status.success(), "claude exited with {status}");

    // Each directive turn is two model calls (tool_use, then the reply to its result).
    let requests = mock.requests();
    assert_eq!(requests.len(), 5, "main-loop requests: {requests:#?}");
    assert!(requests.iter().all(|r| r["stream"] == true));
    eprintln!("smoke test took {:?}", started.elapsed());
}

/// Re-records the transcripts in `tests/fixtures/cli-2.1.197/`. Run it on purpose:
/// `cargo test --test mock_cli_smoke -- --ignored record_fixtures`.
#[test]
#[ignore = "rewrites tests/fixtures; run explicitly to re-record"]
fn record_fixtures() {
    let Some(bin) = cli_path() else {
        eprintln!("SKIPPED: the Claude Code CLI is not installed at .claude-cli/");
        return;
    };
    let version = Command::new(&bin)
        .arg("--version")
        .output()
        .expect("claude --version");
    let version = String::from_utf8_lossy(&version.stdout);
    assert!(
        version.starts_with(FIXTURE_VERSION),
        "fixtures are for {FIXTURE_VERSION}, the CLI is {version}"
    );
    let out_dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("cli-{FIXTURE_VERSION}"));
    std::fs::create_dir_all(&out_dir).expect("create fixture dir");
    let mock = MockModel::start();

    // Every fixture is the whole stdout of a fresh process: initialize response, one turn,
    // and whatever comes after stdin is closed.
    let record = |name: &str, env: &[(&str, &str)], run: &dyn Fn(&mut Cli) -> Vec<String>| {
        let dirs = dirs();
        let mut cli = Cli::spawn(&bin, &dirs.workspace, &dirs.config, &mock.base_url, env);
        let mut lines = cli.initialize();
        lines.extend(run(&mut cli));
        let (status, rest) = cli.close();
        eprintln!(
            "{name}: {} lines, claude exited with {status}",
            lines.len() + rest.len()
        );
        lines.extend(rest);
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(out_dir.join(format!("{name}.jsonl")), text).expect("write fixture");
        lines
    };

    let lines = record("text_turn", &[], &|cli| {
        cli.turn("Say hello to the fixtures")
    });
    assert_success(&lines);

    let lines = record("write_tool_turn", &[], &|cli| {
        cli.turn("[[write notes.txt]]fixture content\n[[/write]]")
    });
    assert_success(&lines);

    let lines = record(
        "api_error_500",
        &[("CLAUDE_CODE_MAX_RETRIES", "0")],
        &|cli| cli.turn("[[error 500]]"),
    );
    let result = result_of(&lines);
    assert_eq!(result["is_error"], true);
    assert_eq!(result["api_error_status"], 500);

    let lines = record("interrupt_during_stream", &[], &|cli| {
        cli.send_prompt("[[slow 20 100]]");
        let mut lines = cli.read_until(|v| {
            v["type"] == "stream_event" && v["event"]["delta"]["text"].as_str() == Some(" chunk2")
        });
        cli.control("interrupt");
        lines.extend(cli.read_until(|v| v["type"] == "result"));
        lines
    });
    let result = result_of(&lines);
    assert_eq!(result["subtype"], "error_during_execution");
}

// ---------------------------------------------------------------------------------------
// The mock on its own, over plain HTTP (no CLI needed).

fn main_loop_request(messages: Value, stream: bool) -> Value {
    json!({"model": "claude-test", "max_tokens": 1000, "stream": stream,
           "tools": [{"name": "Bash", "input_schema": {"type": "object"}}],
           "messages": messages})
}

fn prompt_request(prompt: &str, stream: bool) -> Value {
    main_loop_request(json!([{"role": "user", "content": prompt}]), stream)
}

async fn post(mock: &MockModel, path: &str, body: &Value) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", mock.base_url))
        .header("x-api-key", "test-key")
        .json(body)
        .send()
        .await
        .expect("POST to the mock");
    let status = response.status().as_u16();
    (status, response.text().await.expect("mock response body"))
}

/// The `data:` payloads of an SSE body, checking each event name matches its `type`.
fn sse_data(body: &str) -> Vec<Value> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|event| {
            let (name, data) = event
                .strip_prefix("event: ")
                .and_then(|e| e.split_once("\ndata: "))
                .unwrap_or_else(|| panic!("malformed SSE event: {event}"));
            let data: Value = serde_json::from_str(data).expect("SSE data is JSON");
            assert_eq!(data["type"], name);
            data
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_model_follows_its_directives() {
    let mock = MockModel::start();

    // Plain JSON, prompt as a string.
    let (status, body) = post(&mock, "/v1/messages", &prompt_request("hello", false)).await;
    assert_eq!(status, 200, "{body}");
    let message: Value = serde_json::from_str(&body).expect("JSON reply");
    assert_eq!(message["content"][0]["text"], "Mock reply to: hello");
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(message["model"], "claude-test");
    assert!(message["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("msg_mock_")));
    assert!(message["usage"]["input_tokens"].as_u64() > Some(0));
    assert!(message["usage"]["output_tokens"].as_u64() > Some(0));

    // Streaming tool_use; system reminders are skipped, blocks may be an array.
    let messages = json!([{"role": "user", "content": [
        {"type": "text", "text": "<system-reminder>[[hang]]</system-reminder>"},
        {"type": "text", "text": "go [[write a/b.txt]]line1\nline2[[/write]] and [[read c.txt]]"},
    ]}]);
    let (_, body) = post(&mock, "/v1/messages", &main_loop_request(messages, true)).await;
    let events = sse_data(&body);
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types.first(), Some(&"message_start"));
    assert_eq!(types.last(), Some(&"message_stop"));
    let tools: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "content_block_start")
        .map(|e| &e["content_block"])
        .collect();
    assert_eq!(tools.len(), 2);
    assert_eq!(tools[0]["name"], "Write");
    assert!(tools[0]["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("toolu_mock_")));
    assert_eq!(tools[1]["name"], "Read");
    let json_of = |index: u64| -> Value {
        let partial: String = events
            .iter()
            .filter(|e| e["index"] == index && e["delta"]["type"] == "input_json_delta")
            .filter_map(|e| e["delta"]["partial_json"].as_str())
            .collect();
        serde_json::from_str(&partial).expect("input_json_delta parts form JSON")
    };
    assert_eq!(
        json_of(0),
        json!({"file_path": "a/b.txt", "content": "line1\nline2"})
    );
    assert_eq!(json_of(1), json!({"file_path": "c.txt"}));
    let delta = events
        .iter()
        .find(|e| e["type"] == "message_delta")
        .expect("message_delta");
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");

    // A tool result is echoed; interrupted prompts merged before it don't count.
    let messages = json!([
        {"role": "user", "content": [
            {"type": "text", "text": "[[hang]]\n"},
            {"type": "text", "text": "[Request interrupted by user]\n"},
            {"type": "text", "text": "[[bash]]ls[[/bash]]"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash",
                                           "input": {"command": "ls"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                      "content": [{"type": "text", "text": "file1"}]}]},
    ]);
    let (_, body) = post(&mock, "/v1/messages", &main_loop_request(messages, false)).await;
    let message: Value = serde_json::from_str(&body).expect("JSON reply");
    assert_eq!(message["content"][0]["text"], "Tool result: file1");

    // Recall lists every human prompt.
    let messages = json!([
        {"role": "user", "content": "first BANANA"},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
        {"role": "user", "content": [{"type": "text", "text": "[[recall]]"}]},
    ]);
    let (_, body) = post(&mock, "/v1/messages", &main_loop_request(messages, false)).await;
    let message: Value = serde_json::from_str(&body).expect("JSON reply");
    assert_eq!(
        message["content"][0]["text"],
        "Prompts so far: first BANANA | [[recall]]"
    );

    // Slow and big texts.
    let started = Instant::now();
    let (_, body) = post(
        &mock,
        "/v1/messages",
        &prompt_request("[[slow 3 100]]", true),
    )
    .await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    let deltas: Vec<String> = sse_data(&body)
        .iter()
        .filter_map(|e| e["delta"]["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(deltas, [" chunk0", " chunk1", " chunk2"]);
    let (_, body) = post(
        &mock,
        "/v1/messages",
        &prompt_request("[[big 200000]]", false),
    )
    .await;
    let message: Value = serde_json::from_str(&body).expect("JSON reply");
    assert_eq!(message["content"][0]["text"], "x".repeat(200_000));

    // Errors, Anthropic style.
    for (status, kind) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (529, "overloaded_error"),
    ] {
        let prompt = format!("[[error {status}]]");
        let (got, body) = post(&mock, "/v1/messages", &prompt_request(&prompt, true)).await;
        assert_eq!(got, status);
        let error: Value = serde_json::from_str(&body).expect("JSON error");
        assert_eq!(
            error,
            json!({"type": "error", "error": {"type": kind, "message": "mock error"}})
        );
    }

    // A hanging request does not hold up the others.
    let hanging = tokio::spawn({
        let body = prompt_request("[[hang]]", true);
        let url = format!("{}/v1/messages", mock.base_url);
        async move {
            reqwest::Client::new()
                .post(url)
                .header("x-api-key", "test-key")
                .json(&body)
                .send()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let quick = prompt_request("still there?", false);
    let quick = tokio::time::timeout(Duration::from_secs(10), post(&mock, "/v1/messages", &quick));
    assert_eq!(
        quick.await.expect("answered despite a hanging request").0,
        200
    );
    assert!(!hanging.is_finished());

    // Side calls and token counting.
    let side = json!({"model": "claude-test", "max_tokens": 100,
                      "messages": [{"role": "user", "content": "[[hang]] title please"}]});
    let (status, body) = post(&mock, "/v1/messages", &side).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(&mock, "/v1/messages/count_tokens", &side).await;
    assert_eq!(status, 200);
    let count: Value = serde_json::from_str(&body).expect("JSON count");
    assert!(count["input_tokens"].as_u64() > Some(0));

    assert_eq!(mock.all_requests().len(), mock.requests().len() + 1);
    assert_eq!(mock.all_requests().last(), Some(&side));
    drop(mock);
    // Dropping the mock ends the hanging request instead of leaving it open forever.
    let ended = tokio::time::timeout(Duration::from_secs(10), hanging).await;
    assert!(ended
        .expect("hanging request ended")
        .expect("task")
        .is_err());
}
