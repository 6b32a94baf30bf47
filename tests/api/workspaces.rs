//! `POST /sessions/{name}/repo`: moving a session to another folder of the
//! tenant's area keeps its conversation; anything outside or a link is
//! refused (422), another session's workspace too (422, naming it); and
//! deleting the session removes only the workspace it created.

use serde_json::{json, Value};

use crate::events::subscribe;
use crate::helpers::*;

#[actix_web::test]
async fn the_cli_restarts_in_the_new_directory_and_keeps_the_conversation() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "w").await;
    app.chat_ok(ALICE, "w", "remember KIWI").await;
    let repo = app.workspaces().join("alice").join("projects").join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("README"), "the repo").unwrap();
    let repo = repo.canonicalize().unwrap();

    let res = set_repo(&app, ALICE, "w", repo.to_str().unwrap()).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"]["workspace"], repo.to_string_lossy().as_ref());

    app.chat_ok(
        ALICE,
        "w",
        "[[bash]]pwd > where.txt && ls >> where.txt[[/bash]]",
    )
    .await;
    let where_ = std::fs::read_to_string(repo.join("where.txt")).unwrap();
    assert!(
        where_.starts_with(&format!("{}\n", repo.display())),
        "the CLI runs in the new directory: {where_}"
    );
    assert!(where_.contains("README"));
    assert!(!app.workspace("alice", "w").join("where.txt").exists());
    let data = app.chat_ok(ALICE, "w", "[[recall]]").await;
    let content = data["content"].as_str().unwrap();
    assert!(
        content.contains("remember KIWI"),
        "conversation kept: {content}"
    );

    // The files API follows the session to its new directory.
    let res = app
        .get("/api/v1/sessions/w/files/README", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "the repo");

    // A relative path is taken inside the tenant's area; back home again,
    // the conversation still goes on.
    let res = set_repo(&app, ALICE, "w", "w").await;
    assert_eq!(res.status(), 200);
    let data = app.chat_ok(ALICE, "w", "[[recall]]").await;
    let content = data["content"].as_str().unwrap();
    assert!(
        content.contains("remember KIWI") && content.contains("[[bash]]pwd"),
        "{content}"
    );
    // The stored workspace survives a restart.
    let again = app.restart().await;
    let data = again.chat_ok(ALICE, "w", "[[recall]]").await;
    assert!(data["content"].as_str().unwrap().contains("remember KIWI"));
}

#[actix_web::test]
async fn directories_outside_the_tenants_own_area_are_refused() {
    let app = TestApp::spawn_with(Options::fake()).await;
    app.create_session(ALICE, "s").await;
    app.create_session(ALICE, "other").await;
    std::fs::create_dir_all(app.workspace("alice", "other").join("inside")).unwrap();
    app.create_session(BOB, "b").await;
    let alice = app.workspaces().join("alice");
    std::fs::create_dir_all(alice.join("ok")).unwrap();
    std::fs::write(alice.join("file.txt"), "x").unwrap();
    let bob_dir = app.workspace("bob", "b");
    std::os::unix::fs::symlink(&bob_dir, alice.join("to-bob")).unwrap();
    std::os::unix::fs::symlink("/tmp", alice.join("to-tmp")).unwrap();
    let outside = app.root.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();

    let before: Value = app
        .get("/api/v1/sessions/s", ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for dir in [
        bob_dir.to_string_lossy().into_owned(),
        alice.join("to-bob").to_string_lossy().into_owned(),
        alice.join("to-tmp").to_string_lossy().into_owned(),
        alice.join("ok/../../bob/b").to_string_lossy().into_owned(),
        "../bob/b".into(),
        "..".into(),
        ".".into(),
        alice.to_string_lossy().into_owned(),
        outside.to_string_lossy().into_owned(),
        app.root.path().join("data").to_string_lossy().into_owned(),
        "/etc".into(),
        "/".into(),
    ] {
        let res = set_repo(&app, ALICE, "s", &dir).await;
        assert_problem(res, 422, "validation-error").await;
    }
    // Another session's workspace, or a folder in it: that session's.
    for dir in [
        app.workspace("alice", "other")
            .to_string_lossy()
            .into_owned(),
        "other/inside".into(),
    ] {
        let res = set_repo(&app, ALICE, "s", &dir).await;
        let body = assert_problem(res, 422, "validation-error").await;
        assert!(
            body["detail"].as_str().unwrap().contains("\"other\""),
            "{body}"
        );
    }
    for dir in ["missing", "file.txt"] {
        let res = set_repo(&app, ALICE, "s", dir).await;
        assert_problem(res, 404, "not-found").await;
    }
    for dir in ["", " ", "a\u{0}b"] {
        let res = set_repo(&app, ALICE, "s", dir).await;
        assert_problem(res, 422, "validation-error").await;
    }
    let res = app
        .post("/api/v1/sessions/s/repo", ALICE, json!({"path": "ok"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 422, "validation-error").await;
    let after: Value = app
        .get("/api/v1/sessions/s", ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(before["data"]["workspace"], after["data"]["workspace"]);
    // Inside the area it works.
    let res = set_repo(&app, ALICE, "s", "ok").await;
    assert_eq!(res.status(), 200);
}

#[actix_web::test]
async fn repo_is_tenant_scoped_and_waits_for_an_idle_session() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "mine").await;
    std::fs::create_dir_all(app.workspaces().join("bob").join("bobs")).unwrap();
    let res = set_repo(&app, BOB, "mine", "bobs").await;
    assert_problem(res, 404, "not-found").await;

    // While a turn runs the directory does not change under it.
    std::fs::create_dir_all(app.workspaces().join("alice").join("next")).unwrap();
    let mut events = subscribe(&app, ALICE, "mine", None).await;
    let slow = app.chat(ALICE, "mine", "[[slow 10 150]]");
    let change = async {
        events.until("turn_started", 60).await;
        set_repo(&app, ALICE, "mine", "next").await
    };
    let ((status, _), res) = tokio::join!(slow, change);
    assert_eq!(status, 200);
    let body = assert_problem(res, 409, "conflict").await;
    assert!(body["detail"].as_str().unwrap().contains("idle"), "{body}");
    let res = set_repo(&app, ALICE, "mine", "next").await;
    assert_eq!(res.status(), 200);
}

#[actix_web::test]
async fn deleting_a_session_removes_only_the_workspace_it_created() {
    let app = TestApp::spawn_with(Options::fake()).await;
    app.create_session(ALICE, "d").await;
    let created = app.workspace("alice", "d");
    let shared = app.workspaces().join("alice").join("shared-repo");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("keep.txt"), "precious").unwrap();
    let res = set_repo(&app, ALICE, "d", "shared-repo").await;
    assert_eq!(res.status(), 200);
    app.chat_ok(ALICE, "d", "hello").await;

    let res = app
        .delete("/api/v1/sessions/d", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(!created.exists(), "the workspace it created is removed");
    assert_eq!(
        std::fs::read_to_string(shared.join("keep.txt")).unwrap(),
        "precious",
        "the folder it was pointed at stays"
    );

    // A session created over a folder that already existed never owned it.
    let existing = app.workspaces().join("alice").join("pre");
    std::fs::create_dir_all(&existing).unwrap();
    app.create_session(ALICE, "pre").await;
    let res = app
        .delete("/api/v1/sessions/pre", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(existing.exists());
}
