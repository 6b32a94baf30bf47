//! Model access through the gateway: the operator's CLI login or an API key
//! from the environment, a tenant's own key; the mock model accepts only
//! the expected credential, and the agent (its Bash tool) sees only a
//! per-process token that the gateway refuses once its process is gone.

use std::path::Path;

use serde_json::{json, Value};

use crate::helpers::*;

const LOGIN_TOKEN: &str = "sk-ant-oat01-login-access-token";
/// Shows the agent's model variables, and any file the agent can read that
/// holds `secret` (the operator's login file is outside its sandbox). The
/// secret is written in two quoted halves, so the transcript of this very
/// prompt does not hold it.
fn scan_for(secret: &str) -> String {
    let (a, b) = secret.split_at(secret.len() / 2);
    format!(
        "[[bash]]env | grep -E '^(ANTHROPIC|CLAUDE_CODE_OAUTH)' | sort; \
         grep -rls '{a}''{b}' / --exclude-dir=proc --exclude-dir=sys --exclude-dir=usr --exclude-dir=dev; echo scanned[[/bash]]"
    )
}

fn write_login(dir: &Path, access: &str, refresh: &str, expires_at_ms: i64) {
    std::fs::create_dir_all(dir).unwrap();
    let file = json!({"claudeAiOauth": {
        "accessToken": access,
        "refreshToken": refresh,
        "expiresAt": expires_at_ms,
        "scopes": ["user:inference", "user:profile"],
        "subscriptionType": "max",
    }});
    std::fs::write(dir.join(".credentials.json"), file.to_string()).unwrap();
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn login_app(login_dir: &Path) -> TestApp {
    TestApp::spawn_with(
        Options::default()
            .var("ANTHROPIC_API_KEY", "")
            .var("CLAUDE_CONFIG_DIR", login_dir.to_string_lossy())
            .var("CLAUDE_OAUTH_TOKEN_URL", "{mock}/v1/oauth/token"),
    )
    .await
}

/// Files under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if let Ok(bytes) = std::fs::read(&path) {
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[actix_web::test]
async fn the_operators_cli_login_serves_chats_and_the_agent_never_holds_it() {
    let login = tempfile::tempdir().unwrap();
    write_login(
        login.path(),
        LOGIN_TOKEN,
        "login-refresh",
        now_ms() + 86_400_000,
    );
    let app = login_app(login.path()).await;
    app.mock.accept_only(Credential::Bearer(LOGIN_TOKEN.into()));
    let health = app.health().await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["checks"]["model_auth"]["source"], "cli_login");
    assert!(!health.to_string().contains(LOGIN_TOKEN));

    app.create_session(ALICE, "s").await;
    let answer = app.chat_ok(ALICE, "s", &scan_for(LOGIN_TOKEN)).await;
    let content = answer["content"].as_str().unwrap();
    assert!(content.contains("scanned"), "{content}");
    assert!(
        content.contains("ANTHROPIC_BASE_URL=http://127.0.0.1:"),
        "{content}"
    );
    // No file of the agent's holds it, and its environment has no real
    // credential (the CLI keeps its own process token from its tools).
    assert!(
        content.trim_end().ends_with("scanned") && !content.contains(".jsonl"),
        "{content}"
    );
    assert!(!content.contains(LOGIN_TOKEN), "{content}");
    assert!(!content.contains("ANTHROPIC_API_KEY"), "{content}");

    // The model saw the login's token, as a subscription's client sends it.
    let seen = app.mock.credentials();
    assert!(seen.len() >= 2, "{seen:?}");
    for s in &seen {
        assert_eq!(
            s.authorization.as_deref(),
            Some(format!("Bearer {LOGIN_TOKEN}").as_str())
        );
        assert_eq!(s.api_key, None);
        assert!(s.beta.as_deref().unwrap_or("").contains("oauth-2025-04-20"));
    }
    // Nothing the tenant's CLI wrote holds it either.
    let cli_state = app.root.path().join("data/cli-config");
    assert_eq!(
        files_containing(&cli_state, LOGIN_TOKEN),
        Vec::<String>::new()
    );
}

#[actix_web::test]
async fn an_expired_login_is_refreshed_once_and_stored_for_every_process() {
    let login = tempfile::tempdir().unwrap();
    write_login(
        login.path(),
        "expired-access",
        "old-refresh",
        now_ms() - 1000,
    );
    let app = login_app(login.path()).await;
    app.mock
        .accept_only(Credential::Bearer("refreshed-1".into()));
    app.create_session(ALICE, "a").await;
    app.create_session(BOB, "b").await;
    app.chat_ok(ALICE, "a", "hello from alice").await;
    app.chat_ok(BOB, "b", "hello from bob").await;

    let refreshes = app.mock.refreshes();
    assert_eq!(refreshes.len(), 1, "{refreshes:?}");
    assert_eq!(refreshes[0]["refresh_token"], "old-refresh");
    assert_eq!(
        refreshes[0]["client_id"],
        "9d1c250a-e61b-44d9-88ed-5944d1962f5e"
    );
    assert_eq!(refreshes[0]["scope"], "user:inference user:profile");
    // The login file holds the new token, as the CLI would have stored it.
    let stored: Value = serde_json::from_str(
        &std::fs::read_to_string(login.path().join(".credentials.json")).unwrap(),
    )
    .unwrap();
    let oauth = &stored["claudeAiOauth"];
    assert_eq!(oauth["accessToken"], "refreshed-1");
    assert_eq!(oauth["refreshToken"], "refresh-1");
    assert!(oauth["expiresAt"].as_i64().unwrap() > now_ms());
    assert_eq!(oauth["subscriptionType"], "max");
}

#[actix_web::test]
async fn with_an_api_key_the_model_sees_the_key_and_the_agent_a_token_worthless_elsewhere() {
    let app = TestApp::spawn().await;
    let health = app.health().await;
    assert_eq!(health["checks"]["model_auth"]["source"], "api_key");
    app.create_session(ALICE, "a").await;
    let answer = app.chat_ok(ALICE, "a", &scan_for("test-key")).await;
    let content = answer["content"].as_str().unwrap().to_owned();
    assert!(content.contains("scanned"), "{content}");
    assert!(!content.contains("test-key"), "{content}");
    let token = content
        .split("ANTHROPIC_API_KEY=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the agent has a per-process token")
        .to_owned();
    assert!(token.starts_with("ccagw_"), "{token}");
    assert!(app
        .mock
        .credentials()
        .iter()
        .all(|s| s.api_key.as_deref() == Some("test-key") && s.authorization.is_none()));

    // A token the gateway never gave is refused; so is one whose process ended.
    let probe = |token: &str| {
        format!(
            "[[bash]]curl -s -o /dev/null -w 'status=%{{http_code}}' -X POST \
             \"$ANTHROPIC_BASE_URL/v1/messages\" -H 'x-api-key: {token}' \
             -H 'content-type: application/json' -d '{{}}'[[/bash]]"
        )
    };
    let forged = app.chat_ok(ALICE, "a", &probe("ccagw_forged")).await;
    assert!(
        forged["content"].as_str().unwrap().contains("status=401"),
        "{forged}"
    );
    let res = app
        .delete("/api/v1/sessions/a", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    app.create_session(BOB, "b").await;
    let stale = app.chat_ok(BOB, "b", &probe(&token)).await;
    assert!(
        stale["content"].as_str().unwrap().contains("status=401"),
        "{stale}"
    );
}

async fn put(app: &TestApp, path: &str, key: &str, body: &Value) -> reqwest::Response {
    app.client
        .put(app.url(path))
        .header("X-API-Key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[actix_web::test]
async fn a_tenant_with_its_own_key_is_served_with_it_and_never_shown_it() {
    let app = TestApp::spawn().await;
    let secret = "sk-ant-api03-bob-own-key-0123456789";
    let path = "/api/v1/admin/tenants/bob/model-credential";
    let body = json!({"kind": "api_key", "secret": secret});
    let res = put(&app, path, ALICE, &body).await;
    assert_problem(res, 403, "forbidden").await;
    let res = put(&app, path, ADMIN, &body).await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(!text.contains(secret), "{text}");
    let shown: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(shown["data"]["kind"], "api_key");
    assert_eq!(shown["data"]["hint"], "…6789");
    let listed = app
        .get(path, ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !listed.contains(secret) && listed.contains("…6789"),
        "{listed}"
    );
    let res = put(
        &app,
        "/api/v1/admin/tenants/nobody/model-credential",
        ADMIN,
        &body,
    )
    .await;
    assert_problem(res, 404, "not-found").await;
    let res = put(
        &app,
        path,
        ADMIN,
        &json!({"kind": "password", "secret": "x"}),
    )
    .await;
    assert_problem(res, 422, "validation-error").await;

    // Only bob's key is good now: bob is served, alice (the server's key) not.
    app.mock.accept_only(Credential::ApiKey(secret.into()));
    app.create_session(BOB, "b").await;
    app.create_session(ALICE, "a").await;
    app.chat_ok(BOB, "b", "hello with my own key").await;
    let (status, _) = app.chat(ALICE, "a", "hello with the server's").await;
    assert_eq!(status, 502);
    let seen = app.mock.credentials();
    assert!(seen.iter().any(|s| s.api_key.as_deref() == Some(secret)));
    assert!(seen
        .iter()
        .any(|s| s.api_key.as_deref() == Some("test-key")));

    // Removed: bob is back on the server's key.
    let res = app.delete(path, ADMIN).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert_problem(app.get(path, ADMIN).send().await.unwrap(), 404, "not-found").await;
    app.mock.accept_only(Credential::ApiKey("test-key".into()));
    app.chat_ok(BOB, "b", "back on the server's key").await;
}

#[actix_web::test]
async fn the_gateways_usage_matches_what_the_turns_reported() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "u").await;
    app.chat_ok(ALICE, "u", "a plain answer").await;
    app.chat_ok(ALICE, "u", "[[write notes.txt]]some notes[[/write]]")
        .await;
    app.chat_ok(ALICE, "u", "[[bash]]echo one; echo two[[/bash]]")
        .await;
    let history = app.history(ALICE, "u").await;
    let reported = |field: &str| -> i64 {
        history
            .iter()
            .filter(|m| m["role"] == "assistant")
            .map(|m| m["usage"][field].as_i64().unwrap_or(0))
            .sum()
    };
    let usage: Value = app
        .get("/api/v1/usage", ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let calls = &usage["data"]["model_calls"];
    // One call for the plain answer, two for each tool turn.
    assert_eq!(calls["calls"], 5, "{usage}");
    assert_eq!(calls["input_tokens"], reported("input_tokens"), "{usage}");
    assert_eq!(calls["output_tokens"], reported("output_tokens"), "{usage}");
    // Bob's usage has none of it.
    let bob: Value = app
        .get("/api/v1/usage", BOB)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bob["data"]["model_calls"]["calls"], 0);
    assert_eq!(
        app.query_i64(
            "SELECT COUNT(*) AS n FROM model_calls WHERE tenant_id = 'alice' AND status = 200"
        ),
        5
    );
}

#[actix_web::test]
async fn without_a_credential_health_is_degraded_and_chats_fail_with_the_reason() {
    let app = TestApp::spawn_with(Options::default().var("ANTHROPIC_API_KEY", "")).await;
    let health = app.health().await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["checks"]["model_auth"]["source"], "none");
    assert_eq!(health["checks"]["model_auth"]["status"], "error");
    app.create_session(ALICE, "n").await;
    // Answered at once, naming the fix, without asking the CLI (which
    // would retry a refused call for minutes).
    let started = std::time::Instant::now();
    let (status, body) = app.chat(ALICE, "n", "hello").await;
    assert_eq!(status, 503, "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("claude-code-api login"), "{body}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "{body}"
    );
    // A job fails with the same reason, and nothing reached the model.
    let (status, job) = app
        .create_job(ALICE, "n", serde_json::json!({"message": "hello"}))
        .await;
    assert_eq!(status, 202, "{job}");
    let id = job["data"]["id"].as_str().unwrap();
    let done = app.wait_job(ALICE, "n", id, 30).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done["error"].to_string().contains("claude-code-api login"),
        "{done}"
    );
    assert!(app.mock.credentials().is_empty());
    assert!(app.mock.requests().is_empty());
}

#[actix_web::test]
async fn the_login_command_runs_the_clis_login_for_the_servers_config_folder() {
    let dir = tempfile::tempdir().unwrap();
    // A stand-in CLI that records how it was called and logs in.
    let cli = dir.path().join("claude");
    std::fs::write(
        &cli,
        "#!/bin/sh\necho \"$@|$CLAUDE_CONFIG_DIR\" > \"$CLAUDE_CONFIG_DIR/../called\"\n\
         echo '{\"claudeAiOauth\":{\"accessToken\":\"t\"}}' > \"$CLAUDE_CONFIG_DIR/.credentials.json\"\n",
    )
    .unwrap();
    let mut perms = std::fs::metadata(&cli).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&cli, perms).unwrap();
    let config = dir.path().join("operator/.claude");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_claude-code-api"))
        .arg("login")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir.path().join("operator"))
        .env("CLAUDE_CLI_PATH", &cli)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let called = std::fs::read_to_string(dir.path().join("operator/called")).unwrap();
    assert_eq!(called.trim(), format!("auth login|{}", config.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Logged in"), "{stdout}");
}
