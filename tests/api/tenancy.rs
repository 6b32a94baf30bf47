//! A shared server: keys and tenants, roles, rate limits, budgets, quotas,
//! usage and audit.

use std::process::Command;

use serde_json::{json, Value};

use crate::helpers::*;

async fn data(res: reqwest::Response) -> Value {
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert!(status.is_success(), "{status}: {body}");
    body["data"].clone()
}

/// A key of `role` for `tenant`, made by the owner.
async fn key_of(app: &TestApp, tenant: &str, role: &str) -> Value {
    let res = app
        .post(
            "/api/v1/admin/keys",
            ADMIN,
            json!({"tenant": tenant, "role": role}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["data"].clone()
}

#[actix_web::test]
async fn a_viewer_reads_and_an_admin_manages_only_its_own_tenant() {
    let app = TestApp::spawn_with(Options::fake()).await;
    app.create_session(ALICE, "alices").await;
    let viewer = key_of(&app, "alice", "viewer").await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin = key_of(&app, "alice", "admin").await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let bobs = key_of(&app, "bob", "member").await;

    // A viewer reads sessions, history and usage, and changes nothing.
    for path in [
        "/api/v1/sessions",
        "/api/v1/sessions/alices",
        "/api/v1/usage",
    ] {
        let res = app.get(path, &viewer).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
    for (path, body) in [
        ("/api/v1/sessions", json!({"name": "by-a-viewer"})),
        ("/api/v1/sessions/alices/chat", json!({"message": "hi"})),
        ("/api/v1/sessions/alices/jobs", json!({"message": "hi"})),
    ] {
        let res = app.post(path, &viewer, body).send().await.unwrap();
        let problem = assert_problem(res, 403, "forbidden").await;
        assert!(
            problem["detail"].as_str().unwrap().contains("viewer"),
            "{problem}"
        );
    }
    let res = app
        .delete("/api/v1/sessions/alices", &viewer)
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "forbidden").await;
    // Nor does it read the secret webhooks are signed with.
    let res = app
        .get("/api/v1/webhooks/secret", &viewer)
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "forbidden").await;
    assert_eq!(
        app.query_i64("SELECT COUNT(*) AS n FROM sessions WHERE tenant_id = 'alice'"),
        1
    );

    // An admin sees and manages its own tenant, not the server's.
    let tenants = data(
        app.get("/api/v1/admin/tenants", &admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let names: Vec<&str> = tenants
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice"]);
    let res = app
        .post("/api/v1/admin/tenants", &admin, json!({"name": "dora"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "forbidden").await;
    let keys = data(app.get("/api/v1/admin/keys", &admin).send().await.unwrap()).await;
    assert!(keys
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["tenant"] == "alice"));
    assert!(!keys.as_array().unwrap().is_empty());
    let res = app
        .get("/api/v1/admin/keys?tenant=bob", &admin)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
    for (body, status, kind) in [
        (json!({"tenant": "bob"}), 404, "not-found"),
        (
            json!({"tenant": "alice", "role": "owner"}),
            403,
            "forbidden",
        ),
        (
            json!({"tenant": "alice", "role": "root"}),
            422,
            "validation-error",
        ),
    ] {
        let res = app
            .post("/api/v1/admin/keys", &admin, body)
            .send()
            .await
            .unwrap();
        assert_problem(res, status, kind).await;
    }
    let made = data(
        app.post(
            "/api/v1/admin/keys",
            &admin,
            json!({"tenant": "alice", "role": "viewer", "label": "dashboard"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(made["role"], "viewer");
    // Another tenant's key is not found; the owner's key outranks it.
    let res = app
        .post(
            &format!("/api/v1/admin/keys/{}/revoke", bobs["id"].as_str().unwrap()),
            &admin,
            json!({}),
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
    let res = app
        .post(
            "/api/v1/admin/keys/key_test_admin/revoke",
            &admin,
            json!({}),
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "forbidden").await;
    // Trust rules are the owner's: every tenant's rules match one issuer's
    // tokens, so a tenant's admin could claim another tenant's.
    let res = app
        .post(
            "/api/v1/admin/trust-rules",
            &admin,
            json!({"name": "a", "issuer": "https://token.actions.githubusercontent.com",
                   "audience": "https://cca.test", "claims": {"repository": "bob/app"},
                   "tenant": "alice"}),
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "forbidden").await;
    // The server's own settings are the owner's.
    for path in [
        "/api/v1/admin/nodes",
        "/api/v1/admin/tenants/alice/egress",
        "/api/v1/admin/trust-rules",
    ] {
        let res = app.get(path, &admin).send().await.unwrap();
        assert_problem(res, 403, "forbidden").await;
    }
    let res = app
        .get("/api/v1/usage?tenant=bob", &admin)
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "forbidden").await;
    // Bob's key still works; the owner sees every tenant's keys.
    let res = app
        .get("/api/v1/sessions", bobs["key"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let all = data(app.get("/api/v1/admin/keys", ADMIN).send().await.unwrap()).await;
    assert!(all.to_string().contains("\"bob\""), "{all}");
}

#[actix_web::test]
async fn admins_manage_tenants_and_keys_members_cannot() {
    let app = TestApp::spawn_with(Options::fake()).await;
    let res = app
        .get("/api/v1/admin/tenants", ALICE)
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "forbidden").await;
    let res = app
        .post("/api/v1/admin/keys", ALICE, json!({"tenant": "alice"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "forbidden").await;
    // A machine key's label cannot pass for a person's in the audit log.
    let res = app
        .post(
            "/api/v1/admin/keys",
            ADMIN,
            json!({"tenant": "alice", "label": "ci (person:bob)"}),
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 422, "validation-error").await;

    let tenant = data(
        app.post(
            "/api/v1/admin/tenants",
            ADMIN,
            json!({"name": "carol", "budget_usd": 5, "max_sessions": 3}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(tenant["budget_micros"], 5_000_000);
    assert_eq!(tenant["max_sessions"], 3);
    let created = app
        .post(
            "/api/v1/admin/keys",
            ADMIN,
            json!({"tenant": "carol", "label": "ci pipeline"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created = created.json::<Value>().await.unwrap()["data"].clone();
    let key = created["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("cca_"), "{key}");
    assert_eq!(created["role"], "member");

    // The new key works, in its own tenant.
    app.create_session(&key, "carols").await;
    let list = data(app.get("/api/v1/sessions", ALICE).send().await.unwrap()).await;
    assert!(list.as_array().unwrap().is_empty());
    // Listing never shows a key again; the database holds only its hash.
    let keys = data(
        app.get("/api/v1/admin/keys?tenant=carol", ADMIN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(keys.as_array().unwrap().len(), 1);
    assert!(keys[0].get("key").is_none());
    assert!(!keys.to_string().contains(&key));

    let revoked = data(
        app.post(
            &format!(
                "/api/v1/admin/keys/{}/revoke",
                created["id"].as_str().unwrap()
            ),
            ADMIN,
            json!({}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert!(revoked["revoked_at"].is_string());
    let res = app.get("/api/v1/sessions", &key).send().await.unwrap();
    assert_problem(res, 401, "unauthorized").await;

    // Limits can be changed and returned to the server default.
    let updated = data(
        app.client
            .patch(app.url("/api/v1/admin/tenants/carol"))
            .header("X-API-Key", ADMIN)
            .json(&json!({"max_sessions": null, "budget_usd": 7.5}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(updated["max_sessions"], Value::Null);
    assert_eq!(updated["budget_micros"], 7_500_000);
}

/// Runs the admin command (`keys …`, `tenants …`) as its own process on the
/// app's database; returns what it printed.
fn admin_cli(app: &TestApp, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_claude-code-api"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &app.db.url)
        .env("DATA_DIR", app.root.path().join("data"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[actix_web::test]
async fn the_keys_command_creates_lists_and_revokes() {
    let app = TestApp::spawn_with(Options::fake()).await;
    let cli = |args: &[&str]| admin_cli(&app, args);
    let printed = cli(&[
        "keys", "create", "--tenant", "dave", "--role", "admin", "--label", "ops",
    ]);
    let key = printed
        .split_whitespace()
        .find(|w| w.starts_with("cca_"))
        .unwrap()
        .to_string();
    assert_eq!(
        app.get("/api/v1/admin/tenants", &key)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let listed = cli(&["keys", "list", "--tenant", "dave"]);
    assert!(
        listed.contains("admin") && listed.contains("ops") && listed.contains("active"),
        "{listed}"
    );
    assert!(!listed.contains(&key));
    let id = listed.split_whitespace().next().unwrap().to_string();
    cli(&["keys", "revoke", &id]);
    // Another process changed the database: on SQLite the server's cached
    // key expires within AUTH_CACHE_SECONDS (1 s by default).
    let refused = eventually(3, || async {
        app.get("/api/v1/sessions", &key)
            .send()
            .await
            .unwrap()
            .status()
            == 401
    })
    .await;
    assert!(refused, "the revoked key is refused");
    let tenants = cli(&[
        "tenants",
        "update",
        "dave",
        "--budget-usd",
        "2.5",
        "--max-sessions",
        "4",
    ]);
    assert!(
        tenants.contains("budget $2.50") && tenants.contains("max_sessions 4"),
        "{tenants}"
    );
}

#[actix_web::test]
async fn requests_are_rate_limited_per_key() {
    let app = TestApp::spawn_with(
        Options::fake()
            .var("RATE_LIMIT_REQUESTS", "5")
            .var("RATE_LIMIT_WINDOW", "60"),
    )
    .await;
    for expected in (0..5).rev() {
        let res = app.get("/api/v1/sessions", ALICE).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["ratelimit-limit"], "5");
        assert_eq!(
            res.headers()["ratelimit-remaining"],
            expected.to_string().as_str()
        );
        assert!(res.headers().contains_key("ratelimit-reset"));
    }
    let res = app.get("/api/v1/sessions", ALICE).send().await.unwrap();
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=12).contains(&retry_after), "{retry_after}");
    assert_problem(res, 429, "rate-limited").await;
    // Another key has its own budget; health is never limited.
    assert_eq!(
        app.get("/api/v1/sessions", BOB)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.client
            .get(app.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[actix_web::test]
async fn a_tenant_budget_stops_turns_within_one_turn_under_concurrency() {
    // The fake CLI charges 0.001 USD per turn; 0.001 is held per running turn.
    let app = TestApp::spawn_with(Options::fake().var("BUDGET_RESERVATION_USD", "0.001")).await;
    data(
        app.client
            .patch(app.url("/api/v1/admin/tenants/alice"))
            .header("X-API-Key", ADMIN)
            .json(&json!({"budget_usd": 0.0035}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    for i in 0..8 {
        app.create_session(ALICE, &format!("b{i}")).await;
    }
    let chats = (0..8).map(|i| {
        let app = &app;
        async move { app.chat(ALICE, &format!("b{i}"), "spend").await }
    });
    let results = futures_util::future::join_all(chats).await;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let refused: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == 402)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(ok + refused.len(), 8, "{results:?}");
    assert!(!refused.is_empty(), "the budget stopped some turns");
    let problem = refused[0];
    assert_eq!(
        problem["type"],
        "urn:claude-code-api:problem:budget_exceeded"
    );
    assert_eq!(problem["limit_micros"], 3500);
    assert!(problem["spent"].is_number());
    let spent = app
        .db
        .query_i64("SELECT spent_micros AS n FROM tenants WHERE id = 'alice'");
    assert!(
        spent <= 3500 + 1000,
        "at most one turn past the limit: {spent}"
    );
    assert_eq!(spent, 1000 * ok as i64, "every turn that ran was charged");
    assert_eq!(
        app.db
            .query_i64("SELECT reserved_micros AS n FROM tenants WHERE id = 'alice'"),
        0
    );
    // Bob has no budget and is not affected.
    app.create_session(BOB, "free").await;
    app.chat_ok(BOB, "free", "hi").await;
    // Jobs are refused up front too.
    let (status, body) = app
        .create_job(ALICE, "b0", json!({"message": "more"}))
        .await;
    assert_eq!(status, 402, "{body}");
}

#[actix_web::test]
async fn a_session_budget_and_the_session_cap_hold() {
    let app = TestApp::spawn_with(Options::fake().var("MAX_SESSIONS_PER_TENANT", "2")).await;
    let s = app
        .create_session_with(ALICE, json!({"name": "capped", "budget_usd": 0.0015}))
        .await;
    assert_eq!(s["budget_micros"], 1500);
    // A budget that would round to no micro-USD at all is refused.
    for tiny in [0.0, 1e-9, -1.0] {
        let res = app
            .post(
                "/api/v1/sessions",
                ALICE,
                json!({"name": "tiny", "budget_usd": tiny}),
            )
            .send()
            .await
            .unwrap();
        assert_problem(res, 422, "validation-error").await;
    }
    app.chat_ok(ALICE, "capped", "one").await;
    app.chat_ok(ALICE, "capped", "two").await;
    let (status, body) = app.chat(ALICE, "capped", "three").await;
    assert_eq!(status, 402, "{body}");
    assert_eq!(body["scope"], "session");
    app.create_session(ALICE, "second").await;
    let res = app
        .post("/api/v1/sessions", ALICE, json!({"name": "third"}))
        .send()
        .await
        .unwrap();
    let body = assert_problem(res, 409, "conflict").await;
    assert!(body["detail"].as_str().unwrap().contains("limit"));
    assert_eq!(
        app.query_i64("SELECT COUNT(*) AS n FROM sessions WHERE tenant_id = 'alice'"),
        2,
        "nothing was deleted to make room"
    );
}

#[actix_web::test]
async fn usage_adds_up_and_audit_records_who_did_what() {
    let app = TestApp::spawn_with(Options::fake()).await;
    app.create_session(ALICE, "u").await;
    for i in 0..3 {
        app.chat_ok(ALICE, "u", &format!("turn {i}")).await;
    }
    let (_, job) = app
        .create_job(ALICE, "u", json!({"message": "a job"}))
        .await;
    app.wait_job(ALICE, "u", job["data"]["id"].as_str().unwrap(), 30)
        .await;
    app.create_session(BOB, "theirs").await;
    app.chat_ok(BOB, "theirs", "bob's turn").await;

    let usage = data(app.get("/api/v1/usage", ALICE).send().await.unwrap()).await;
    let history = app.history(ALICE, "u").await;
    let cost: i64 = history
        .iter()
        .map(|m| m["cost_micros"].as_i64().unwrap())
        .sum();
    assert_eq!(usage["cost_micros"], cost);
    assert_eq!(usage["turns"], 4);
    assert_eq!(usage["sessions"], 1);
    assert_eq!(usage["jobs"]["done"], 1);
    assert_eq!(usage["input_tokens"], 4);
    assert_eq!(usage["days"].as_array().unwrap().len(), 1);
    assert_eq!(usage["days"][0]["turns"], 4);
    assert_eq!(usage["days"][0]["cost_micros"], cost);
    // Another tenant's usage: admins only.
    let res = app
        .get("/api/v1/usage?tenant=bob", ALICE)
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "forbidden").await;
    let bobs = data(
        app.get("/api/v1/usage?tenant=bob", ADMIN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(bobs["turns"], 1);

    // What a session used outlives it.
    let res = app
        .delete("/api/v1/sessions/u", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let after = data(app.get("/api/v1/usage", ALICE).send().await.unwrap()).await;
    assert_eq!(after["sessions"], 0);
    for field in [
        "turns",
        "cost_micros",
        "input_tokens",
        "output_tokens",
        "days",
    ] {
        assert_eq!(after[field], usage[field], "{field} after the delete");
    }
    assert_eq!(
        app.query_i64("SELECT COUNT(*) AS n FROM usage_daily WHERE tenant_id = 'alice'"),
        1
    );

    let audit = data(
        app.get("/api/v1/audit?limit=100", ALICE)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"session.create")
            && actions.contains(&"chat")
            && actions.contains(&"job.create"),
        "{actions:?}"
    );
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["tenant"] == "alice"),
        "only alice's entries"
    );
    let entry = &audit[0];
    assert!(entry["key_id"].as_str().unwrap().starts_with("key_"));
    assert_eq!(entry["key_label"], "API_KEYS");
    assert!(entry["request_id"].as_str().is_some_and(|r| !r.is_empty()));
    assert!(entry["client_addr"]
        .as_str()
        .is_some_and(|a| a.starts_with("127.0.0.1")));
    assert!(
        !audit.to_string().contains(ALICE),
        "the key itself never appears"
    );
    let all = data(
        app.get("/api/v1/audit?limit=100", ADMIN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(all.as_array().unwrap().iter().any(|e| e["tenant"] == "bob"));
}

#[actix_web::test]
async fn tokens_are_estimated_and_deny_patterns_refuse() {
    let app =
        TestApp::spawn_with(Options::fake().var("DENY_PATTERNS", "rm -rf /,DROP TABLE")).await;
    let count = data(
        app.post(
            "/api/v1/tokens/count",
            ALICE,
            json!({"text": "The quick brown fox jumps over the lazy dog."}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(count["characters"], 44);
    assert_eq!(count["words"], 9);
    assert_eq!(count["estimated_tokens"], 12);
    app.create_session(ALICE, "d").await;
    let res = app
        .post(
            "/api/v1/sessions/d/chat",
            ALICE,
            json!({"message": "please drop table users"}),
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 422, "validation-error").await;
    assert!(app.history(ALICE, "d").await.is_empty());
}

#[actix_web::test]
async fn one_tenants_burst_does_not_starve_another() {
    let app =
        TestApp::spawn_with(Options::default().var("MAX_RUNNING_TURNS_PER_TENANT", "1")).await;
    let mut alices = Vec::new();
    for i in 0..3 {
        app.create_session(ALICE, &format!("burst{i}")).await;
        let (_, job) = app
            .create_job(
                ALICE,
                &format!("burst{i}"),
                json!({"message": format!("job {i} [[slow 15 100]]")}),
            )
            .await;
        alices.push((
            format!("burst{i}"),
            job["data"]["id"].as_str().unwrap().to_string(),
        ));
    }
    app.create_session(BOB, "single").await;
    let (_, bobs) = app
        .create_job(BOB, "single", json!({"message": "bob's only job"}))
        .await;
    let bobs = bobs["data"]["id"].as_str().unwrap().to_string();
    let bob_done = app.wait_job(BOB, "single", &bobs, 60).await;
    assert_eq!(bob_done["status"], "done");
    let mut finished = Vec::new();
    for (session, id) in &alices {
        let job = app.wait_job(ALICE, session, id, 90).await;
        assert_eq!(job["status"], "done", "{job}");
        finished.push((
            job["started_at"].as_str().unwrap().to_string(),
            job["completed_at"].as_str().unwrap().to_string(),
            id.clone(),
        ));
    }
    finished.sort();
    // Alice's turns never overlapped: one permit. (Judged by the job_status
    // events, which follow the permit hand-off; see `started_after`.)
    for pair in finished.windows(2) {
        assert!(
            started_after(&app, &pair[1].2, &pair[0].2),
            "overlap: {pair:?}"
        );
    }
    // Bob waited for at most one of Alice's turns, not for her whole burst.
    let bob_completed = bob_done["completed_at"].as_str().unwrap().to_string();
    assert!(
        bob_completed < finished[1].1,
        "bob {bob_completed} vs alice {finished:?}"
    );
}

#[actix_web::test]
async fn a_chat_that_cannot_get_a_turn_in_time_is_a_429() {
    let app = TestApp::spawn_with(
        Options::default()
            .var("MAX_RUNNING_TURNS_PER_TENANT", "1")
            .var("CHAT_QUEUE_TIMEOUT_SECONDS", "1"),
    )
    .await;
    app.create_session(ALICE, "busy").await;
    app.create_session(ALICE, "other").await;
    let (_, job) = app
        .create_job(ALICE, "busy", json!({"message": "long [[slow 40 100]]"}))
        .await;
    let id = job["data"]["id"].as_str().unwrap().to_string();
    assert!(
        eventually(30, || async {
            app.job(ALICE, "busy", &id).await["status"] == "running"
        })
        .await
    );
    let res = app
        .post(
            "/api/v1/sessions/other/chat",
            ALICE,
            json!({"message": "now please"}),
        )
        .send()
        .await
        .unwrap();
    assert!(res.headers().contains_key("retry-after"));
    assert_problem(res, 429, "too-many-running-turns").await;
    assert_eq!(app.wait_job(ALICE, "busy", &id, 60).await["status"], "done");
    // Once the permit is free, the chat goes through.
    app.chat_ok(ALICE, "other", "now please").await;
}

/// Sets alice's `max_running_turns` over the admin API.
async fn set_turn_limit(app: &TestApp, limit: u32) {
    let tenant = data(
        app.client
            .patch(app.url("/api/v1/admin/tenants/alice"))
            .header("X-API-Key", ADMIN)
            .json(&json!({ "max_running_turns": limit }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(tenant["max_running_turns"], limit);
}

/// Queues a job on `session`; returns its id.
async fn start_job(app: &TestApp, session: &str, message: &str) -> String {
    let (status, body) = app
        .create_job(ALICE, session, json!({ "message": message }))
        .await;
    assert_eq!(status, 202, "{body}");
    body["data"]["id"].as_str().unwrap().to_string()
}

async fn wait_done(app: &TestApp, session: &str, id: &str) {
    let job = app.wait_job(ALICE, session, id, 90).await;
    assert_eq!(job["status"], "done", "{job}");
}

/// Whether job `later` started after job `earlier` had ended, by the times
/// the server stamped on their `job_status` events. Those follow the permit
/// hand-off (a turn's end is emitted before its permit is given back), while
/// the job row's `completed_at` is written a moment later and may trail the
/// next job's `started_at`.
fn started_after(app: &TestApp, later: &str, earlier: &str) -> bool {
    let stamped = |id: &str, status: &str| {
        app.query_i64(&format!(
            "SELECT COUNT(*) AS n FROM events WHERE kind = 'job_status' \
             AND payload LIKE '%{id}%' AND payload LIKE '%\"{status}\"%'"
        ))
    };
    assert_eq!(stamped(later, "running"), 1, "{later} started once");
    assert_eq!(stamped(earlier, "done"), 1, "{earlier} ended once");
    let n = app.query_i64(&format!(
        "SELECT COUNT(*) AS n FROM events s, events e \
         WHERE s.kind = 'job_status' AND s.payload LIKE '%{later}%' \
         AND s.payload LIKE '%\"running\"%' \
         AND e.kind = 'job_status' AND e.payload LIKE '%{earlier}%' \
         AND e.payload LIKE '%\"done\"%' \
         AND s.created_at >= e.created_at"
    ));
    n == 1
}

async fn wait_running(app: &TestApp, session: &str, id: &str) {
    let running = eventually(60, || async {
        app.job(ALICE, session, id).await["status"] == "running"
    })
    .await;
    assert!(running, "job {id} on {session} never ran");
}

/// Live sessions of the tenant: their actors and warm CLI processes exist
/// before any limit below changes.
async fn live_sessions(app: &TestApp, names: &[&str]) {
    for name in names {
        app.create_session(ALICE, name).await;
        app.chat_ok(ALICE, name, "warm up").await;
    }
}

#[actix_web::test]
async fn a_raised_turn_limit_starts_the_waiting_turns_of_live_sessions_at_once() {
    let app = TestApp::spawn().await;
    set_turn_limit(&app, 1).await;
    live_sessions(&app, &["up0", "up1"]).await;
    let first = start_job(&app, "up0", "first [[slow 40 100]]").await;
    wait_running(&app, "up0", &first).await;
    let second = start_job(&app, "up1", "second [[slow 10 100]]").await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        app.job(ALICE, "up1", &second).await["status"],
        "queued",
        "one permit: the second job waits"
    );

    set_turn_limit(&app, 2).await;
    wait_done(&app, "up1", &second).await;
    wait_done(&app, "up0", &first).await;
    assert!(
        !started_after(&app, &second, &first),
        "the waiting job started while the first ran"
    );

    // Lowered again: the next turns of the same live sessions take turns.
    set_turn_limit(&app, 1).await;
    let third = start_job(&app, "up0", "third [[slow 10 100]]").await;
    let fourth = start_job(&app, "up1", "fourth [[slow 10 100]]").await;
    wait_done(&app, "up0", &third).await;
    wait_done(&app, "up1", &fourth).await;
    assert!(
        started_after(&app, &fourth, &third) || started_after(&app, &third, &fourth),
        "one permit: they did not overlap"
    );
}

#[actix_web::test]
async fn a_lowered_turn_limit_holds_new_turns_of_live_sessions_until_enough_finish() {
    let app = TestApp::spawn().await;
    set_turn_limit(&app, 2).await;
    live_sessions(&app, &["down0", "down1", "down2"]).await;
    let short = start_job(&app, "down0", "short [[slow 20 100]]").await;
    let long = start_job(&app, "down1", "long [[slow 40 100]]").await;
    wait_running(&app, "down0", &short).await;
    wait_running(&app, "down1", &long).await;

    // The admin command is another process: the server reads the new limit
    // from the database when the next turn asks for a permit.
    let printed = admin_cli(
        &app,
        &["tenants", "update", "alice", "--max-running-turns", "1"],
    );
    assert!(printed.contains("max_running_turns 1"), "{printed}");
    let next = start_job(&app, "down2", "next").await;

    wait_done(&app, "down2", &next).await;
    wait_done(&app, "down0", &short).await;
    wait_done(&app, "down1", &long).await;
    // Two ran under a limit of one: the next turn waited for both, not
    // just for the first to finish.
    assert!(started_after(&app, &next, &short));
    assert!(
        started_after(&app, &next, &long),
        "the next turn started before the second running one ended"
    );
}

/// `API_KEYS` is applied at every start: a key moved to another tenant
/// moves, a key removed and listed again is active again, a key made with
/// `keys create` is never taken over by the list (startup stops, naming
/// it), and a short key is never shown whole.
#[actix_web::test]
async fn api_keys_moves_reactivates_and_never_shows_a_short_key() {
    const SHORT: &str = "k3y-0123";
    let first = TestApp::spawn_with(
        Options::fake().var("API_KEYS", format!("alice:{ALICE},bob:{BOB},carol:{SHORT}")),
    )
    .await;
    first.create_session(ALICE, "alices").await;
    first.create_session(BOB, "bobs").await;
    let res = first.get("/api/v1/sessions", SHORT).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let keys: Value = first
        .get("/api/v1/admin/keys", ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for key in keys["data"].as_array().unwrap() {
        let prefix = key["prefix"].as_str().unwrap();
        assert!(
            !SHORT.starts_with(prefix) || prefix.len() * 4 <= SHORT.len(),
            "{key}"
        );
        if key["tenant"] == "carol" {
            assert_eq!(prefix, "k3", "{key}");
        }
    }

    // ALICE's key moves to bob; carol's key leaves the list.
    let moved = first
        .restart_with("API_KEYS", &format!("bob:{ALICE},bob:{BOB}"))
        .await;
    let names = |body: Value| -> Vec<String> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let res = moved.get("/api/v1/sessions", ALICE).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(names(res.json().await.unwrap()), ["bobs"], "the key moved");
    let res = moved
        .get("/api/v1/sessions/alices", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = moved.get("/api/v1/sessions", SHORT).send().await.unwrap();
    assert_eq!(res.status(), 401, "a key no longer listed is revoked");

    // Listed again: active again, in the tenant the list names.
    let back = moved
        .restart_with(
            "API_KEYS",
            &format!("alice:{ALICE},bob:{BOB},carol:{SHORT}"),
        )
        .await;
    let res = back.get("/api/v1/sessions", SHORT).send().await.unwrap();
    assert_eq!(res.status(), 200, "a key listed again is active again");
    let res = back.get("/api/v1/sessions", ALICE).send().await.unwrap();
    assert_eq!(names(res.json().await.unwrap()), ["alices"]);

    // A key an admin made (here ADMIN, of alice) is not the list's to move.
    let mut vars = back.options_vars.clone();
    vars.insert("API_KEYS".into(), format!("bob:{ADMIN},bob:{BOB}"));
    let settings = claude_code_api_core::config::Settings::from_vars(&vars).unwrap();
    let refused = claude_code_api::app::Application::build(settings)
        .await
        .err()
        .expect("startup stops");
    let message = format!("{refused:#}");
    assert!(
        message.contains("API_KEYS") && message.contains("key_test_admin"),
        "{message}"
    );
    let res = back.get("/api/v1/sessions", ADMIN).send().await.unwrap();
    assert_eq!(
        names(res.json().await.unwrap()),
        ["alices"],
        "nothing moved"
    );
    // The same key listed for two tenants stops startup too.
    vars.insert("API_KEYS".into(), format!("alice:{ALICE},bob:{ALICE}"));
    let settings = claude_code_api_core::config::Settings::from_vars(&vars).unwrap();
    let refused = claude_code_api::app::Application::build(settings)
        .await
        .err()
        .expect("startup stops");
    assert!(format!("{refused:#}").contains("list each key once"));
}

/// Guessing keys is limited per client address, whatever keys are tried:
/// past `AUTH_FAILURE_LIMIT` failures every request with a key from there is
/// a 429 with `Retry-After` (a right key too, unless it worked from there
/// before: no oracle). `X-Forwarded-For` names the client only behind a
/// proxy in `TRUSTED_PROXIES`.
#[actix_web::test]
async fn failed_authentications_are_limited_per_client_address() {
    let app = TestApp::spawn_with(Options::fake().var("AUTH_FAILURE_LIMIT", "5")).await;
    let direct = TestApp::spawn_with(Options::fake()).await;
    for i in 0..5 {
        let res = app
            .get("/api/v1/sessions", &format!("cca_guess-{i}"))
            .send()
            .await
            .unwrap();
        assert_problem(res, 401, "unauthorized").await;
    }
    for (key, forwarded) in [
        ("cca_guess-5", None),
        (ALICE, None),
        // Not from a trusted proxy: the header is not believed.
        ("cca_guess-6", Some("198.51.100.9")),
    ] {
        let mut req = app.get("/api/v1/sessions", key);
        if let Some(addr) = forwarded {
            req = req.header("X-Forwarded-For", addr);
        }
        let res = req.send().await.unwrap();
        let retry: u64 = res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        let problem = assert_problem(res, 429, "rate-limited").await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("failed authentications"),
            "{problem}"
        );
    }
    // The OpenAI surface and MCP share the count.
    let res = app.get("/v1/models", "cca_guess-7").send().await.unwrap();
    assert_problem(res, 429, "rate-limited").await;
    // Requests without a key are not authentication attempts.
    let res = app
        .client
        .get(app.url("/api/v1/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // Behind a trusted proxy, each forwarded client counts on its own.
    let proxied = TestApp::spawn_with(
        Options::fake()
            .var("AUTH_FAILURE_LIMIT", "3")
            .var("TRUSTED_PROXIES", "127.0.0.0/8,::1"),
    )
    .await;
    let from = |client: &str, key: &str| {
        proxied
            .get("/api/v1/sessions", key)
            .header("X-Forwarded-For", format!("6.6.6.6, {client}"))
    };
    for i in 0..3 {
        let res = from("203.0.113.1", &format!("cca_guess-{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    let res = from("203.0.113.1", ALICE).send().await.unwrap();
    assert_problem(res, 429, "rate-limited").await;
    // Another client behind the same proxy is not held back; nor does a
    // forged entry left of the proxy's own help the first one.
    let res = from("203.0.113.2", ALICE).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = proxied
        .get("/api/v1/sessions", ALICE)
        .header("X-Forwarded-For", "203.0.113.99, 203.0.113.1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);

    // The audit log names the same client: the forwarded one behind a
    // trusted proxy, the socket's peer otherwise.
    for (server, expected) in [(&proxied, "203.0.113.2"), (&direct, "127.0.0.1")] {
        let res = server
            .post("/api/v1/sessions", BOB, json!({"name": "audited"}))
            .header("X-Forwarded-For", "203.0.113.2")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let audit: Value = server
            .get("/api/v1/audit", BOB)
            .header("X-Forwarded-For", "203.0.113.2")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(audit["data"][0]["client_addr"], expected, "{audit}");
    }
}

/// Behind a trusted proxy, one client's bad guesses lock out that client
/// only. A locked address still serves the keys that authenticated from it
/// before (a neighbour behind the same NAT keeps working); any other key,
/// right or wrong, waits like a guess.
#[actix_web::test]
async fn guesses_behind_a_trusted_proxy_lock_out_only_their_client() {
    let app = TestApp::spawn_with(
        Options::fake()
            .var("AUTH_FAILURE_LIMIT", "3")
            .var("TRUSTED_PROXIES", "127.0.0.1,::1"),
    )
    .await;
    let status = |forwarded: Option<&'static str>, key: &str| {
        let mut req = app.get("/api/v1/sessions", key);
        if let Some(client) = forwarded {
            req = req.header("X-Forwarded-For", client);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let guesser = Some("203.0.113.7");
    // Alice works from the address the guesser will share.
    assert_eq!(status(guesser, ALICE).await, 200);
    for i in 0..3 {
        assert_eq!(status(guesser, &format!("cca_guess-{i}")).await, 401);
    }
    assert_eq!(status(guesser, "cca_guess-3").await, 429);
    // Locked: alice's key worked from there, so it still does; bob's never
    // did, so it waits like a guess (the guesser cannot tell right from wrong).
    assert_eq!(status(guesser, ALICE).await, 200);
    assert_eq!(status(guesser, BOB).await, 429);
    // A forged hop left of the client's own does not get it out.
    assert_eq!(status(Some("203.0.113.8, 203.0.113.7"), BOB).await, 429);
    // Other clients of the proxy, and the proxy itself, are not held back.
    assert_eq!(status(Some("203.0.113.8"), BOB).await, 200);
    assert_eq!(status(Some("203.0.113.8"), "cca_guess-4").await, 401);
    assert_eq!(status(None, BOB).await, 200);
}

/// Creates racing for the last places never pass the cap: the count and
/// the insert are one step (run with `TEST_DATABASE_URL` for PostgreSQL).
#[actix_web::test]
async fn parallel_creates_at_the_session_cap_never_exceed_it() {
    const CAP: i64 = 4;
    let app =
        TestApp::spawn_with(Options::fake().var("MAX_SESSIONS_PER_TENANT", CAP.to_string())).await;
    app.create_session(ALICE, "first").await;
    for round in 0..3 {
        let creates = (0..16).map(|i| {
            app.post(
                "/api/v1/sessions",
                ALICE,
                json!({ "name": format!("race-{round}-{i}") }),
            )
            .send()
        });
        let statuses: Vec<u16> = futures_util::future::join_all(creates)
            .await
            .into_iter()
            .map(|r| r.unwrap().status().as_u16())
            .collect();
        assert!(
            statuses.iter().all(|s| [201, 409].contains(s)),
            "{statuses:?}"
        );
        let stored = app.query_i64("SELECT COUNT(*) AS n FROM sessions WHERE tenant_id = 'alice'");
        assert_eq!(stored, CAP, "round {round}: {statuses:?}");
        let created = statuses.iter().filter(|s| **s == 201).count() as i64;
        assert_eq!(created, if round == 0 { CAP - 1 } else { 0 });
        // The refused ones left no workspace behind.
        let folders = std::fs::read_dir(app.workspaces().join("alice"))
            .unwrap()
            .count() as i64;
        assert_eq!(folders, CAP);
    }
}

#[actix_web::test]
async fn cached_identities_follow_every_change_at_once() {
    // Kept a minute unless a change says otherwise.
    let app = TestApp::spawn_with(Options::fake().var("AUTH_CACHE_SECONDS", "60")).await;
    let created = data(
        app.post(
            "/api/v1/admin/keys",
            ADMIN,
            json!({"tenant": "alice", "label": "cached"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let key = created["key"].as_str().unwrap().to_string();
    let status = |key: String| {
        let app = &app;
        async move {
            app.get("/api/v1/sessions", &key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status(key.clone()).await, 200);
    // Served from memory now: the database can no longer answer for it.
    app.exec(&format!(
        "UPDATE api_keys SET label = 'changed behind its back' WHERE id = '{}'",
        created["id"].as_str().unwrap()
    ));
    assert_eq!(status(key.clone()).await, 200);

    // A tenant's rate limit lowered through the API holds from the next request.
    let res = app
        .client
        .patch(app.url("/api/v1/admin/tenants/alice"))
        .header("X-API-Key", ADMIN)
        .json(&json!({"rate_limit_requests": 2, "rate_limit_window_seconds": 3600}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let statuses = [
        status(key.clone()).await,
        status(key.clone()).await,
        status(key.clone()).await,
    ];
    assert_eq!(statuses, [200, 200, 429], "the new limit holds at once");

    // Revoked through the API: refused by the very next request.
    let res = app
        .post(
            &format!(
                "/api/v1/admin/keys/{}/revoke",
                created["id"].as_str().unwrap()
            ),
            ADMIN,
            json!({}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(status(key.clone()).await, 401);

    // On PostgreSQL the `keys` command tells the running server too.
    if app.db.is_postgres() {
        let printed = admin_cli(&app, &["keys", "create", "--tenant", "alice"]);
        let other = printed
            .split_whitespace()
            .find(|w| w.starts_with("cca_"))
            .unwrap()
            .to_string();
        assert_eq!(status(other.clone()).await, 200);
        // "Created key <id> (member) for tenant alice. …"
        let id = printed.split_whitespace().nth(2).unwrap().to_string();
        let revoked_at = std::time::Instant::now();
        admin_cli(&app, &["keys", "revoke", &id]);
        let refused = eventually(1, || async { status(other.clone()).await == 401 }).await;
        assert!(
            refused,
            "refused within a second ({:?})",
            revoked_at.elapsed()
        );
    }
}
