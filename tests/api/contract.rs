//! The API contract as outside tools read it, from the served document:
//! the official OpenAPI 3.1 schema accepts it, a generated client works
//! against the server, and a bounded Schemathesis run finds no 5xx, no
//! response outside its documented schema and no schema-valid request
//! refused. The tools come from PyPI (see `python.rs`).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use claude_code_api::api::routes::served_routes;

use crate::helpers::*;
use crate::python::{python_or_skip, run_script, OPENAPI_TOOLS};

fn step<'a>(lines: &'a [Value], name: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["step"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {lines:?}"))
}

#[actix_web::test]
async fn the_served_document_is_valid_openapi_3_1() {
    let Some(python) = python_or_skip(OPENAPI_TOOLS) else {
        return;
    };
    let app = TestApp::spawn_with(Options::fake()).await;
    let url = app.url("/api/v1/openapi.json");
    let lines = run_script(&python, "validate_spec.py", &[&url]).await;
    let served = step(&lines, "served");
    assert_eq!(served["openapi"], "3.1.0");
    assert_eq!(served["errors"], serde_json::json!([]), "{served}");
    // The validator does see a broken document.
    let broken = step(&lines, "broken");
    assert!(!broken["errors"].as_array().unwrap().is_empty(), "{broken}");
}

#[actix_web::test]
async fn a_generated_client_creates_a_session_chats_and_reads_the_history() {
    let Some(python) = python_or_skip(OPENAPI_TOOLS) else {
        return;
    };
    let app = TestApp::spawn().await;
    let work = tempfile::tempdir().unwrap();
    let work_dir = work.path().to_string_lossy().into_owned();
    let lines = run_script(
        &python,
        "generated_client.py",
        &[&app.base, ALICE, &work_dir],
    )
    .await;
    let generate = step(&lines, "generate");
    assert_eq!(generate["status"], 0, "{generate}");
    // The generator understood every operation.
    assert_eq!(generate["warnings"], serde_json::json!([]), "{generate}");

    let create = step(&lines, "create");
    assert_eq!(create["status"], 201, "{create}");
    assert_eq!(create["type"], "EnvelopeSessionData");
    assert_eq!(create["name"], "generated");
    assert_eq!(create["location"], "/api/v1/sessions/generated");

    let chat = step(&lines, "chat");
    assert_eq!(chat["type"], "EnvelopeChatResponse", "{chat}");
    assert_eq!(
        chat["content"],
        "Mock reply to: Hello from a generated client"
    );
    assert_eq!(chat["is_error"], false);

    let history = step(&lines, "history");
    assert_eq!(history["type"], "HistoryPage", "{history}");
    assert_eq!(history["roles"], serde_json::json!(["user", "assistant"]));
    assert_eq!(history["contents"][0], "Hello from a generated client");
    assert_eq!(history["total"], 2);
    // What the client saw is what the server stored.
    let stored = app.history(ALICE, "generated").await;
    assert_eq!(stored[1]["content"], chat["content"]);
}

/// The fuzz run: every operation, a few dozen examples each, every check.
/// `FUZZ_EXAMPLES` changes the number of examples (e.g. more, by hand).
#[actix_web::test]
async fn schemathesis_finds_no_contract_violation() {
    let Some(python) = python_or_skip(OPENAPI_TOOLS) else {
        return;
    };
    // The fuzzer sends many wrong keys on purpose: the per-address limit on
    // failed authentications would answer them 429 instead of 401.
    // Warm-up would start a CLI process for every session the fuzzer
    // creates while a slot is free: CPU a contract check does not need.
    let app = TestApp::spawn_with(
        Options::default()
            .var("AUTH_FAILURE_LIMIT", "1000000")
            .var("WARM_ON_CREATE", "false"),
    )
    .await;
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/py");
    let examples = std::env::var("FUZZ_EXAMPLES").unwrap_or_else(|_| "25".into());
    let mut cmd = tokio::process::Command::new(python.with_file_name("schemathesis"));
    cmd.arg("--config-file")
        .arg(py.join("schemathesis.toml"))
        .args(["--no-color", "run"])
        .arg(app.url("/api/v1/openapi.json"))
        .args(["--url", &app.base])
        .args(["--header", &format!("X-API-Key: {ADMIN}")])
        // Which checks run is set in the config file (all of them).
        .args(["--max-examples", &examples])
        // One worker: Python 3.11's parser can fail under threads
        // ("AST constructor recursion depth mismatch"), crashing the run.
        .args(["--workers", "1"])
        .args(["--seed", "19"])
        // Its cache (`.schemathesis/`) goes under target/, not the sources.
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .env("PYTHONPATH", &py)
        .env("SCHEMATHESIS_HOOKS", "fuzz_hooks")
        .env("FUZZ_OWN_KEY_ID", "key_test_admin")
        .env("FUZZ_OWN_TENANT", "alice")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(600), cmd.output())
        .await
        .expect("the fuzz run ends within its bound")
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // Every operation of the document is tested (Schemathesis leaves out
    // the one serving the document it loaded).
    let count = |label: &str| -> Option<String> {
        let line = stdout.lines().find(|l| l.trim_start().starts_with(label))?;
        Some(line.trim_start()[label.len()..].trim().to_owned())
    };
    let total = served_routes().len() - 1;
    assert_eq!(
        count("Selected:"),
        Some(format!("{total}/{total}")),
        "{stdout}"
    );
    assert_eq!(count("Tested:"), Some(total.to_string()), "{stdout}");
}
