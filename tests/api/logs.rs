//! Structured logs: the server binary with `LOG_FORMAT=json` writes one JSON
//! object per line, and every line written while serving a request or
//! running a turn carries the request id and the session name.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

/// The spans of a JSON log line, by name.
fn span<'a>(line: &'a Value, name: &str) -> Option<&'a Value> {
    line["spans"].as_array()?.iter().find(|s| s["name"] == name)
}

#[actix_web::test]
async fn json_log_lines_carry_the_request_id_and_the_session() {
    let root = tempfile::tempdir().unwrap();
    let db = TestDb::create(root.path());
    let mock = MockModel::start();
    let mut child = Command::new(env!("CARGO_BIN_EXE_claude-code-api"))
        .arg("serve")
        .current_dir(root.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", root.path().join("home"))
        .env("API_HOST", "127.0.0.1")
        .env("API_PORT", "0")
        .env("API_KEYS", format!("alice:{ALICE}"))
        .env("DATA_DIR", root.path().join("data"))
        .env("APPROVED_DIRECTORY", root.path().join("workspaces"))
        .env("DATABASE_URL", &db.url)
        .env("CLAUDE_CLI_PATH", real_cli_path())
        .env("ANTHROPIC_BASE_URL", &mock.base_url)
        .env("ANTHROPIC_API_KEY", "test-key")
        .env("CLAUDE_CODE_MAX_RETRIES", "0")
        // The turn starts the CLI itself (no warm-up at create), so the
        // start is logged in the turn's request.
        .env("WARM_ON_CREATE", "false")
        .env("LOG_FORMAT", "json")
        .env("LOG_LEVEL", "claude_code_api=debug")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the server binary");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines: Vec<String> = Vec::new();
    let port = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server logs that it listens");
        lines.push(line.clone());
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if v["message"] == "listening" {
            break v["port"].as_u64().unwrap();
        }
    };
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{base}/api/v1/sessions"))
        .header("X-API-Key", ALICE)
        .header("X-Request-ID", "req-create-1")
        .json(&json!({"name": "logged"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = client
        .post(format!("{base}/api/v1/sessions/logged/chat"))
        .header("X-API-Key", ALICE)
        .header("X-Request-ID", "req-chat-1")
        // The agent also asks its gateway for an endpoint it may not call.
        .json(
            &json!({"message": "[[bash]]curl -s -o /dev/null -w 'status=%{http_code}' \
            -H \"x-api-key: $ANTHROPIC_API_KEY\" \"$ANTHROPIC_BASE_URL/v1/models\"[[/bash]]"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // A moment for the last lines, then stop the server.
    tokio::time::sleep(Duration::from_millis(300)).await;
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    // Every line the reader thread still has, up to the pipe's end.
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) {
        lines.push(line);
    }

    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not a JSON line: {l}")))
        .collect();
    let in_request: Vec<&Value> = parsed
        .iter()
        .filter(|l| span(l, "request").is_some())
        .collect();
    assert!(!in_request.is_empty(), "{lines:#?}");
    for line in &in_request {
        let request = span(line, "request").unwrap();
        let id = request["request_id"].as_str().unwrap();
        assert!(id.starts_with("req-"), "{line}");
        // Every request here names its session.
        assert_eq!(request["session"], "logged", "{line}");
    }
    // The turn's own lines sit inside the request that queued it.
    let turn_lines: Vec<&Value> = parsed
        .iter()
        .filter(|l| span(l, "turn").is_some())
        .collect();
    assert!(
        turn_lines.iter().any(|l| l["message"] == "turn finished"),
        "{lines:#?}"
    );
    for line in &turn_lines {
        assert_eq!(span(line, "turn").unwrap()["session"], "logged", "{line}");
        assert_eq!(
            span(line, "request").unwrap()["request_id"],
            "req-chat-1",
            "{line}"
        );
    }
    // Starting the CLI for the turn is logged in the session's span too.
    let started = parsed
        .iter()
        .find(|l| l["message"] == "started CLI process")
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert_eq!(span(started, "session").unwrap()["session"], "logged");
    assert_eq!(
        span(started, "request").unwrap()["request_id"],
        "req-chat-1"
    );
    assert!(parsed.iter().any(|l| l["message"] == "request served"
        && span(l, "request").unwrap()["request_id"] == "req-chat-1"));
    // The gateway's refusal names the tenant, the method and the path.
    let refused = parsed
        .iter()
        .find(|l| l["message"] == "model gateway refused a request of a CLI process")
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert_eq!(refused["tenant"], "alice", "{refused}");
    assert_eq!(refused["method"], "GET", "{refused}");
    assert!(
        refused["path"].as_str().unwrap().contains("/v1/models"),
        "{refused}"
    );
    assert_eq!(refused["reason"], "not_allowed", "{refused}");
}
