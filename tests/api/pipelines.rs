//! Pipelines through the real CLI and the mock model: fan-out over a
//! structured result and fan-in, failures that stop (or not) their
//! dependents, cancel, the 422s of a bad graph, tenancy, and a restart in
//! the middle.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;
use crate::jobs::assert_signed;
use crate::receiver::Receiver;

fn items_schema() -> Value {
    json!({
        "type": "json_schema",
        "schema": {
            "type": "object",
            "properties": {"items": {"type": "array", "items": {"type": "object"}}},
            "required": ["items"],
        },
    })
}

async fn create(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.post("/api/v1/pipelines", key, body)
        .send()
        .await
        .unwrap()
}

async fn pipeline(app: &TestApp, id: &str) -> Value {
    get_json(app, &format!("/api/v1/pipelines/{id}"), ALICE).await["data"].clone()
}

/// Polls the pipeline until it has ended.
async fn wait_ended(app: &TestApp, id: &str, secs: u64) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let p = pipeline(app, id).await;
        if p["status"] != "running" {
            return p;
        }
        assert!(std::time::Instant::now() < deadline, "never ended: {p}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn step<'a>(p: &'a Value, id: &str) -> &'a Value {
    p["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {p}"))
}

/// The newest main-loop request the mock model got whose prompt holds `needle`.
fn prompt_with(app: &TestApp, needle: &str) -> Option<String> {
    app.mock
        .requests()
        .iter()
        .rev()
        .map(|r| r["messages"].to_string())
        .find(|m| m.contains(needle))
}

#[actix_web::test]
async fn a_plan_fans_out_and_the_review_reads_every_result() {
    let app = TestApp::spawn_with(Options::default().var("METRICS_ADDR", "127.0.0.1:0")).await;
    let receiver = Receiver::start(&[200]);
    app.create_session(ALICE, "reviewer").await;
    let plan = r#"[[structured]]{"items": [{"title": "alpha"}, {"title": "beta"}, {"title": "gamma"}]}[[/structured]]"#;
    let res = create(
        &app,
        ALICE,
        json!({
            "name": "plan-work-review",
            "webhook_url": receiver.url,
            "steps": [
                {"id": "plan", "new_session": {}, "message": plan, "output_format": items_schema()},
                {"id": "work", "new_session": {}, "depends_on": ["plan"],
                 "for_each": "{{steps.plan.structured.items}}",
                 "message": "write about {{item.title}}"},
                {"id": "review", "session": "reviewer", "depends_on": ["work"],
                 "message": "REVIEW these:\n{{steps.work.result}}"},
            ],
        }),
    )
    .await;
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = res.json().await.unwrap();
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/pipelines/{id}"));
    assert_eq!(created["data"]["status"], "running");
    assert_eq!(step(&created["data"], "work")["state"], "waiting");

    let done = wait_ended(&app, &id, 180).await;
    assert_eq!(done["status"], "done", "{done}");
    for s in ["plan", "work", "review"] {
        assert_eq!(step(&done, s)["state"], "done", "{done}");
    }
    let work = step(&done, "work");
    assert_eq!(work["job_ids"].as_array().unwrap().len(), 3, "{work}");
    let sessions: Vec<&str> = work["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["session"].as_str().unwrap())
        .collect();
    assert!(
        sessions
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len()
            == 3,
        "each item on its own session: {sessions:?}"
    );
    assert_eq!(
        work["jobs"][1]["result"], "Mock reply to: write about beta",
        "{work}"
    );
    // The review's prompt, as the model got it, holds the three results,
    // each under its label.
    let review = prompt_with(&app, "REVIEW these").expect("the review reached the model");
    for (i, title) in ["alpha", "beta", "gamma"].iter().enumerate() {
        assert!(
            review.contains(&format!(
                "--- work[{i}] ---\\nMock reply to: write about {title}"
            )),
            "{review}"
        );
    }
    // Cost: each step the sum of its jobs, the pipeline the sum of its steps.
    let step_costs: i64 = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["cost_micros"].as_i64().unwrap())
        .sum();
    assert_eq!(done["cost_micros"].as_i64().unwrap(), step_costs);
    let job_costs =
        app.query_i64("SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS n FROM jobs");
    assert_eq!(step_costs, job_costs);
    assert!(job_costs > 0, "the mock's calls cost something");
    assert_eq!(app.query_i64("SELECT COUNT(*) AS n FROM jobs"), 5);

    // One signed event with every step's outcome.
    assert!(eventually(20, || async { !receiver.received().is_empty() }).await);
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_signed(&received[0]);
    let event = received[0].json();
    assert_eq!(event["event"], "pipeline.completed");
    assert_eq!(event["type"], "pipeline.done");
    assert_eq!(event["pipeline"]["id"], id);
    let outcomes: Vec<(&str, &str, usize)> = event["pipeline"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap(),
                s["state"].as_str().unwrap(),
                s["job_ids"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("plan", "done", 1),
            ("work", "done", 3),
            ("review", "done", 1)
        ]
    );
    assert_eq!(
        app.query_strings(&format!(
            "SELECT event_type AS s FROM webhook_deliveries WHERE job_id = '{id}'"
        )),
        vec!["pipeline.done"]
    );

    // Listed, audited, counted.
    let list = get_json(&app, "/api/v1/pipelines", ALICE).await;
    assert_eq!(list["pagination"]["total"], 1);
    assert_eq!(list["data"][0]["id"], id);
    assert_eq!(
        app.query_strings(&format!(
            "SELECT action AS s FROM audit_log WHERE target = '{id}'"
        )),
        vec!["pipeline.create"]
    );
    let metrics = app
        .client
        .get(format!("{}/metrics", app.metrics_base.as_ref().unwrap()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("cca_pipelines_ended_total{status=\"done\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cca_pipeline_jobs_queued_total"),
        "{metrics}"
    );
}

#[actix_web::test]
async fn a_failed_step_stops_its_dependents_unless_it_lets_them_continue() {
    let app = TestApp::spawn().await;
    let res = create(
        &app,
        ALICE,
        json!({"steps": [
            {"id": "broken", "new_session": {}, "message": "[[error 500]]"},
            {"id": "after_broken", "new_session": {}, "depends_on": ["broken"],
             "message": "never sent"},
            {"id": "then", "new_session": {}, "depends_on": ["after_broken"],
             "message": "never sent either"},
            {"id": "tolerated", "new_session": {}, "message": "[[error 500]]",
             "on_failure": "continue"},
            {"id": "after_tolerated", "new_session": {}, "depends_on": ["tolerated"],
             "message": "SAW {{steps.tolerated.result}}"},
        ]}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["data"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ended = wait_ended(&app, &id, 120).await;
    assert_eq!(ended["status"], "failed", "{ended}");
    let broken = step(&ended, "broken");
    assert_eq!(broken["state"], "failed");
    assert!(
        broken["reason"].as_str().unwrap().contains("failed"),
        "{broken}"
    );
    let stopped = step(&ended, "after_broken");
    assert_eq!(stopped["state"], "stopped", "{stopped}");
    assert!(
        stopped["reason"]
            .as_str()
            .unwrap()
            .starts_with("not started: step \"broken\" failed"),
        "{stopped}"
    );
    assert!(stopped["job_ids"].as_array().unwrap().is_empty());
    let then = step(&ended, "then");
    assert_eq!(then["state"], "stopped");
    assert!(
        then["reason"]
            .as_str()
            .unwrap()
            .contains("step \"after_broken\" was stopped"),
        "{then}"
    );
    assert_eq!(step(&ended, "after_tolerated")["state"], "done", "{ended}");
    let saw = prompt_with(&app, "SAW ").expect("the tolerant dependent ran");
    assert!(saw.contains("[step tolerated failed: "), "{saw}");
    assert!(prompt_with(&app, "never sent").is_none());
    assert_eq!(app.query_i64("SELECT COUNT(*) AS n FROM jobs"), 3);
    assert_eq!(
        app.query_strings(&format!(
            "SELECT state AS s FROM pipeline_steps WHERE pipeline_id = '{id}' ORDER BY position"
        )),
        vec!["failed", "stopped", "stopped", "failed", "done"]
    );
}

#[actix_web::test]
async fn cancel_stops_the_running_job_and_its_dependents_never_start() {
    let app = TestApp::spawn().await;
    let res = create(
        &app,
        ALICE,
        json!({"steps": [
            {"id": "slow", "new_session": {}, "message": "[[slow 300 100]]"},
            {"id": "next", "new_session": {}, "depends_on": ["slow"], "message": "next"},
        ]}),
    )
    .await;
    let id = res.json::<Value>().await.unwrap()["data"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let running = eventually(60, || async {
        let p = pipeline(&app, &id).await;
        let slow = step(&p, "slow");
        slow["jobs"][0]["status"] == "running"
    })
    .await;
    assert!(running, "the slow step's job runs");

    let res = app
        .post(&format!("/api/v1/pipelines/{id}/cancel"), ALICE, json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cancelled = res.json::<Value>().await.unwrap()["data"].clone();
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    let slow = step(&cancelled, "slow");
    assert_eq!(slow["state"], "cancelled", "{slow}");
    assert_eq!(slow["jobs"][0]["status"], "cancelled");
    let next = step(&cancelled, "next");
    assert_eq!(next["state"], "cancelled");
    assert!(next["job_ids"].as_array().unwrap().is_empty());

    // Again: it already ended.
    let res = app
        .post(&format!("/api/v1/pipelines/{id}/cancel"), ALICE, json!({}))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(res, 409, "conflict").await;
    assert!(problem["detail"].as_str().unwrap().contains("cancelled"));
    // Nothing starts afterwards.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(app.query_i64("SELECT COUNT(*) AS n FROM jobs"), 1);
    assert!(prompt_with(&app, "next").is_none());
    assert_eq!(
        app.query_strings(&format!(
            "SELECT action AS s FROM audit_log WHERE target = '{id}' ORDER BY created_at"
        )),
        vec!["pipeline.create", "pipeline.cancel"]
    );
}

#[actix_web::test]
async fn a_bad_graph_is_a_422_naming_it_and_nothing_runs() {
    let app = TestApp::spawn_with(Options::fake()).await;
    let cases = [
        (
            json!([
                {"id": "a", "session": "s", "message": "x", "depends_on": ["b"]},
                {"id": "b", "session": "s", "message": "y", "depends_on": ["a"]},
            ]),
            "the steps form a cycle: ",
        ),
        (
            json!([{"id": "a", "session": "s", "message": "x", "depends_on": ["ghost"]}]),
            "steps[0] (a) depends on unknown step \"ghost\"",
        ),
        (
            json!([
                {"id": "a", "session": "s", "message": "x"},
                {"id": "b", "session": "s", "message": "use {{steps.a.result}}"},
            ]),
            "steps[1] (b).message refers to step \"a\", which it does not depend on",
        ),
        (
            json!([
                {"id": "a", "session": "s", "message": "x"},
                {"id": "a", "session": "s", "message": "y"},
            ]),
            "duplicate step id \"a\"",
        ),
        (
            json!([{"id": "a", "session": "s", "new_session": {}, "message": "x"}]),
            "steps[0] (a) needs exactly one of session and new_session",
        ),
        (
            json!([
                {"id": "a", "session": "s", "message": "x"},
                {"id": "b", "new_session": {}, "message": "{{item}}", "depends_on": ["a"],
                 "for_each": "{{steps.a.result}}"},
            ]),
            "steps[1] (b).for_each",
        ),
    ];
    for (steps, expected) in cases {
        let res = create(&app, ALICE, json!({"steps": steps})).await;
        let problem = assert_problem(res, 422, "validation-error").await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(expected), "{detail} / {expected}");
    }
    assert_eq!(app.query_i64("SELECT COUNT(*) AS n FROM pipelines"), 0);
}

#[actix_web::test]
async fn another_tenants_pipeline_is_a_404() {
    let app = TestApp::spawn_with(Options::fake()).await;
    app.create_session(ALICE, "mine").await;
    let res = create(
        &app,
        ALICE,
        json!({"steps": [{"id": "only", "session": "mine", "message": "hello"}]}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["data"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .get(&format!("/api/v1/pipelines/{id}"), BOB)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
    let res = app
        .post(&format!("/api/v1/pipelines/{id}/cancel"), BOB, json!({}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
    let bobs = get_json(&app, "/api/v1/pipelines", BOB).await;
    assert_eq!(bobs["pagination"]["total"], 0);
    // A step naming a session of another tenant cannot use it.
    let res = create(
        &app,
        BOB,
        json!({"steps": [{"id": "steal", "session": "mine", "message": "hi"}]}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let bobs_id = res.json::<Value>().await.unwrap()["data"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let ended = loop {
        let p = get_json(&app, &format!("/api/v1/pipelines/{bobs_id}"), BOB).await["data"].clone();
        if p["status"] != "running" {
            break p;
        }
        assert!(std::time::Instant::now() < deadline, "{p}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(ended["status"], "failed");
    let reason = step(&ended, "steal")["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("could not start"), "{reason}");
}

/// Two servers (nodes of their own) on one database: each step's job is
/// queued once.
#[actix_web::test]
async fn two_engines_on_one_database_launch_each_step_once() {
    let first = TestApp::spawn_with(Options::fake()).await;
    let _second = first.another_node().await;
    let steps: Vec<Value> = (0..6)
        .map(|i| json!({"id": format!("s{i}"), "new_session": {}, "message": format!("step {i}")}))
        .chain([json!({"id": "join", "new_session": {}, "message": "join",
            "depends_on": ["s0", "s1", "s2", "s3", "s4", "s5"]})])
        .collect();
    let res = create(&first, ALICE, json!({"steps": steps})).await;
    let id = res.json::<Value>().await.unwrap()["data"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ended = wait_ended(&first, &id, 120).await;
    assert_eq!(ended["status"], "done", "{ended}");
    assert_eq!(first.query_i64("SELECT COUNT(*) AS n FROM jobs"), 7);
    assert_eq!(
        first.query_i64(&format!(
            "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE job_id = '{id}'"
        )),
        0
    );
}

/// `kill -9` while a step runs: the next start resumes its job, then starts
/// its dependent, once.
#[actix_web::test]
async fn a_restart_mid_pipeline_continues_without_starting_a_step_twice() {
    use crate::recovery::Env;
    // The test polls for as long as a slow machine needs.
    let env = Env::new().with_var("RATE_LIMIT_REQUESTS", "1000000");
    let receiver = Receiver::start(&[200]);
    let server = env.start(30).await;
    let created = server
        .post(
            "/api/v1/pipelines",
            json!({"webhook_url": receiver.url, "steps": [
                {"id": "first", "new_session": {}, "message": "long [[slow 30 100]]"},
                {"id": "second", "new_session": {}, "depends_on": ["first"],
                 "message": "AFTER {{steps.first.result}}"},
            ]}),
        )
        .await;
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/pipelines/{id}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let p = server.get(&path).await["data"].clone();
        if p["steps"][0]["jobs"][0]["status"] == "running" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{p}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.kill9();

    let server = env.start(30).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let ended = loop {
        let p = server.get(&path).await["data"].clone();
        if p["status"] != "running" {
            break p;
        }
        assert!(std::time::Instant::now() < deadline, "{p}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(ended["status"], "done", "{ended}");
    assert_eq!(ended["steps"][0]["job_ids"].as_array().unwrap().len(), 1);
    assert_eq!(ended["steps"][1]["job_ids"].as_array().unwrap().len(), 1);
    let db = env.db();
    assert_eq!(db.query_i64("SELECT COUNT(*) AS n FROM jobs"), 2);
    assert_eq!(
        db.query_i64("SELECT MAX(attempts) AS n FROM jobs WHERE message LIKE 'long%'"),
        2,
        "the first step's job was resumed, not queued again"
    );
    assert_eq!(
        db.query_i64("SELECT COUNT(*) AS n FROM jobs WHERE message LIKE 'AFTER %'"),
        1
    );
    assert!(eventually(20, || async { receiver.received().len() == 1 }).await);
    assert_eq!(receiver.received()[0].json()["type"], "pipeline.done");
}
