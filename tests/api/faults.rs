//! Faults the real CLI cannot be made to show, played by the fake CLI: the
//! server answers each with a clear problem and the session recovers.

use serde_json::json;

use crate::helpers::*;

#[actix_web::test]
async fn a_crash_mid_turn_is_a_502_and_the_next_message_works() {
    let app = TestApp::spawn_with(Options::fake()).await;
    app.create_session(ALICE, "f").await;
    let res = app
        .post(
            "/api/v1/sessions/f/chat",
            ALICE,
            json!({"message": "CRASH now"}),
        )
        .send()
        .await
        .unwrap();
    let body = assert_problem(res, 502, "cli-error").await;
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("code 3"), "{detail}");
    assert!(
        detail.contains("crashing on purpose"),
        "stderr tail in the report: {detail}"
    );
    let data = app.chat_ok(ALICE, "f", "hello again").await;
    assert_eq!(data["content"], "fake reply: hello again");
}

#[actix_web::test]
async fn non_json_output_is_skipped() {
    let app = TestApp::spawn_with(Options::fake()).await;
    app.create_session(ALICE, "g").await;
    let data = app.chat_ok(ALICE, "g", "GARBAGE please").await;
    assert_eq!(data["content"], "fake reply: GARBAGE please");
}

#[actix_web::test]
async fn a_hung_cli_is_a_504_and_is_restarted() {
    let app = TestApp::spawn_with(Options::fake().var("CLAUDE_TIMEOUT_SECONDS", "2")).await;
    app.create_session(ALICE, "h").await;
    let started = std::time::Instant::now();
    let res = app
        .post("/api/v1/sessions/h/chat", ALICE, json!({"message": "HANG"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 504, "cli-timeout").await;
    assert!(started.elapsed().as_secs() < 15);
    let data = app.chat_ok(ALICE, "h", "are you back").await;
    assert_eq!(data["content"], "fake reply: are you back");
}

#[actix_web::test]
async fn a_20_mb_line_is_read_whole() {
    let app = TestApp::spawn_with(Options::fake()).await;
    app.create_session(ALICE, "big").await;
    let data = app.chat_ok(ALICE, "big", "BIGLINE").await;
    let content = data["content"].as_str().unwrap();
    assert_eq!(content.len(), 20 * 1024 * 1024);
    assert!(content.bytes().all(|b| b == b'y'));
}

#[actix_web::test]
async fn turns_are_charged_the_delta_of_the_cumulative_cost() {
    // The fake CLI reports total_cost_usd growing by 0.001 per turn.
    let app = TestApp::spawn_with(Options::fake()).await;
    app.create_session(ALICE, "cost").await;
    for i in 0..3 {
        let data = app.chat_ok(ALICE, "cost", &format!("turn {i}")).await;
        assert_eq!(data["cost_micros"], 1000, "turn {i}: {data}");
    }
    let session: serde_json::Value = app
        .get("/api/v1/sessions/cost", ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["data"]["total_cost_micros"], 3000);
    assert_eq!(session["data"]["total_cost"], 0.003);
}

#[actix_web::test]
async fn a_missing_cli_is_a_clear_error_and_health_says_so() {
    let app =
        TestApp::spawn_with(Options::fake().var("CLAUDE_CLI_PATH", "/nonexistent/claude")).await;
    let health = app.health().await;
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["checks"]["claude_cli"]["status"], "error");
    app.create_session(ALICE, "m").await;
    let res = app
        .post("/api/v1/sessions/m/chat", ALICE, json!({"message": "hi"}))
        .send()
        .await
        .unwrap();
    let body = assert_problem(res, 502, "cli-error").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/claude"),
        "{body}"
    );
    assert!(
        app.history(ALICE, "m").await.is_empty(),
        "nothing reached the CLI, nothing in history"
    );
}
