//! Nothing free: a turn that ends without the CLI's own cost (timed out,
//! deleted mid-tool) is charged what its model calls used, as the model
//! gateway saw them, at the price table's prices.

use serde_json::Value;

use crate::helpers::*;

async fn usage(app: &TestApp, key: &str) -> Value {
    app.get("/api/v1/usage", key)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["data"]
        .clone()
}

#[actix_web::test]
async fn a_turn_cut_by_the_watchdog_is_charged_what_its_model_calls_used() {
    let app = TestApp::spawn_with(Options::default().var("CLAUDE_TIMEOUT_SECONDS", "3")).await;
    app.create_session(ALICE, "t").await;
    let (status, body) = app.chat(ALICE, "t", "[[bash]]sleep 30[[/bash]]").await;
    assert_eq!(status, 504, "{body}");
    // The call that asked for the tool was billed by the model: so is the turn.
    let session: Value = app
        .get("/api/v1/sessions/t", ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let charged = session["data"]["total_cost_micros"].as_i64().unwrap();
    assert!(charged > 0, "{session}");
    let used = usage(&app, ALICE).await;
    assert_eq!(used["cost_micros"], charged, "{used}");
    let today: i64 = used["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["cost_micros"].as_i64().unwrap())
        .sum();
    assert_eq!(today, charged);
    assert!(used["input_tokens"].as_i64().unwrap() > 0, "{used}");
    let history = app.history(ALICE, "t").await;
    let answer = history.iter().find(|m| m["role"] == "assistant").unwrap();
    assert_eq!(answer["cost_micros"], charged);
    assert_eq!(answer["is_error"], true);
}

#[actix_web::test]
async fn deleting_a_session_mid_tool_still_charges_its_tenant() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "d").await;
    let chat = {
        let app_client = app.client.clone();
        let url = app.url("/api/v1/sessions/d/chat");
        tokio::spawn(async move {
            app_client
                .post(url)
                .header("X-API-Key", ALICE)
                .json(&serde_json::json!({"message": "[[bash]]sleep 30[[/bash]]"}))
                .send()
                .await
        })
    };
    assert!(
        eventually(30, || async {
            app.query_i64("SELECT COUNT(*) AS n FROM model_calls WHERE status = 200") >= 1
        })
        .await,
        "the tool call was asked for"
    );
    let res = app
        .delete("/api/v1/sessions/d", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let _ = chat.await;
    assert!(
        eventually(10, || async {
            usage(&app, ALICE).await["cost_micros"].as_i64().unwrap() > 0
        })
        .await,
        "the deleted turn cost its tenant nothing: {}",
        usage(&app, ALICE).await
    );
}
