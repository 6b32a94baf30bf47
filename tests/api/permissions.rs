//! The operator's permission policy is a ceiling: a session, template or turn
//! that asks for a mode outside the server's or the tenant's allowed set is a
//! 422 naming the allowed modes.

use serde_json::json;

use crate::helpers::*;

fn detail(problem: &serde_json::Value) -> &str {
    problem["detail"].as_str().unwrap_or_default()
}

#[actix_web::test]
async fn a_mode_outside_the_servers_set_is_refused_for_sessions_templates_and_turns() {
    let templates = tempfile::tempdir().unwrap();
    std::fs::write(
        templates.path().join("free.yaml"),
        "description: no questions asked\npermission_mode: bypassPermissions\n",
    )
    .unwrap();
    let app = TestApp::spawn_with(
        Options::default()
            .var("CLAUDE_PERMISSION_MODE", "acceptEdits")
            .var(
                "CLAUDE_ALLOWED_PERMISSION_MODES",
                "default, acceptEdits, dontAsk",
            )
            .var("TEMPLATES_DIR", templates.path().to_string_lossy()),
    )
    .await;
    let allowed = "allowed: default, acceptEdits, dontAsk";
    let res = app
        .post(
            "/api/v1/sessions",
            ALICE,
            json!({"name": "b", "permission_mode": "bypassPermissions"}),
        )
        .send()
        .await
        .unwrap();
    let problem = assert_problem(res, 422, "validation-error").await;
    assert!(detail(&problem).contains(allowed), "{problem}");
    let res = app
        .post(
            "/api/v1/sessions",
            ALICE,
            json!({"name": "t", "template": "free"}),
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 422, "validation-error").await;

    app.create_session(ALICE, "s").await;
    let turn = json!({"message": "hi", "permission_mode": "bypassPermissions"});
    let res = app
        .post("/api/v1/sessions/s/chat", ALICE, turn.clone())
        .send()
        .await
        .unwrap();
    let problem = assert_problem(res, 422, "validation-error").await;
    assert!(detail(&problem).contains(allowed), "{problem}");
    let res = app
        .post("/api/v1/sessions/s/jobs", ALICE, turn)
        .send()
        .await
        .unwrap();
    assert_problem(res, 422, "validation-error").await;
    // Nothing reached the model; an allowed mode runs.
    assert!(app.mock.requests().is_empty());
    app.chat_ok(ALICE, "s", "within the ceiling").await;
}

#[actix_web::test]
async fn a_tenant_narrowed_by_an_admin_gets_only_its_modes() {
    let app = TestApp::spawn().await;
    app.create_session(BOB, "before").await;
    let res = app
        .client
        .patch(app.url("/api/v1/admin/tenants/bob"))
        .header("X-API-Key", ADMIN)
        .json(&json!({"allowed_permission_modes": ["plan", "default"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let tenant: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        tenant["data"]["allowed_permission_modes"],
        json!(["plan", "default"])
    );
    // The server default (bypassPermissions) is beyond bob's ceiling now,
    // for the session made before too.
    let (status, problem) = app.chat(BOB, "before", "hi").await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        detail(&problem).contains("allowed: default, plan"),
        "{problem}"
    );
    let res = app
        .post("/api/v1/sessions", BOB, json!({"name": "free"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 422, "validation-error").await;
    app.create_session_with(BOB, json!({"name": "planned", "permission_mode": "plan"}))
        .await;
    app.chat_ok(BOB, "planned", "plan something").await;
    // Alice is not narrowed.
    app.create_session(ALICE, "a").await;
    app.chat_ok(ALICE, "a", "hello").await;
    // null gives bob the server's set again.
    let res = app
        .client
        .patch(app.url("/api/v1/admin/tenants/bob"))
        .header("X-API-Key", ADMIN)
        .json(&json!({"allowed_permission_modes": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    app.chat_ok(BOB, "before", "hi again").await;
}
