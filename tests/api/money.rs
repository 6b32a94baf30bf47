//! Nothing free: a turn that ends without the CLI's own cost (timed out,
//! deleted mid-tool) is charged what its model calls used, as the model
//! gateway saw them, at the price table's prices.

use serde_json::{json, Value};

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

/// A chat in the background; resolves to its status and body.
fn chat_in_background(
    app: &TestApp,
    session: &str,
    message: &str,
) -> tokio::task::JoinHandle<(u16, Value)> {
    let client = app.client.clone();
    let url = app.url(&format!("/api/v1/sessions/{session}/chat"));
    let message = message.to_owned();
    tokio::spawn(async move {
        let res = client
            .post(url)
            .header("X-API-Key", ALICE)
            .json(&serde_json::json!({ "message": message }))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    })
}

#[actix_web::test]
async fn a_turn_is_answered_once_stored_even_when_the_database_was_locked_past_its_timeout() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "l").await;
    let chat = chat_in_background(&app, "l", "slow one [[slow 20 100]]");
    assert!(eventually(30, || async { !app.mock.requests().is_empty() }).await);
    // Held past SQLite's 10 s busy timeout: the first write of the turn's
    // end fails, and must be tried again, not reported as stored.
    let hold = WriteHold::take(&app.db);
    tokio::time::sleep(std::time::Duration::from_secs(14)).await;
    assert!(
        !chat.is_finished(),
        "answered while nothing could be stored"
    );
    drop(hold);
    let (status, body) = chat.await.unwrap();
    assert_eq!(status, 200, "{body}");
    let history = app.history(ALICE, "l").await;
    assert_eq!(history.len(), 2, "{history:?}");
    assert!(history[1]["content"].as_str().unwrap().contains("chunk19"));
    let session: Value = app
        .get("/api/v1/sessions/l", ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["data"]["turns"], 1);
    assert!(session["data"]["total_cost_micros"].as_i64().unwrap() > 0);
}

#[actix_web::test]
async fn a_turn_that_cannot_be_stored_waits_in_the_spool_and_is_stored_later() {
    let app = TestApp::spawn_with(Options::default().var("STORE_RETRY_SECONDS", "0")).await;
    if app.db.is_postgres() {
        // A PostgreSQL lock waits without failing; SQLite's times out.
        eprintln!("SKIPPED: needs SQLite's busy timeout to make a write fail");
        return;
    }
    app.create_session(ALICE, "p").await;
    let chat = chat_in_background(&app, "p", "[[bash]]sleep 2; echo slept[[/bash]]");
    // Locked while the tool runs, so the turn's end meets a locked database.
    assert!(eventually(30, || async { !app.mock.requests().is_empty() }).await);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let hold = WriteHold::take(&app.db);
    // The write fails after the busy timeout; the record is spooled and the
    // client is answered while the database is still locked.
    let (status, body) = tokio::time::timeout(std::time::Duration::from_secs(120), chat)
        .await
        .expect("answered once the record is kept")
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let spool = app.root.path().join("data/spool");
    let spooled = std::fs::read_dir(&spool).unwrap().count();
    assert!(spooled >= 1, "the turn's record is in the spool");
    drop(hold);
    assert!(
        eventually(30, || async { app.history(ALICE, "p").await.len() == 2 }).await,
        "the spooled turn was stored"
    );
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);
    assert!(usage(&app, ALICE).await["cost_micros"].as_i64().unwrap() > 0);
}

/// A server counted dead while its turn still runs (in a cluster, its
/// heartbeat very late): another instance releases what it held and charges
/// the turn what its model calls cost; the record the live server stores
/// afterwards does not charge it again.
#[actix_web::test]
async fn a_turn_of_a_server_counted_dead_is_charged_once() {
    use claude_code_api_core::db::models::instance::{release_dead, Instance};
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "twice").await;
    // What this turn costs when nothing goes wrong.
    let normal = app.chat_ok(ALICE, "twice", "[[slow 10 150]]").await;
    let turn_cost = normal["cost_micros"].as_i64().unwrap();
    assert!(turn_cost > 0);
    let spent = "SELECT spent_micros AS n FROM tenants WHERE id = 'alice'";
    let session_total = "SELECT total_cost_micros AS n FROM sessions WHERE name = 'twice'";
    let before = app.query_i64(spent);
    assert_eq!(app.query_i64(session_total), turn_cost);

    // The same turn again; halfway, another instance counts this server dead.
    let running = {
        let client = app.client.clone();
        let url = app.url("/api/v1/sessions/twice/chat");
        tokio::spawn(async move {
            let res = client
                .post(url)
                .bearer_auth(ALICE)
                .json(&json!({ "message": "[[slow 10 150]]" }))
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        })
    };
    let reserved = "SELECT count(*) AS n FROM budget_reservations";
    assert!(eventually(10, || async { app.query_i64(reserved) == 1 }).await);
    let other = Instance {
        id: "another-instance".into(),
        node_id: "another-node".into(),
    };
    let pool = claude_code_api_core::db::connect(&app.db.url).unwrap();
    let mut conn = pool.get().unwrap();
    let later = claude_code_api_core::db::now() + chrono::Duration::hours(1);
    // Every heartbeat is older than an hour from now: this server is dead.
    let released = release_dead(&mut conn, &other, later, &|_| turn_cost).unwrap();
    assert_eq!(released.reservations, 1);
    assert_eq!(released.charged_micros, turn_cost);
    drop(conn);
    let (status, body) = running.await.unwrap();
    assert_eq!(status, 200, "{body}");
    // Charged once: by the release, not again by the record.
    assert_eq!(
        app.query_i64(spent) - before,
        turn_cost,
        "spent moved by one turn"
    );
    assert_eq!(app.query_i64(session_total), 2 * turn_cost);
    assert_eq!(
        app.query_i64("SELECT reserved_micros AS n FROM tenants WHERE id = 'alice'"),
        0
    );
}
