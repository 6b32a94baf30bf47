//! Tool approvals with the real CLI (`permission_mode: "default"`): asked
//! over the API, answered allow (with changed input) or deny, timed out,
//! or settled by the server's policy without asking.

use std::time::Duration;

use serde_json::{json, Value};

use crate::events::{stream_chat, subscribe, SseReader};
use crate::helpers::*;

async fn asking_session(app: &TestApp, name: &str) {
    app.create_session_with(ALICE, json!({"name": name, "permission_mode": "default"}))
        .await;
}

async fn next_request(events: &mut SseReader) -> Value {
    events
        .until("permission_request", 60)
        .await
        .pop()
        .unwrap()
        .2
}

async fn decide(app: &TestApp, session: &str, id: &str, body: Value) -> reqwest::Response {
    app.post(
        &format!("/api/v1/sessions/{session}/approvals/{id}"),
        ALICE,
        body,
    )
    .send()
    .await
    .unwrap()
}

fn model_saw(app: &TestApp, text: &str) -> bool {
    app.mock
        .requests()
        .iter()
        .any(|r| r.to_string().contains(text))
}

#[actix_web::test]
async fn a_write_is_allowed_with_changed_input() {
    let app = TestApp::spawn().await;
    asking_session(&app, "w").await;
    let mut events = subscribe(&app, ALICE, "w", None).await;
    let turn = stream_chat(&app, "w", "[[write note.txt]]original[[/write]]");
    let request = next_request(&mut events).await;
    assert_eq!(request["tool"], "Write");
    assert_eq!(request["input"]["content"], "original");
    let id = request["id"].as_str().unwrap().to_string();

    let pending: Value = app
        .get("/api/v1/sessions/w/approvals", ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pending["data"].as_array().unwrap().len(), 1);
    assert_eq!(pending["data"][0]["id"], id.as_str());
    assert_eq!(pending["data"][0]["status"], "pending");

    let mut input = request["input"].clone();
    input["content"] = json!("changed by the reviewer");
    let res = decide(
        &app,
        "w",
        &id,
        json!({"decision": "allow", "updated_input": input}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let events_turn = tokio::time::timeout(Duration::from_secs(60), turn)
        .await
        .unwrap()
        .unwrap();
    let kinds: Vec<&str> = events_turn.iter().map(|e| e.0.as_str()).collect();
    assert!(
        kinds.contains(&"permission_request") && kinds.contains(&"permission_resolved"),
        "{kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&"done"), "{kinds:?}");
    assert_eq!(
        std::fs::read_to_string(app.workspace("alice", "w").join("note.txt")).unwrap(),
        "changed by the reviewer"
    );
    // Answered once only.
    let res = decide(&app, "w", &id, json!({"decision": "deny"})).await;
    assert_problem(res, 409, "conflict").await;
    let pending: Value = app
        .get("/api/v1/sessions/w/approvals", ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pending["data"], json!([]));
    assert_eq!(
        app.query_i64("SELECT COUNT(*) AS n FROM approvals WHERE status = 'allowed'"),
        1
    );
}

/// An approval is announced only once its row is stored, so a decision
/// sent the moment `permission_request` arrives always finds it.
#[actix_web::test]
async fn an_approval_is_announced_only_once_stored() {
    let app = TestApp::spawn().await;
    asking_session(&app, "h").await;
    let mut events = subscribe(&app, ALICE, "h", None).await;
    let turn = stream_chat(&app, "h", "[[pause 3000]][[write held.txt]]ok[[/write]]");
    events.until("delta", 60).await;

    // The CLI asks about the Write while the session's writes wait.
    let hold = WriteHold::take(&app.db);
    let while_held = events.until_then_quiet("tool", 3).await;
    let kinds: Vec<&str> = while_held.iter().map(|e| e.0.as_str()).collect();
    assert!(
        !kinds.contains(&"permission_request"),
        "announced before it was stored: {kinds:?}"
    );

    drop(hold);
    let request = next_request(&mut events).await;
    let id = request["id"].as_str().unwrap();
    let res = decide(&app, "h", id, json!({"decision": "allow"})).await;
    assert_eq!(res.status(), 200);
    let events_turn = tokio::time::timeout(Duration::from_secs(60), turn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(events_turn.last().unwrap().0, "done");
    assert_eq!(
        std::fs::read_to_string(app.workspace("alice", "h").join("held.txt")).unwrap(),
        "ok"
    );
}

#[actix_web::test]
async fn a_denied_bash_tells_the_model_why() {
    let app = TestApp::spawn().await;
    asking_session(&app, "b").await;
    let mut events = subscribe(&app, ALICE, "b", None).await;
    let turn = stream_chat(&app, "b", "[[bash]]echo ran > ran.txt[[/bash]]");
    let request = next_request(&mut events).await;
    assert_eq!(request["tool"], "Bash");
    let id = request["id"].as_str().unwrap();
    let res = decide(
        &app,
        "b",
        id,
        json!({"decision": "deny", "message": "no shell today, says the reviewer"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let events_turn = tokio::time::timeout(Duration::from_secs(60), turn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(events_turn.last().unwrap().0, "done");
    assert!(model_saw(&app, "no shell today, says the reviewer"));
    assert!(!app.workspace("alice", "b").join("ran.txt").exists());
}

#[actix_web::test]
async fn an_unanswered_approval_is_denied_after_the_timeout() {
    let app = TestApp::spawn_with(Options::default().var("APPROVAL_TIMEOUT_SECONDS", "2")).await;
    asking_session(&app, "t").await;
    let turn = stream_chat(&app, "t", "[[write late.txt]]x[[/write]]");
    let events_turn = tokio::time::timeout(Duration::from_secs(60), turn)
        .await
        .unwrap()
        .unwrap();
    let resolved = events_turn
        .iter()
        .find(|e| e.0 == "permission_resolved")
        .unwrap();
    assert_eq!(resolved.2["status"], "expired");
    assert_eq!(events_turn.last().unwrap().0, "done");
    assert!(model_saw(
        &app,
        "nobody approved this tool call within 2 seconds"
    ));
    assert!(!app.workspace("alice", "t").join("late.txt").exists());
    assert_eq!(
        app.query_i64("SELECT COUNT(*) AS n FROM approvals WHERE status = 'expired'"),
        1
    );
}

/// Runs `message` on `session` and asserts the server's policy denied its
/// tool call without asking anyone, telling the model why.
async fn assert_denied_by_policy(app: &TestApp, session: &str, message: &str) {
    let turn = stream_chat(app, session, message);
    let events_turn = tokio::time::timeout(Duration::from_secs(60), turn)
        .await
        .unwrap()
        .unwrap();
    let kinds: Vec<&str> = events_turn.iter().map(|e| e.0.as_str()).collect();
    assert!(!kinds.contains(&"permission_request"), "{kinds:?}");
    let resolved = events_turn
        .iter()
        .find(|e| e.0 == "permission_resolved")
        .unwrap();
    assert_eq!(resolved.2["by"], "policy");
    assert!(model_saw(app, "outside the session's workspace"));
}

#[actix_web::test]
async fn a_path_outside_the_workspace_is_denied_without_asking() {
    let app = TestApp::spawn().await;
    asking_session(&app, "p").await;
    let outside = app.root.path().join("outside.txt");
    let message = format!("[[write {}]]escape[[/write]]", outside.display());
    assert_denied_by_policy(&app, "p", &message).await;
    assert!(!outside.exists());
    assert_eq!(app.query_i64("SELECT COUNT(*) AS n FROM approvals"), 0);
}

#[actix_web::test]
async fn a_symlink_out_of_the_workspace_is_denied_without_asking() {
    let app = TestApp::spawn().await;
    asking_session(&app, "l").await;
    let elsewhere = app.root.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, app.workspace("alice", "l").join("escape")).unwrap();
    assert_denied_by_policy(&app, "l", "[[write escape/x.txt]]escape[[/write]]").await;
    assert!(!elsewhere.join("x.txt").exists());
}

#[actix_web::test]
async fn a_sync_chat_waiting_on_an_approval_answers_202_and_the_turn_goes_on() {
    let app = TestApp::spawn_with(Options::default().var("APPROVAL_HOLD_SECONDS", "1")).await;
    asking_session(&app, "s").await;
    let (status, body) = app
        .chat(ALICE, "s", "[[write sync.txt]]hello[[/write]]")
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["data"]["status"], "waiting_for_approval");
    let url = body["data"]["approval_url"].as_str().unwrap().to_string();
    let res = app
        .post(
            &url,
            ALICE,
            json!({"decision": "allow", "remember": "session"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["data"]["decision"]["updatedPermissions"][0]["destination"],
        "session"
    );
    assert!(eventually(60, || async { app.history(ALICE, "s").await.len() == 2 }).await);
    assert_eq!(
        std::fs::read_to_string(app.workspace("alice", "s").join("sync.txt")).unwrap(),
        "hello"
    );
}

#[actix_web::test]
async fn a_job_waiting_on_an_approval_sends_a_signed_approval_required_webhook() {
    let app = TestApp::spawn().await;
    let receiver = crate::receiver::Receiver::start(&[200]);
    asking_session(&app, "jw").await;
    let (status, body) = app
        .create_job(
            ALICE,
            "jw",
            json!({"message": "[[write job.txt]]from a job[[/write]]", "webhook_url": receiver.url}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let job_id = body["data"]["id"].as_str().unwrap().to_string();
    let asked = eventually(60, || async {
        receiver
            .received()
            .iter()
            .any(|r| r.json()["type"] == "approval.required")
    })
    .await;
    assert!(asked, "approval.required delivered");
    let hook = receiver
        .received()
        .into_iter()
        .find(|r| r.json()["type"] == "approval.required")
        .unwrap();
    assert!(hook.signature.starts_with("v1,"));
    let approval = hook.json()["approval"].clone();
    assert_eq!(approval["tool"], "Write");
    assert_eq!(approval["job_id"], job_id.as_str());
    let url = approval["url"].as_str().unwrap();
    let res = app
        .post(
            url,
            ALICE,
            json!({"decision": "deny", "message": "jobs may not write"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let job = app.wait_job(ALICE, "jw", &job_id, 60).await;
    assert_eq!(job["status"], "done", "{job}");
    assert!(model_saw(&app, "jobs may not write"));
    assert!(!app.workspace("alice", "jw").join("job.txt").exists());
}

#[actix_web::test]
async fn interrupting_a_turn_that_waits_on_an_approval_cancels_it() {
    let app = TestApp::spawn().await;
    asking_session(&app, "ic").await;
    let mut events = subscribe(&app, ALICE, "ic", None).await;
    let turn = stream_chat(&app, "ic", "[[write never.txt]]x[[/write]]");
    let request = next_request(&mut events).await;
    let id = request["id"].as_str().unwrap().to_string();
    let res = app
        .post("/api/v1/sessions/ic/interrupt", ALICE, json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let events_turn = tokio::time::timeout(Duration::from_secs(30), turn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        events_turn.last().unwrap().0,
        "turn_interrupted",
        "{events_turn:?}"
    );
    let resolved = events_turn
        .iter()
        .find(|e| e.0 == "permission_resolved")
        .unwrap();
    assert_eq!(resolved.2["status"], "cancelled");
    let res = decide(&app, "ic", &id, json!({"decision": "allow"})).await;
    assert_problem(res, 409, "conflict").await;
    assert!(!app.workspace("alice", "ic").join("never.txt").exists());
}

#[actix_web::test]
async fn changed_input_outside_the_workspace_is_refused_and_the_approval_stays_pending() {
    let app = TestApp::spawn().await;
    asking_session(&app, "o").await;
    let mut events = subscribe(&app, ALICE, "o", None).await;
    let turn = stream_chat(&app, "o", "[[write inside.txt]]fine[[/write]]");
    let request = next_request(&mut events).await;
    let id = request["id"].as_str().unwrap().to_string();
    let outside = app.root.path().join("data/escaped.txt");
    let mut input = request["input"].clone();
    input["file_path"] = json!(outside.to_string_lossy());
    let res = decide(
        &app,
        "o",
        &id,
        json!({"decision": "allow", "updated_input": input}),
    )
    .await;
    let problem = assert_problem(res, 422, "validation-error").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("outside the session's workspace"),
        "{problem}"
    );
    // Still pending: the original input can be allowed.
    let res = decide(&app, "o", &id, json!({"decision": "allow"})).await;
    assert_eq!(res.status(), 200);
    tokio::time::timeout(Duration::from_secs(60), turn)
        .await
        .unwrap()
        .unwrap();
    assert!(!outside.exists());
    assert_eq!(
        std::fs::read_to_string(app.workspace("alice", "o").join("inside.txt")).unwrap(),
        "fine"
    );
}
