//! Prometheus `/metrics` on its own listener (`METRICS_ADDR`).

use serde_json::Value;

use crate::helpers::*;

/// The value of the first sample line starting with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[actix_web::test]
async fn metrics_count_requests_turns_and_cost_on_their_own_listener() {
    let app = TestApp::spawn_with(Options::default().var("METRICS_ADDR", "127.0.0.1:0")).await;
    app.create_session(ALICE, "m").await;
    let data = app.chat_ok(ALICE, "m", "hello metrics").await;
    assert!(data["cost_micros"].as_i64().unwrap() > 0);
    let res = app
        .get("/api/v1/sessions/nope", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    let base = app.metrics_base.clone().expect("metrics listener");
    let res = app
        .client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = res.text().await.unwrap();

    // Requests by route pattern (never the raw path) and status, with latency.
    let chat = r#"cca_http_requests_total{method="POST",route="/api/v1/sessions/{name}/chat",status="200"}"#;
    assert!(sample(&text, chat).unwrap() >= 1.0, "{text}");
    let missing =
        r#"cca_http_requests_total{method="GET",route="/api/v1/sessions/{name}",status="404"}"#;
    assert!(sample(&text, missing).unwrap() >= 1.0, "{text}");
    assert!(!text.contains("/api/v1/sessions/nope"));
    assert!(text.contains(
        r#"cca_http_request_duration_seconds_bucket{method="POST",route="/api/v1/sessions/{name}/chat",le="0.5"}"#
    ));
    // Turns, their latency, their cost.
    assert!(sample(&text, r#"cca_turns_total{outcome="ok"}"#).unwrap() >= 1.0);
    assert!(sample(&text, r#"cca_turn_duration_seconds_count{outcome="ok"}"#).unwrap() >= 1.0);
    assert!(sample(&text, "cca_cost_micro_usd_total").unwrap() >= 1.0);
    // Live processes (this server's session is warm), queue, approvals.
    assert!(
        sample(&text, "cca_live_cli_processes").unwrap() >= 1.0,
        "{text}"
    );
    assert!(sample(&text, "cca_turns_queued").is_some());
    // One registry per process: other tests' approvals may be pending now.
    assert!(sample(&text, "cca_approvals_pending").is_some_and(|n| n >= 0.0));

    // Not on the API listener.
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 404);
}

/// Labels never come from the client: a made-up method is `other`, an
/// unknown path is `unmatched`, so a stranger cannot grow the series.
#[actix_web::test]
async fn made_up_methods_and_paths_never_become_labels() {
    let app = TestApp::spawn_with(Options::default().var("METRICS_ADDR", "127.0.0.1:0")).await;
    for i in 0..3 {
        let method = reqwest::Method::from_bytes(format!("PROBE{i}X").as_bytes()).unwrap();
        let res = app
            .client
            .request(method, app.url("/api/v1/sessions"))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_client_error(), "{}", res.status());
        let res = app
            .client
            .get(app.url(&format!("/no/such/path-{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
    }
    let base = app.metrics_base.clone().expect("metrics listener");
    let text = app
        .client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("PROBE"), "{text}");
    assert!(!text.contains("path-"), "{text}");
    let other = r#"cca_http_requests_total{method="other",route="/api/v1/sessions","#;
    assert!(sample(&text, other).unwrap() >= 3.0, "{text}");
    let unmatched = r#"cca_http_requests_total{method="GET",route="unmatched",status="404"}"#;
    assert!(sample(&text, unmatched).unwrap() >= 3.0, "{text}");
    // Every method label is one of the fixed set.
    for line in text
        .lines()
        .filter(|l| l.starts_with("cca_http_requests_total{"))
    {
        let method = line
            .split("method=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert!(
            ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"].contains(&method),
            "{line}"
        );
    }
}

#[actix_web::test]
async fn health_answers_from_its_background_probe_and_a_dead_database_shows() {
    let app = TestApp::spawn_with(Options::fake()).await;
    let health = app.health().await;
    assert_eq!(health["checks"]["database"]["status"], "ok");
    let age = health["checked_ms_ago"].as_u64().unwrap();
    assert!(
        age < 5_000,
        "the probe is at most a few seconds old: {age} ms"
    );
    let deep: Value = app
        .client
        .get(app.url("/health?deep=true"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(deep["checked_ms_ago"].as_u64().unwrap() < 500, "{deep}");
    let res = app
        .client
        .get(app.url("/health?deep=maybe"))
        .send()
        .await
        .unwrap();
    assert_problem(res, 422, "validation-error").await;

    if !app.db.is_postgres() {
        return;
    }
    // The database goes away: every connection cut, no new one allowed.
    let cut = |allow: bool| {
        let name = app.db.url.rsplit('/').next().unwrap().to_owned();
        let admin = std::env::var("TEST_DATABASE_URL").unwrap();
        let mut conn = <diesel::PgConnection as diesel::Connection>::establish(&admin).unwrap();
        use diesel::RunQueryDsl;
        diesel::sql_query(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {allow}"))
            .execute(&mut conn)
            .unwrap();
        if !allow {
            diesel::sql_query(format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
            ))
            .execute(&mut conn)
            .unwrap();
        }
    };
    cut(false);
    let down = eventually(10, || async {
        let res = app.client.get(app.url("/health")).send().await.unwrap();
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        status == 503 && body["checks"]["database"]["status"] == "error"
    })
    .await;
    let seen = app.health().await;
    cut(true);
    assert!(down, "a dead database shows within seconds: {seen}");
    let up = eventually(15, || async {
        app.client
            .get(app.url("/health"))
            .send()
            .await
            .unwrap()
            .status()
            == 200
    })
    .await;
    assert!(up, "and its return too");
}
