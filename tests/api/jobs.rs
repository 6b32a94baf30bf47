//! Async jobs through the real CLI: queue, results, cancel, idempotency, and
//! signed webhooks with retries.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::events::{subscribe, SseReader};
use crate::helpers::*;
use crate::receiver::{Received, Receiver};

/// Verifies a delivery as a receiver would (Standard Webhooks), with the
/// test's own HMAC, not the server's signing code.
pub(crate) fn assert_signed(received: &Received) {
    let engine = base64::engine::general_purpose::STANDARD;
    let key = engine
        .decode(WEBHOOK_SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(
        format!(
            "{}.{}.{}",
            received.webhook_id, received.timestamp, received.body
        )
        .as_bytes(),
    );
    let expected = format!("v1,{}", engine.encode(mac.finalize().into_bytes()));
    assert_eq!(
        received.signature, expected,
        "signature of {}",
        received.webhook_id
    );
    let age = chrono::Utc::now().timestamp() - received.timestamp;
    assert!((0..120).contains(&age), "timestamp is current: {age}");
}

#[actix_web::test]
async fn a_job_runs_the_agent_and_calls_back_signed() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(&[200]);
    app.create_session(ALICE, "j").await;
    let res = app
        .post(
            "/api/v1/sessions/j/jobs",
            ALICE,
            json!({"message": "[[write report.md]]all good[[/write]]", "webhook_url": receiver.url}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let body: Value = res.json().await.unwrap();
    let id = body["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/api/v1/sessions/j/jobs/{id}"));
    assert_eq!(body["data"]["status"], "queued");
    // It names who queued it: ALICE's key.
    let alice_key = app.query_strings(
        "SELECT id AS s FROM api_keys WHERE tenant_id = 'alice' AND role = 'member'",
    );
    assert!(
        alice_key.contains(
            &body["data"]["created_by"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        ),
        "{body}"
    );
    // The row exists before the 202 was sent.
    assert_eq!(app.query_i64("SELECT COUNT(*) AS n FROM jobs"), 1);

    let job = app.wait_job(ALICE, "j", &id, 60).await;
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["attempts"], 1);
    assert!(job["result"].is_object(), "result is JSON: {job}");
    assert_eq!(job["result"]["tools_used"][0]["name"], "Write");
    assert_eq!(job["tools_used"][0]["name"], "Write");
    assert!(job["cost_micros"].as_i64().unwrap() > 0);
    assert!(job["started_at"].is_string() && job["completed_at"].is_string());
    assert_eq!(
        std::fs::read_to_string(app.workspace("alice", "j").join("report.md")).unwrap(),
        "all good"
    );
    // Lists show the same JSON shapes.
    let list: Value = app
        .get("/api/v1/sessions/j/jobs", ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"][0]["result"], job["result"]);
    assert_eq!(list["data"][0]["tools_used"], job["tools_used"]);
    // The job is part of the session's history.
    assert_eq!(app.history(ALICE, "j").await.len(), 2);

    assert!(
        eventually(20, || async { !receiver.received().is_empty() }).await,
        "webhook arrived"
    );
    let received = &receiver.received()[0];
    assert_signed(received);
    let event = received.json();
    assert_eq!(event["event"], "job.completed");
    assert_eq!(event["type"], "job.done");
    assert_eq!(event["job"]["id"], id.as_str());
    assert_eq!(event["job"]["status"], "done");
    assert_eq!(event["job"]["result"], job["result"]);
    // The attempt is recorded once the receiver has answered.
    let recorded = eventually(10, || async {
        app.deliveries(ALICE, &id)
            .await
            .first()
            .is_some_and(|d| d["status"] == "delivered")
    })
    .await;
    assert!(recorded);
    let deliveries = app.deliveries(ALICE, &id).await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0]["webhook_id"], received.webhook_id.as_str());
    assert_eq!(deliveries[0]["attempts"][0]["status_code"], 200);
}

#[actix_web::test]
async fn a_failing_receiver_gets_the_same_event_until_it_succeeds() {
    let app = TestApp::spawn_with(Options::fake()).await;
    let receiver = Receiver::start(&[500, 503, 200]);
    app.create_session(ALICE, "r").await;
    let (status, body) = app
        .create_job(
            ALICE,
            "r",
            json!({"message": "hello", "webhook_url": receiver.url}),
        )
        .await;
    assert_eq!(status, 202);
    let id = body["data"]["id"].as_str().unwrap().to_string();
    assert!(eventually(30, || async { receiver.received().len() >= 3 }).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = receiver.received();
    assert_eq!(received.len(), 3, "no attempt after the success");
    let ids: Vec<&str> = received.iter().map(|r| r.webhook_id.as_str()).collect();
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "one event, one webhook-id: {ids:?}"
    );
    for r in &received {
        assert_signed(r);
        assert_eq!(r.json()["job"]["id"], id.as_str());
    }
    // The last attempt is recorded once the receiver has answered.
    assert!(
        eventually(10, || async {
            app.deliveries(ALICE, &id)
                .await
                .first()
                .is_some_and(|d| d["status"] == "delivered")
        })
        .await
    );
    let deliveries = app.deliveries(ALICE, &id).await;
    assert_eq!(deliveries.len(), 1);
    let d = &deliveries[0];
    assert_eq!(d["status"], "delivered");
    assert_eq!(d["attempt_count"], 3);
    let codes: Vec<i64> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [500, 503, 200]);
}

#[actix_web::test]
async fn a_receiver_that_is_down_is_retried_then_given_up() {
    let app = TestApp::spawn_with(Options::fake()).await;
    // A port bound and never listened on: nothing else can take it, and
    // every connection to it is refused.
    let reserved = tokio::net::TcpSocket::new_v4().unwrap();
    reserved.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = reserved.local_addr().unwrap().port();
    app.create_session(ALICE, "down").await;
    let (_, body) = app
        .create_job(
            ALICE,
            "down",
            json!({"message": "hello", "webhook_url": format!("http://127.0.0.1:{port}/hook")}),
        )
        .await;
    let id = body["data"]["id"].as_str().unwrap().to_string();
    let gave_up = eventually(30, || async {
        app.deliveries(ALICE, &id)
            .await
            .first()
            .is_some_and(|d| d["status"] == "failed")
    })
    .await;
    assert!(gave_up);
    let d = &app.deliveries(ALICE, &id).await[0];
    // Schedule "1,1,1": four attempts in all, each a connection error.
    assert_eq!(d["attempt_count"], 4);
    assert!(d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["status_code"].is_null() && a["error"].is_string()));
    assert_eq!(
        app.job(ALICE, "down", &id).await["status"],
        "done",
        "the job itself succeeded"
    );

    // Redelivery queues one more attempt of the same event.
    let res = app
        .post(
            &format!(
                "/api/v1/webhooks/deliveries/{}/redeliver",
                d["id"].as_str().unwrap()
            ),
            ALICE,
            json!({}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert!(
        eventually(10, || async {
            app.deliveries(ALICE, &id).await[0]["attempt_count"] == 5
        })
        .await
    );
}

#[actix_web::test]
async fn gone_stops_retries_and_redirects_are_not_followed() {
    let app = TestApp::spawn_with(Options::fake()).await;
    let gone = Receiver::start(&[410]);
    let moved = Receiver::start(&[302, 200]);
    app.create_session(ALICE, "g").await;
    let (_, a) = app
        .create_job(
            ALICE,
            "g",
            json!({"message": "one", "webhook_url": gone.url}),
        )
        .await;
    let (_, b) = app
        .create_job(
            ALICE,
            "g",
            json!({"message": "two", "webhook_url": moved.url}),
        )
        .await;
    let (a, b) = (
        a["data"]["id"].as_str().unwrap().to_string(),
        b["data"]["id"].as_str().unwrap().to_string(),
    );
    assert!(
        eventually(20, || async {
            app.deliveries(ALICE, &a)
                .await
                .first()
                .is_some_and(|d| d["status"] == "gone")
        })
        .await
    );
    assert!(
        eventually(20, || async {
            app.deliveries(ALICE, &b)
                .await
                .first()
                .is_some_and(|d| d["status"] == "delivered")
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(gone.received().len(), 1, "no retry after 410");
    let codes: Vec<i64> = app.deliveries(ALICE, &b).await[0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(
        codes,
        [302, 200],
        "the 302 counted as a failed attempt, not followed"
    );
}

#[actix_web::test]
async fn internal_webhook_targets_are_refused() {
    // No WEBHOOK_ALLOWED_HOSTS here: loopback is refused like any internal address.
    let app = TestApp::spawn_with(Options::fake().var("WEBHOOK_ALLOWED_HOSTS", "")).await;
    app.create_session(ALICE, "s").await;
    for url in [
        "http://127.0.0.1:8080/x",
        "http://localhost/x",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.5/x",
        "http://192.168.1.1/x",
        "http://[::1]/x",
        "http://[fd00:ec2::254]/x",
        "ftp://example.com/x",
        "not a url",
    ] {
        let res = app
            .post(
                "/api/v1/sessions/s/jobs",
                ALICE,
                json!({"message": "hi", "webhook_url": url}),
            )
            .send()
            .await
            .unwrap();
        assert_problem(res, 422, "validation-error").await;
    }
    assert_eq!(app.query_i64("SELECT COUNT(*) AS n FROM jobs"), 0);
}

/// Every special-purpose range is refused (NAT64, documentation, 6to4,
/// reserved, ...), and the 422 never says what the host resolved to.
#[actix_web::test]
async fn special_purpose_webhook_targets_are_refused_without_naming_the_address() {
    let app = TestApp::spawn_with(Options::fake().var("WEBHOOK_ALLOWED_HOSTS", "")).await;
    app.create_session(ALICE, "s").await;
    for url in [
        "http://[64:ff9b::808:808]/x",
        "http://[64:ff9b:1::a00:5]/x",
        "http://[2002:c0a8:101::1]/x",
        "http://[2001:db8::1]/x",
        "http://[100::1]/x",
        "http://192.0.2.1/x",
        "http://198.51.100.7/x",
        "http://203.0.113.9/x",
        "http://240.0.0.1/x",
        "http://192.88.99.1/x",
    ] {
        let res = app
            .post(
                "/api/v1/sessions/s/jobs",
                ALICE,
                json!({"message": "hi", "webhook_url": url}),
            )
            .send()
            .await
            .unwrap();
        let problem = assert_problem(res, 422, "validation-error").await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("public address"),
            "{url}: {problem}"
        );
    }
    // A name that resolves internally, and one that does not resolve, get
    // the same words: neither the address nor whether it exists.
    let mut details = Vec::new();
    for host in ["localhost", "no-such-host.invalid"] {
        let res = app
            .post(
                "/api/v1/sessions/s/jobs",
                ALICE,
                json!({"message": "hi", "webhook_url": format!("http://{host}:8080/x")}),
            )
            .send()
            .await
            .unwrap();
        let problem = assert_problem(res, 422, "validation-error").await;
        let detail = problem["detail"].as_str().unwrap().to_owned();
        assert!(
            !detail.contains("127.0.0.1") && !detail.contains("::1"),
            "{detail}"
        );
        details.push(detail.replace(host, "HOST"));
    }
    assert_eq!(details[0], details[1]);
    assert_eq!(app.query_i64("SELECT COUNT(*) AS n FROM jobs"), 0);
}

/// `HTTP_PROXY` in the server's environment is not used for webhooks: a
/// proxy would resolve the host again, past the address check.
#[actix_web::test]
async fn webhooks_never_go_through_an_environment_proxy() {
    let root = tempfile::tempdir().unwrap();
    let db = TestDb::create(root.path());
    let mock = MockModel::start();
    let receiver = Receiver::start(&[200]);
    // Answers like a proxy that delivered the request.
    let proxy = Receiver::start(&[200]);
    let proxy_url = proxy.url.trim_end_matches("/hook").to_owned();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_claude-code-api"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", root.path().join("home"))
        .env("API_PORT", "0")
        .env("API_KEYS", format!("alice:{ALICE}"))
        .env("DATA_DIR", root.path().join("data"))
        .env("APPROVED_DIRECTORY", root.path().join("workspaces"))
        .env("DATABASE_URL", &db.url)
        .env("CLAUDE_CLI_PATH", real_cli_path())
        .env("ANTHROPIC_BASE_URL", &mock.base_url)
        .env("ANTHROPIC_API_KEY", "test-key")
        .env("CLAUDE_CODE_MAX_RETRIES", "0")
        .env("WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")
        .env("WEBHOOK_RETRY_SCHEDULE_SECONDS", "1,1,1")
        .env("WEBHOOK_POLL_INTERVAL_MS", "100")
        .env("HTTP_PROXY", &proxy_url)
        .env("http_proxy", &proxy_url)
        .env("HTTPS_PROXY", &proxy_url)
        .env("ALL_PROXY", &proxy_url)
        .env("LOG_LEVEL", "warn,claude_code_api=info")
        .env("LOG_FORMAT", "json")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the server binary");
    let port = crate::recovery::listening_port(&mut child);
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Kill(child);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let res = client
        .post(format!("{base}/api/v1/sessions"))
        .header("X-API-Key", ALICE)
        .json(&json!({"name": "p"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = client
        .post(format!("{base}/api/v1/sessions/p/jobs"))
        .header("X-API-Key", ALICE)
        .json(&json!({"message": "hello", "webhook_url": receiver.url}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let arrived = eventually(90, || async {
        !receiver.received().is_empty() || !proxy.received().is_empty()
    })
    .await;
    assert!(arrived, "the webhook went somewhere");
    assert!(
        proxy.received().is_empty(),
        "the webhook went through the proxy"
    );
    assert_eq!(receiver.received()[0].json()["type"], "job.done");
}

/// Whether one of the delivery's signatures verifies under `secret`.
fn signed_with(secret: &str, received: &Received) -> bool {
    let engine = base64::engine::general_purpose::STANDARD;
    let key = engine
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(
        format!(
            "{}.{}.{}",
            received.webhook_id, received.timestamp, received.body
        )
        .as_bytes(),
    );
    let expected = format!("v1,{}", engine.encode(mac.finalize().into_bytes()));
    received.signature.split(' ').any(|s| s == expected)
}

async fn webhook_secret(app: &TestApp, key: &str) -> String {
    let res = app
        .get("/api/v1/webhooks/secret", key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["data"]["secret"].as_str().unwrap().to_owned()
}

/// A job's webhook, once it arrived at `receiver` (the `n`-th delivery).
async fn delivered(
    app: &TestApp,
    key: &str,
    session: &str,
    receiver: &Receiver,
    n: usize,
) -> Received {
    app.create_session(key, session).await;
    let (status, job) = app
        .create_job(
            key,
            session,
            json!({"message": "hi", "webhook_url": receiver.url}),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    assert!(
        eventually(90, || async { receiver.received().len() >= n }).await,
        "webhook {n} arrived"
    );
    receiver.received()[n - 1].clone()
}

/// Each tenant signs with its own secret: tenants from `API_KEYS` start
/// with `WEBHOOK_SECRET`, others with a random one; after a rotation a
/// delivery carries signatures under the new and (for 24 h) the old secret.
#[actix_web::test]
async fn each_tenant_signs_with_its_own_secret_and_a_rotation_signs_with_both() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(&[200]);
    assert_eq!(webhook_secret(&app, ALICE).await, WEBHOOK_SECRET);
    assert_eq!(webhook_secret(&app, BOB).await, WEBHOOK_SECRET);

    // A tenant made over the admin API has a secret of its own.
    let res = app
        .post("/api/v1/admin/tenants", ADMIN, json!({"name": "carol"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = app
        .post("/api/v1/admin/keys", ADMIN, json!({"tenant": "carol"}))
        .send()
        .await
        .unwrap();
    let carol = res.json::<Value>().await.unwrap()["data"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let carols = webhook_secret(&app, &carol).await;
    assert!(carols.starts_with("whsec_") && carols != WEBHOOK_SECRET);
    assert_eq!(webhook_secret(&app, &carol).await, carols, "stable");

    // Alice rotates; bob is untouched.
    let res = app
        .post("/api/v1/webhooks/secret/rotate", ALICE, json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let rotated = res.json::<Value>().await.unwrap()["data"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(rotated.starts_with("whsec_") && rotated != WEBHOOK_SECRET);
    assert_eq!(webhook_secret(&app, ALICE).await, rotated);
    assert_eq!(webhook_secret(&app, BOB).await, WEBHOOK_SECRET);

    let alices = delivered(&app, ALICE, "a", &receiver, 1).await;
    assert!(signed_with(&rotated, &alices), "{}", alices.signature);
    assert!(signed_with(WEBHOOK_SECRET, &alices), "the old one for 24 h");
    let bobs = delivered(&app, BOB, "b", &receiver, 2).await;
    assert!(signed_with(WEBHOOK_SECRET, &bobs) && !signed_with(&rotated, &bobs));
    // What carol's secret signs, no other tenant's receiver accepts.
    let carol_got = delivered(&app, &carol, "c", &receiver, 3).await;
    assert!(signed_with(&carols, &carol_got));
    assert!(!signed_with(WEBHOOK_SECRET, &carol_got) && !signed_with(&rotated, &carol_got));
    assert_eq!(carol_got.signature.split(' ').count(), 1);

    // Once the old secret's day is over, only the new one signs.
    app.exec(
        "UPDATE tenant_webhook_secrets SET previous_expires_at = '2000-01-01 00:00:00' \
         WHERE tenant_id = 'alice'",
    );
    let deliveries = app
        .get("/api/v1/webhooks/deliveries", ALICE)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let id = deliveries["data"][0]["id"].as_str().unwrap().to_owned();
    let res = app
        .post(
            &format!("/api/v1/webhooks/deliveries/{id}/redeliver"),
            ALICE,
            json!({}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert!(eventually(30, || async { receiver.received().len() >= 4 }).await);
    let again = receiver.received()[3].clone();
    assert_eq!(again.webhook_id, alices.webhook_id);
    assert!(signed_with(&rotated, &again) && !signed_with(WEBHOOK_SECRET, &again));
}

#[actix_web::test]
async fn cancelling_a_queued_job_never_runs_it() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(&[200]);
    app.create_session(ALICE, "c").await;
    let (_, first) = app
        .create_job(ALICE, "c", json!({"message": "busy [[slow 60 100]]"}))
        .await;
    let (_, second) = app
        .create_job(
            ALICE,
            "c",
            json!({"message": "never run me", "webhook_url": receiver.url}),
        )
        .await;
    let second = second["data"]["id"].as_str().unwrap().to_string();
    let res = app
        .post(
            &format!("/api/v1/sessions/c/jobs/{second}/cancel"),
            ALICE,
            json!({}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"]["status"], "cancelled");
    let first = first["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(app.wait_job(ALICE, "c", &first, 60).await["status"], "done");
    assert!(!app
        .mock
        .requests()
        .iter()
        .any(|r| r.to_string().contains("never run me")));
    let history = app.history(ALICE, "c").await;
    assert_eq!(history.len(), 2, "only the first job's turn: {history:?}");
    assert!(eventually(10, || async { !receiver.received().is_empty() }).await);
    assert_eq!(receiver.received()[0].json()["type"], "job.cancelled");
    // A finished job cannot be cancelled.
    let res = app
        .post(
            &format!("/api/v1/sessions/c/jobs/{first}/cancel"),
            ALICE,
            json!({}),
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 409, "conflict").await;
}

#[actix_web::test]
async fn cancelling_a_running_job_interrupts_it_and_the_session_goes_on() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "run").await;
    let (_, job) = app
        .create_job(ALICE, "run", json!({"message": "long [[slow 200 100]]"}))
        .await;
    let id = job["data"]["id"].as_str().unwrap().to_string();
    let running = eventually(30, || async {
        app.job(ALICE, "run", &id).await["status"] == "running"
    })
    .await;
    assert!(running);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let res = app
        .post(
            &format!("/api/v1/sessions/run/jobs/{id}/cancel"),
            ALICE,
            json!({}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"]["status"], "cancelled");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "interrupt, not the end of the 20 s stream"
    );
    assert!(
        app.history(ALICE, "run").await.is_empty(),
        "no empty history rows for cancelled work"
    );
    let data = app.chat_ok(ALICE, "run", "next please").await;
    assert_eq!(data["content"], "Mock reply to: next please");
}

/// Queues a job in the database only, as when its hand-off to the session
/// failed at creation (it would run at the next start): the session's actor
/// does not hold it.
fn queue_in_database_only(app: &TestApp, session: &str, id: &str, webhook_url: &str) {
    app.exec(&format!(
        "INSERT INTO jobs (id, tenant_id, session_id, status, message, overrides, \
         webhook_url, tools_used, created_at) VALUES ('{id}', 'alice', \
         (SELECT id FROM sessions WHERE tenant_id = 'alice' AND name = '{session}'), \
         'queued', 'never run me either', '{{}}', '{webhook_url}', '[]', '2026-01-01 00:00:00')"
    ));
}

/// Events until the `job_status` that ends job `id`; the last two are how
/// its cancellation showed.
async fn until_cancelled(events: &mut SseReader, id: &str) -> Vec<(String, String, Value)> {
    let mut seen = Vec::new();
    loop {
        let event = events
            .next(15)
            .await
            .unwrap_or_else(|| panic!("no job_status for {id}; got {seen:?}"));
        let ends = event.0 == "job_status" && event.2["job_id"] == id;
        seen.push(event);
        if ends {
            return seen.split_off(seen.len() - 2);
        }
    }
}

async fn cancel(app: &TestApp, session: &str, id: &str) -> Value {
    let res = app
        .post(
            &format!("/api/v1/sessions/{session}/jobs/{id}/cancel"),
            ALICE,
            json!({}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"]["status"], "cancelled", "{body}");
    body["data"].clone()
}

#[actix_web::test]
async fn cancelling_a_job_only_the_database_holds_emits_and_stores_its_status() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(&[200]);
    app.create_session(ALICE, "dbq").await;
    let (_, busy) = app
        .create_job(ALICE, "dbq", json!({"message": "busy [[slow 20 100]]"}))
        .await;
    let busy = busy["data"]["id"].as_str().unwrap().to_string();
    assert!(
        eventually(60, || async {
            app.job(ALICE, "dbq", &busy).await["status"] == "running"
        })
        .await
    );
    let (_, held) = app
        .create_job(ALICE, "dbq", json!({"message": "never run me"}))
        .await;
    let held = held["data"]["id"].as_str().unwrap().to_string();
    let stray = uuid::Uuid::now_v7().to_string();
    queue_in_database_only(&app, "dbq", &stray, &receiver.url);
    let mut events = subscribe(&app, ALICE, "dbq", None).await;

    // A job in the actor's queue, for comparison.
    let held_job = cancel(&app, "dbq", &held).await;
    let from_queue = until_cancelled(&mut events, &held).await;
    let stray_job = cancel(&app, "dbq", &stray).await;
    let from_database = until_cancelled(&mut events, &stray).await;

    // The same events, the same job state, on the session's numbering.
    let kinds =
        |evs: &[(String, String, Value)]| evs.iter().map(|e| e.0.clone()).collect::<Vec<_>>();
    assert_eq!(kinds(&from_database), ["error", "job_status"]);
    assert_eq!(kinds(&from_queue), kinds(&from_database));
    assert_eq!(from_database[0].2, from_queue[0].2);
    assert_eq!(from_database[1].2["status"], "cancelled");
    let mut expected = from_queue[1].2.clone();
    expected["job_id"] = json!(stray);
    assert_eq!(from_database[1].2, expected);
    assert_eq!(stray_job["error"], held_job["error"]);
    let seqs: Vec<i64> = from_queue
        .iter()
        .chain(&from_database)
        .map(|e| e.1.parse().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{seqs:?}");
    assert_eq!(seqs[3], seqs[2] + 1, "{seqs:?}");

    // Stored: a replay from the start shows them with the same ids.
    let mut replay = subscribe(&app, ALICE, "dbq", Some("0")).await;
    assert_eq!(until_cancelled(&mut replay, &stray).await, from_database);

    assert!(eventually(10, || async { !receiver.received().is_empty() }).await);
    let hook = receiver.received()[0].json();
    assert_eq!(hook["type"], "job.cancelled");
    assert_eq!(hook["job"]["id"], stray.as_str());
    assert_eq!(
        app.wait_job(ALICE, "dbq", &busy, 60).await["status"],
        "done"
    );
    assert!(!app
        .mock
        .requests()
        .iter()
        .any(|r| r.to_string().contains("never run me")));
}

#[actix_web::test]
async fn jobs_and_chats_share_the_session_queue_in_order() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "fifo").await;
    let (_, job) = app
        .create_job(
            ALICE,
            "fifo",
            json!({"message": "job first [[slow 10 100]]"}),
        )
        .await;
    let data = app.chat_ok(ALICE, "fifo", "chat second").await;
    assert_eq!(data["content"], "Mock reply to: chat second");
    let id = job["data"]["id"].as_str().unwrap();
    let job = app.job(ALICE, "fifo", id).await;
    assert_eq!(
        job["status"], "done",
        "the job ran before the chat answered"
    );
    let history = app.history(ALICE, "fifo").await;
    assert!(history[0]["content"]
        .as_str()
        .unwrap()
        .starts_with("job first"));
    assert_eq!(history[2]["content"], "chat second");
}

#[actix_web::test]
async fn idempotency_keys_replay_instead_of_running_again() {
    let app = TestApp::spawn_with(Options::fake()).await;
    app.create_session(ALICE, "i").await;
    let send = |key: &'static str, message: &'static str| {
        app.post(
            "/api/v1/sessions/i/jobs",
            ALICE,
            json!({ "message": message }),
        )
        .header("Idempotency-Key", key)
        .send()
    };
    let first = send("k-1", "do it once").await.unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let again = send("k-1", "do it once").await.unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert!(again.headers()["location"]
        .to_str()
        .unwrap()
        .ends_with(first["data"]["id"].as_str().unwrap()));
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["data"]["id"], first["data"]["id"]);
    assert_eq!(app.query_i64("SELECT COUNT(*) AS n FROM jobs"), 1);
    let other = send("k-1", "something else").await.unwrap();
    assert_problem(other, 422, "validation-error").await;
    // Keys are per tenant: Bob's k-1 is his own.
    app.create_session(BOB, "i").await;
    let bobs = app
        .post(
            "/api/v1/sessions/i/jobs",
            BOB,
            json!({"message": "do it once"}),
        )
        .header("Idempotency-Key", "k-1")
        .send()
        .await
        .unwrap();
    assert_eq!(bobs.status(), 202);
    assert!(bobs.headers().get("idempotent-replayed").is_none());

    // Sync chat: the repeat does not reach the CLI again.
    let chat = |key: &'static str| {
        app.post(
            "/api/v1/sessions/i/chat",
            ALICE,
            json!({"message": "count me once"}),
        )
        .header("Idempotency-Key", key)
        .send()
    };
    let a = chat("c-1").await.unwrap();
    assert_eq!(a.status(), 200);
    let a: Value = a.json().await.unwrap();
    assert_eq!(a["data"]["content"], "fake reply: count me once", "{a}");
    let b = chat("c-1").await.unwrap();
    assert_eq!(b.status(), 200);
    let b: Value = b.json().await.unwrap();
    assert_eq!(a["data"], b["data"]);
    let user_rows = app
        .history(ALICE, "i")
        .await
        .iter()
        .filter(|m| m["content"] == "count me once")
        .count();
    assert_eq!(user_rows, 1);
}

#[actix_web::test]
async fn job_routes_are_tenant_scoped() {
    let app = TestApp::spawn_with(Options::fake()).await;
    let receiver = Receiver::start(&[200]);
    app.create_session(ALICE, "mine").await;
    let (_, job) = app
        .create_job(
            ALICE,
            "mine",
            json!({"message": "hi", "webhook_url": receiver.url}),
        )
        .await;
    let id = job["data"]["id"].as_str().unwrap().to_string();
    app.wait_job(ALICE, "mine", &id, 30).await;
    assert!(
        eventually(10, || async {
            !app.deliveries(ALICE, &id).await.is_empty()
        })
        .await
    );
    let delivery = app.deliveries(ALICE, &id).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.create_session(BOB, "mine").await;
    for (method, path) in [
        ("GET", format!("/api/v1/sessions/mine/jobs/{id}")),
        ("POST", format!("/api/v1/sessions/mine/jobs/{id}/cancel")),
        (
            "POST",
            format!("/api/v1/webhooks/deliveries/{delivery}/redeliver"),
        ),
    ] {
        let req = if method == "GET" {
            app.get(&path, BOB)
        } else {
            app.post(&path, BOB, json!({}))
        };
        assert_problem(req.send().await.unwrap(), 404, "not-found").await;
    }
    let list: Value = app
        .get("/api/v1/sessions/mine/jobs", BOB)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["pagination"]["total"], 0);
    assert!(app.deliveries(BOB, &id).await.is_empty());
}

/// `claude-code-api webhook-secret <tenant>` prints what that tenant's
/// keys read from `GET /webhooks/secret`.
#[actix_web::test]
async fn the_webhook_secret_command_prints_a_tenants_own_secret() {
    let app = TestApp::spawn_with(Options::fake()).await;
    let res = app
        .post("/api/v1/webhooks/secret/rotate", BOB, json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let command = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_claude-code-api"))
            .arg("webhook-secret")
            .args(args)
            .env_clear()
            .envs(&app.options_vars)
            .output()
            .unwrap()
    };
    for (tenant, key) in [("alice", ALICE), ("bob", BOB)] {
        let out = command(&[tenant]);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            webhook_secret(&app, key).await
        );
    }
    assert!(!command(&[]).status.success(), "a tenant must be named");
    assert!(!command(&["nobody"]).status.success());
}
