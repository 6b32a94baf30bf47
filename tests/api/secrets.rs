//! A tenant's secrets: write-only, sealed at rest, tenant-scoped, audited by
//! name, and used by name as a repository's credential (resolved at each
//! use, so a new value applies at once).

use serde_json::{json, Value};

use crate::git_server::{bare_repo, git, GitServer};
use crate::helpers::*;

const TOKEN: &str = "SECRET-TOKEN-MARKER-5521";

/// Stores `value` as the tenant secret `name` (the answer as it came).
pub(crate) async fn put(app: &TestApp, key: &str, name: &str, value: &str) -> reqwest::Response {
    app.client
        .put(app.url(&format!("/api/v1/secrets/{name}")))
        .header("X-API-Key", key)
        .json(&json!({ "value": value }))
        .send()
        .await
        .unwrap()
}

#[actix_web::test]
async fn secrets_are_write_only_scoped_and_used_by_name_as_credentials() {
    let app = TestApp::spawn_with(Options::default().var("GIT_ALLOWED_HOSTS", "127.0.0.1")).await;
    let res = put(&app, ALICE, "GIT_TOKEN", "wrong-token").await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"]["name"], "GIT_TOKEN");
    assert!(body["data"].get("value").is_none(), "{body}");
    for (name, value) in [("1ABC", "v"), ("A-B", "v"), ("OK", "")] {
        let res = put(&app, ALICE, name, value).await;
        assert_eq!(res.status(), 422, "{name:?} {value:?}");
    }

    let remote_root = tempfile::tempdir().unwrap();
    let projects = bare_repo(remote_root.path(), "s\n");
    let server = GitServer::start("127.0.0.1:0", projects.clone(), Some(TOKEN));
    // A reference to a secret the tenant lacks is refused; so is the wrong value.
    let register = |credential: Value| {
        app.post(
            "/api/v1/repos",
            ALICE,
            json!({"name": "app", "url": server.url(), "credential": credential}),
        )
        .send()
    };
    let res = register(json!({"secret": "NOPE"})).await.unwrap();
    assert_problem(res, 422, "validation-error").await;
    let res = register(json!({"secret": "GIT_TOKEN"})).await.unwrap();
    assert_problem(res, 502, "upstream-error").await;
    // A new value applies at once.
    assert_eq!(put(&app, ALICE, "GIT_TOKEN", TOKEN).await.status(), 200);
    let res = register(json!({"secret": "GIT_TOKEN"})).await.unwrap();
    assert_eq!(res.status(), 201);
    let repo: Value = res.json().await.unwrap();
    assert_eq!(repo["data"]["credential_secret"], "GIT_TOKEN");
    assert_eq!(repo["data"]["has_credential"], true);

    app.create_session_with(ALICE, json!({"name": "s", "repo": {"name": "app"}}))
        .await;
    std::fs::write(app.workspace("alice", "s").join("f"), "x").unwrap();
    let res = app
        .post(
            "/api/v1/sessions/s/commit",
            ALICE,
            json!({"message": "by secret"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .post("/api/v1/sessions/s/push", ALICE, json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    assert_eq!(
        git(
            &projects.join("repo.git"),
            &["log", "-1", "--format=%s", "cca/s"]
        ),
        "by secret"
    );

    // Listed by name with its dates; never its value; another tenant sees none.
    let listed = get_json(&app, "/api/v1/secrets", ALICE).await;
    assert_eq!(listed["data"][0]["name"], "GIT_TOKEN");
    assert!(listed["data"][0]["last_used_at"].is_string(), "{listed}");
    assert!(!listed.to_string().contains(TOKEN));
    assert_eq!(
        get_json(&app, "/api/v1/secrets", BOB).await["data"],
        json!([])
    );
    let res = app
        .delete("/api/v1/secrets/GIT_TOKEN", BOB)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // Sealed at rest, audited by name only.
    for value in app.query_strings("SELECT value AS s FROM tenant_secrets") {
        assert!(value.starts_with("v1:") && !value.contains(TOKEN));
    }
    let audit = app.query_strings("SELECT action || ' ' || target AS s FROM audit_log");
    assert!(
        audit.iter().any(|a| a == "secret.put GIT_TOKEN"),
        "{audit:?}"
    );
    assert!(audit.iter().all(|a| !a.contains(TOKEN)));

    // Deleted, what refers to it stops working with a clear conflict.
    let res = app
        .delete("/api/v1/secrets/GIT_TOKEN", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    std::fs::write(app.workspace("alice", "s").join("g"), "y").unwrap();
    let res = app
        .post("/api/v1/sessions/s/commit", ALICE, json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .post("/api/v1/sessions/s/push", ALICE, json!({}))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(res, 409, "conflict").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("GIT_TOKEN"),
        "{problem}"
    );
}
