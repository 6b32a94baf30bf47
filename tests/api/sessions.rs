//! Session CRUD, names, pagination, tenancy.

use serde_json::{json, Value};

use crate::events::{stream_chat, subscribe};
use crate::helpers::*;

/// The running turn ends and is settled before the session is deleted: its
/// budget reservation comes back and the stream ends with an error.
#[actix_web::test]
async fn deleting_a_session_mid_turn_settles_its_reservation_first() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .patch(app.url("/api/v1/admin/tenants/alice"))
        .header("X-API-Key", ADMIN)
        .json(&json!({"budget_usd": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    app.create_session(ALICE, "mid").await;
    let mut events = subscribe(&app, ALICE, "mid", None).await;
    let stream = stream_chat(&app, "mid", "long [[slow 200 100]]");
    events.until("delta", 60).await;
    let reserved = "SELECT reserved_micros AS n FROM tenants WHERE id = 'alice'";
    assert!(app.query_i64(reserved) > 0, "the turn holds a reservation");

    let res = app
        .delete("/api/v1/sessions/mid", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    // At once, no polling: nothing of the session is still to be written.
    assert_eq!(app.query_i64(reserved), 0);
    assert_eq!(app.query_i64("SELECT COUNT(*) AS n FROM events"), 0);
    let turn = tokio::time::timeout(std::time::Duration::from_secs(30), stream)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(turn.last().unwrap().0, "error", "{turn:?}");
}

#[actix_web::test]
async fn create_get_list_delete_a_session() {
    let app = TestApp::spawn_with(Options::fake()).await;
    let res = app
        .post(
            "/api/v1/sessions",
            ALICE,
            json!({"name": "proj-1", "model": "sonnet", "allowed_tools": "Read, Write", "permission_mode": "acceptEdits", "effort": "low", "max_turns": 3}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["location"], "/api/v1/sessions/proj-1");
    let body: Value = res.json().await.unwrap();
    let data = &body["data"];
    assert_eq!(data["name"], "proj-1");
    assert_eq!(data["model"], "sonnet");
    assert_eq!(data["allowed_tools"], json!(["Read", "Write"]));
    assert_eq!(data["permission_mode"], "acceptEdits");
    assert_eq!(data["total_cost_micros"], 0);
    assert_eq!(body["meta"]["version"], "v1");
    assert!(body["meta"]["request_id"].is_string());
    let workspace = app.workspace("alice", "proj-1");
    assert!(workspace.is_dir(), "workspace created");
    assert_eq!(
        data["workspace"],
        workspace.canonicalize().unwrap().to_string_lossy().as_ref()
    );

    let got: Value = app
        .get("/api/v1/sessions/proj-1", ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["data"]["id"], data["id"]);

    // Same name again: conflict, not a silent second session.
    let dup = app
        .post("/api/v1/sessions", ALICE, json!({"name": "proj-1"}))
        .send()
        .await
        .unwrap();
    assert_problem(dup, 409, "conflict").await;

    std::fs::write(workspace.join("note.txt"), "x").unwrap();
    let res = app
        .delete("/api/v1/sessions/proj-1", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(
        !workspace.exists(),
        "the session's own workspace is removed"
    );
    assert_eq!(app.query_i64("SELECT COUNT(*) AS n FROM sessions"), 0);
    let gone = app
        .get("/api/v1/sessions/proj-1", ALICE)
        .send()
        .await
        .unwrap();
    assert_problem(gone, 404, "not-found").await;
}

#[actix_web::test]
async fn invalid_names_are_refused_not_rewritten() {
    let app = TestApp::spawn_with(Options::fake()).await;
    let long = "a".repeat(129);
    for name in [
        "",
        ".hidden",
        "a/b",
        "../x",
        "sp ace",
        "ünï",
        long.as_str(),
        "a\u{0}b",
    ] {
        let res = app
            .post("/api/v1/sessions", ALICE, json!({ "name": name }))
            .send()
            .await
            .unwrap();
        assert_problem(res, 422, "validation-error").await;
    }
    let ok = "A-z_0.9".to_string() + &"b".repeat(121);
    assert_eq!(ok.len(), 128);
    app.create_session(ALICE, &ok).await;
    let res = app
        .post(
            "/api/v1/sessions",
            ALICE,
            json!({"name": "x", "permission_mode": "yolo"}),
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 422, "validation-error").await;
    let res = app
        .post(
            "/api/v1/sessions",
            ALICE,
            json!({"name": "x", "unknown_field": 1}),
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 422, "validation-error").await;
}

#[actix_web::test]
async fn lists_are_paginated_and_bad_pages_are_422() {
    let app = TestApp::spawn_with(Options::fake()).await;
    for i in 0..5 {
        app.create_session(ALICE, &format!("s{i}")).await;
    }
    app.create_session(BOB, "bobs").await;
    let body: Value = app
        .get("/api/v1/sessions?page=2&limit=2", ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["pagination"],
        json!({"total": 5, "page": 2, "limit": 2, "pages": 3})
    );
    let names: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["s2", "s3"]);
    // A page past the end is empty and still says the total.
    let past: Value = app
        .get("/api/v1/sessions?page=9&limit=2", ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(past["data"], json!([]));
    assert_eq!(past["pagination"]["total"], 5);
    for q in [
        "page=0",
        "page=-1",
        "page=x",
        "limit=0",
        "limit=101",
        "limit=abc",
    ] {
        let res = app
            .get(&format!("/api/v1/sessions?{q}"), ALICE)
            .send()
            .await
            .unwrap();
        assert_problem(res, 422, "validation-error").await;
    }
}

#[actix_web::test]
async fn another_tenants_session_is_a_404_everywhere() {
    let app = TestApp::spawn_with(Options::fake()).await;
    app.create_session(ALICE, "private").await;
    app.chat_ok(ALICE, "private", "hello").await;
    let routes = [
        ("GET", "/api/v1/sessions/private"),
        ("DELETE", "/api/v1/sessions/private"),
        ("POST", "/api/v1/sessions/private/chat"),
        ("POST", "/api/v1/sessions/private/chat/stream"),
        ("GET", "/api/v1/sessions/private/history"),
    ];
    for (method, path) in routes {
        let req = match method {
            "GET" => app.get(path, BOB),
            "DELETE" => app.delete(path, BOB),
            _ => app.post(path, BOB, json!({"message": "steal"})),
        };
        let res = req.send().await.unwrap();
        assert_problem(res, 404, "not-found").await;
    }
    let list: Value = app
        .get("/api/v1/sessions", BOB)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["pagination"]["total"], 0);
    // Bob may use the same name: his own session, his own workspace.
    let bobs = app.create_session(BOB, "private").await;
    assert!(bobs["workspace"]
        .as_str()
        .unwrap()
        .ends_with("/bob/private"));
    assert_eq!(
        app.history(ALICE, "private").await.len(),
        2,
        "alice's history untouched"
    );
}

#[actix_web::test]
async fn keys_are_required_and_checked() {
    let app = TestApp::spawn_with(Options::fake()).await;
    let res = app
        .client
        .get(app.url("/api/v1/sessions"))
        .send()
        .await
        .unwrap();
    let body = assert_problem(res, 401, "unauthorized").await;
    assert_eq!(body["instance"], "/api/v1/sessions");
    let res = app
        .get("/api/v1/sessions", "wrong-key")
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "unauthorized").await;
    let res = app
        .client
        .get(app.url("/api/v1/sessions"))
        .header("Authorization", format!("Bearer {ALICE}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Health needs no key.
    let health = app.health().await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["checks"]["database"]["status"], "ok");
    assert_eq!(health["checks"]["claude_cli"]["version"], "0.0.1-fake");
}

#[actix_web::test]
async fn without_configured_keys_one_is_generated_and_stored_hashed() {
    let root = tempfile::tempdir().unwrap();
    let mut vars = std::collections::BTreeMap::new();
    vars.insert("API_PORT".to_string(), "0".to_string());
    vars.insert(
        "DATA_DIR".to_string(),
        root.path().join("data").to_string_lossy().into_owned(),
    );
    vars.insert(
        "APPROVED_DIRECTORY".to_string(),
        root.path().join("ws").to_string_lossy().into_owned(),
    );
    vars.insert(
        "CLAUDE_CLI_PATH".to_string(),
        claude_code_api_testkit::fake_cli_path()
            .to_string_lossy()
            .into_owned(),
    );
    let settings = claude_code_api_core::config::Settings::from_vars(&vars).unwrap();
    let app = claude_code_api::app::Application::build(settings.clone())
        .await
        .unwrap();
    let key = app
        .generated_key
        .clone()
        .expect("a key is generated on first start");
    assert!(key.starts_with("cca_"));
    let base = format!("http://127.0.0.1:{}", app.port());
    actix_web::rt::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let res = client
        .get(format!("{base}/api/v1/sessions"))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = client
        .get(format!("{base}/api/v1/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // Only the hash is stored.
    for file in ["claude-code-api.db", "claude-code-api.db-wal"] {
        let bytes = std::fs::read(root.path().join("data").join(file)).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&key),
            "{file} holds the key"
        );
    }
    // A second start does not make (or show) another key.
    let mut vars2 = vars.clone();
    vars2.insert("API_PORT".to_string(), "0".to_string());
    let again = claude_code_api::app::Application::build(
        claude_code_api_core::config::Settings::from_vars(&vars2).unwrap(),
    )
    .await
    .unwrap();
    assert!(again.generated_key.is_none());
}
