//! Streamed chat over SSE.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::helpers::*;

#[actix_web::test]
async fn stream_sends_deltas_tools_and_done_with_ids() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "s").await;
    let res = app
        .post(
            "/api/v1/sessions/s/chat/stream",
            ALICE,
            json!({"message": "[[write out.txt]]streamed[[/write]]"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let events = read_sse(res).await;
    let kinds: Vec<&str> = events.iter().map(|(k, _, _)| k.as_str()).collect();
    assert!(kinds.contains(&"tool"), "{kinds:?}");
    assert!(kinds.contains(&"tool_result"), "{kinds:?}");
    assert!(kinds.contains(&"delta"), "{kinds:?}");
    assert!(kinds.contains(&"assistant"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"done"));
    let ids: Vec<i64> = events
        .iter()
        .map(|(_, id, _)| id.parse().expect("every event has an id"))
        .collect();
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "ids increase by one: {ids:?}"
    );
    let tool = events.iter().find(|(k, _, _)| k == "tool").unwrap();
    assert_eq!(tool.2["name"], "Write");
    let done = &events.last().unwrap().2;
    assert_eq!(done["session_id"], "s");
    assert_eq!(done["tools_used"][0]["name"], "Write");
    assert!(done["cost_micros"].as_i64().unwrap() > 0);
    let deltas: String = events
        .iter()
        .filter(|(k, _, _)| k == "delta")
        .map(|(_, _, d)| d["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        deltas,
        done["content"].as_str().unwrap(),
        "deltas add up to the answer"
    );
    assert_eq!(
        std::fs::read_to_string(app.workspace("alice", "s").join("out.txt")).unwrap(),
        "streamed"
    );
    // Event ids are the stored seq numbers.
    let last_id = *ids.last().unwrap();
    assert_eq!(app.query_i64("SELECT MAX(seq) AS n FROM events"), last_id);
}

#[actix_web::test]
async fn a_client_that_leaves_does_not_cancel_the_turn() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "gone").await;
    let res = app
        .post(
            "/api/v1/sessions/gone/chat/stream",
            ALICE,
            json!({"message": "long [[slow 15 100]]"}),
        )
        .send()
        .await
        .unwrap();
    let mut body = res.bytes_stream();
    // Read the first chunk, then hang up.
    let first = body.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    drop(body);
    let finished = eventually(30, || async { app.history(ALICE, "gone").await.len() == 2 }).await;
    assert!(
        finished,
        "the turn completed and was recorded without its client"
    );
    let history = app.history(ALICE, "gone").await;
    assert!(history[1]["content"].as_str().unwrap().contains("chunk14"));
    assert!(history[1]["cost_micros"].as_i64().unwrap() > 0);
    let session: Value = app
        .get("/api/v1/sessions/gone", ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(session["data"]["total_cost_micros"].as_i64().unwrap() > 0);
}

#[actix_web::test]
async fn stream_reports_cli_errors_as_error_events() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "se").await;
    let res = app
        .post(
            "/api/v1/sessions/se/chat/stream",
            ALICE,
            json!({"message": "[[error 529]]"}),
        )
        .send()
        .await
        .unwrap();
    let events = tokio::time::timeout(Duration::from_secs(60), read_sse(res))
        .await
        .unwrap();
    let (kind, id, data) = events.last().unwrap();
    assert_eq!(kind, "error");
    assert!(!id.is_empty());
    assert_eq!(data["status"], 502);
    assert_eq!(data["type"], "urn:claude-code-api:problem:cli-error");
}
