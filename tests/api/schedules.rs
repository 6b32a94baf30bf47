//! Schedules through the real CLI: runs by the clock, pause and resume,
//! overlap, trigger, catch-up after a killed server, and tenancy.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

async fn create_schedule(app: &TestApp, key: &str, body: Value) -> Value {
    let res = app
        .post("/api/v1/schedules", key, body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let schedule: Value = res.json().await.unwrap();
    assert_eq!(
        location,
        format!(
            "/api/v1/schedules/{}",
            schedule["data"]["id"].as_str().unwrap()
        )
    );
    schedule["data"].clone()
}

async fn runs(app: &TestApp, key: &str, schedule: &str) -> Vec<Value> {
    let page = get_json(
        app,
        &format!("/api/v1/schedules/{schedule}/runs?limit=100"),
        key,
    )
    .await;
    page["data"].as_array().unwrap().clone()
}

fn started(runs: &[Value]) -> Vec<&Value> {
    runs.iter().filter(|r| r["job_id"].is_string()).collect()
}

#[actix_web::test]
async fn a_schedule_every_two_seconds_runs_until_paused_and_again_once_resumed() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "nightly").await;
    let schedule = create_schedule(
        &app,
        ALICE,
        json!({
            "name": "triage",
            "every": "2s",
            "job": {"session": "nightly", "message": "triage the new issues"},
        }),
    )
    .await;
    assert_eq!(schedule["every_seconds"], 2);
    assert_eq!(schedule["overlap"], "skip");
    assert_eq!(schedule["catch_up"], "one");
    assert!(schedule["next_run_at"].is_string(), "{schedule}");
    let id = schedule["id"].as_str().unwrap().to_owned();

    tokio::time::sleep(Duration::from_secs(6)).await;
    let before_pause = runs(&app, ALICE, &id).await;
    let jobs = started(&before_pause);
    assert!(jobs.len() >= 2, "at least 2 runs in 6 s: {before_pause:?}");
    // Each run is a job of the session, answered by the agent.
    let first = jobs.last().unwrap();
    assert_eq!(first["origin"], "schedule");
    assert_eq!(first["session"], "nightly");
    let job = app
        .wait_job(ALICE, "nightly", first["job_id"].as_str().unwrap(), 60)
        .await;
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["message"], "triage the new issues");
    assert!(job["result"]["content"]
        .as_str()
        .unwrap()
        .contains("triage the new issues"));
    // Due times are one interval apart, each claimed once.
    let dues: Vec<chrono::DateTime<chrono::FixedOffset>> = jobs
        .iter()
        .map(|r| chrono::DateTime::parse_from_rfc3339(r["due_at"].as_str().unwrap()).unwrap())
        .collect();
    for pair in dues.windows(2) {
        assert_eq!((pair[0] - pair[1]).num_seconds(), 2, "{dues:?}");
    }

    let res = app
        .post(
            &format!("/api/v1/schedules/{id}/pause"),
            ALICE,
            json!({"note": "release freeze"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let paused: Value = res.json().await.unwrap();
    assert_eq!(paused["data"]["paused"], true);
    assert_eq!(paused["data"]["pause_note"], "release freeze");
    assert!(paused["data"]["next_run_at"].is_null());
    let count = runs(&app, ALICE, &id).await.len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        runs(&app, ALICE, &id).await.len(),
        count,
        "no run while paused"
    );

    let view = get_json(&app, &format!("/api/v1/schedules/{id}"), ALICE).await;
    assert_eq!(view["data"]["counts"]["started"], count as i64);
    assert!(view["data"]["last_run"]["job_id"].is_string(), "{view}");
    let res = app
        .post(&format!("/api/v1/schedules/{id}/resume"), ALICE, json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let resumed: Value = res.json().await.unwrap();
    assert_eq!(resumed["data"]["paused"], false);
    assert!(resumed["data"]["next_run_at"].is_string());
    assert!(
        eventually(6, || async { runs(&app, ALICE, &id).await.len() > count }).await,
        "runs again once resumed"
    );
    assert_eq!(
        app.query_i64(&format!(
            "SELECT COUNT(*) AS n FROM jobs WHERE id IN (SELECT job_id FROM schedule_runs WHERE schedule_id = '{id}' AND status = 'started')"
        )),
        app.query_i64(&format!(
            "SELECT COUNT(*) AS n FROM schedule_runs WHERE schedule_id = '{id}' AND status = 'started'"
        )),
        "every started run has its job"
    );
}

#[actix_web::test]
async fn overlap_skip_records_the_runs_due_while_a_slow_job_runs() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "slow").await;
    let schedule = create_schedule(
        &app,
        ALICE,
        json!({
            "name": "slow-one",
            "every": "1s",
            "overlap": "skip",
            "job": {"session": "slow", "message": "[[slow 40 100]]"},
        }),
    )
    .await;
    let id = schedule["id"].as_str().unwrap().to_owned();
    assert!(
        eventually(15, || async {
            runs(&app, ALICE, &id)
                .await
                .iter()
                .filter(|r| r["status"] == "skipped")
                .count()
                >= 2
        })
        .await,
        "runs due while the slow job runs are skipped: {:?}",
        runs(&app, ALICE, &id).await
    );
    let all = runs(&app, ALICE, &id).await;
    let skipped: Vec<&Value> = all.iter().filter(|r| r["status"] == "skipped").collect();
    assert!(
        skipped[0]["reason"]
            .as_str()
            .unwrap()
            .contains("has not ended (overlap: skip)"),
        "{skipped:?}"
    );
    assert!(skipped.iter().all(|r| r["job_id"].is_null()));
    // Never two of its jobs at once.
    let live = app.query_i64(
        "SELECT COUNT(*) AS n FROM jobs WHERE status IN ('queued', 'running') AND session_id = (SELECT id FROM sessions WHERE name = 'slow')",
    );
    assert!(live <= 1, "{live} jobs of the schedule at once");
    let view = get_json(&app, &format!("/api/v1/schedules/{id}"), ALICE).await;
    assert!(view["data"]["counts"]["skipped"].as_i64().unwrap() >= 2);
}

#[actix_web::test]
async fn a_trigger_runs_now_in_a_new_session_and_schedules_are_the_tenants_own() {
    let app = TestApp::spawn().await;
    let schedule = create_schedule(
        &app,
        ALICE,
        json!({
            "name": "report",
            "cron": "0 2 * * *",
            "timezone": "Europe/Berlin",
            "paused": true,
            "job": {"new_session": {}, "message": "[[write report.md]]weekly[[/write]]"},
        }),
    )
    .await;
    assert_eq!(schedule["timezone"], "Europe/Berlin");
    assert!(schedule["next_run_at"].is_null(), "created paused");
    let id = schedule["id"].as_str().unwrap().to_owned();

    // By name as well as by id.
    let res = app
        .post("/api/v1/schedules/report/trigger", ALICE, json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let run: Value = res.json().await.unwrap();
    let run = &run["data"];
    assert_eq!(run["origin"], "manual");
    let session = run["session"].as_str().unwrap().to_owned();
    assert!(session.starts_with("report-"), "{run}");
    let job = app
        .wait_job(ALICE, &session, run["job_id"].as_str().unwrap(), 60)
        .await;
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(
        std::fs::read_to_string(app.workspace("alice", &session).join("report.md")).unwrap(),
        "weekly"
    );
    let listed = runs(&app, ALICE, &id).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["status"], "done");

    // Another tenant sees none of it.
    for path in [
        format!("/api/v1/schedules/{id}"),
        format!("/api/v1/schedules/{id}/runs"),
        "/api/v1/schedules/report".to_owned(),
    ] {
        let res = app.get(&path, BOB).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }
    for action in ["trigger", "pause", "resume"] {
        let res = app
            .post(&format!("/api/v1/schedules/{id}/{action}"), BOB, json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{action}");
    }
    let res = app
        .delete(&format!("/api/v1/schedules/{id}"), BOB)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let bobs = get_json(&app, "/api/v1/schedules", BOB).await;
    assert_eq!(bobs["data"], json!([]));
    let alices = get_json(&app, "/api/v1/schedules", ALICE).await;
    assert_eq!(alices["data"][0]["name"], "report");

    let audit = app.query_strings("SELECT action || ' ' || target AS s FROM audit_log");
    for entry in ["schedule.create report", "schedule.trigger report"] {
        assert!(audit.iter().any(|a| a == entry), "{entry}: {audit:?}");
    }
    let res = app
        .delete(&format!("/api/v1/schedules/{id}"), ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = app
        .get(&format!("/api/v1/schedules/{id}"), ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // The job it started stays.
    assert_eq!(app.query_i64("SELECT COUNT(*) AS n FROM jobs"), 1);
    assert_eq!(app.query_i64("SELECT COUNT(*) AS n FROM schedule_runs"), 0);
}

#[actix_web::test]
async fn bad_schedules_are_refused_with_what_is_wrong() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "s").await;
    let job = json!({"session": "s", "message": "hi"});
    for (body, says) in [
        (
            json!({"name": "a", "cron": "0 2 * * *", "every": "1h", "job": job}),
            "exactly one of cron, every and at",
        ),
        (
            json!({"name": "a", "job": job}),
            "exactly one of cron, every and at",
        ),
        (
            json!({"name": "a", "cron": "61 * * * *", "job": job}),
            "cron \"61 * * * *\" is not valid",
        ),
        (
            json!({"name": "a", "cron": "* *", "job": job}),
            "needs 5 fields",
        ),
        (
            json!({"name": "a", "every": "soon", "job": job}),
            "not a duration",
        ),
        (
            json!({"name": "a", "at": "tomorrow", "job": job}),
            "not an RFC 3339 instant",
        ),
        (
            json!({"name": "a", "cron": "0 2 * * *", "timezone": "Mars/Base", "job": job}),
            "not an IANA time zone",
        ),
        (
            json!({"name": ".a", "every": "1h", "job": job}),
            "invalid schedule name",
        ),
        (
            json!({"name": "a", "every": "1h", "job": {"message": "hi"}}),
            "exactly one of session and new_session",
        ),
        (
            json!({"name": "a", "every": "1h", "job": {"session": "s", "message": ""}}),
            "job.message must not be empty",
        ),
        (
            json!({"name": "a", "every": "1h", "start_deadline_seconds": 0, "job": job}),
            "start_deadline_seconds",
        ),
        (
            json!({"name": "a", "every": "1h", "overlap": "sometimes", "job": job}),
            "expected one of `skip`, `queue`",
        ),
    ] {
        let res = app
            .post("/api/v1/schedules", ALICE, body.clone())
            .send()
            .await
            .unwrap();
        let problem = assert_problem(res, 422, "validation-error").await;
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(says), "{body}: {problem}");
    }
    let res = app
        .post(
            "/api/v1/schedules",
            ALICE,
            json!({"name": "a", "every": "1h", "job": {"session": "missing", "message": "hi"}}),
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
    // Another tenant's session is as missing as one that does not exist.
    app.create_session(BOB, "bobs").await;
    let res = app
        .post(
            "/api/v1/schedules",
            ALICE,
            json!({"name": "a", "every": "1h", "job": {"session": "bobs", "message": "hi"}}),
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
    create_schedule(&app, ALICE, json!({"name": "a", "every": "1h", "job": job})).await;
    let res = app
        .post(
            "/api/v1/schedules",
            ALICE,
            json!({"name": "a", "every": "2h", "job": job}),
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 409, "conflict").await;
    assert_eq!(app.query_i64("SELECT COUNT(*) AS n FROM schedules"), 1);
}

#[actix_web::test]
async fn a_server_killed_over_due_times_catches_up_as_each_schedule_says() {
    let env = crate::recovery::Env::new();
    let server = env.start(5).await;
    server.post("/api/v1/sessions", json!({"name": "s"})).await;
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(3))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let job = json!({"session": "s", "message": "catching up"});
    let mut ids = Vec::new();
    for (name, timing, catch_up) in [
        ("once-one", json!({"at": soon}), "one"),
        ("once-none", json!({"at": soon}), "none"),
        ("every-one", json!({"every": "3s"}), "one"),
    ] {
        let mut body = json!({"name": name, "catch_up": catch_up, "job": job});
        body.as_object_mut()
            .unwrap()
            .extend(timing.as_object().unwrap().clone());
        let created = server.post("/api/v1/schedules", body).await;
        ids.push(created["data"]["id"].as_str().unwrap().to_owned());
    }
    // Down over the due times (more than the 5 s after which a due time
    // counts as missed).
    server.kill9();
    tokio::time::sleep(Duration::from_secs(13)).await;
    let server = env.start(5).await;
    let runs_of = |id: String| {
        let server = &server;
        async move {
            server
                .get(&format!("/api/v1/schedules/{id}/runs?limit=100"))
                .await["data"]
                .as_array()
                .unwrap()
                .clone()
        }
    };
    assert!(
        eventually(10, || async {
            runs_of(ids[0].clone())
                .await
                .iter()
                .any(|r| r["job_id"].is_string())
        })
        .await,
        "the missed one-shot runs after the restart"
    );
    let once_one = runs_of(ids[0].clone()).await;
    assert_eq!(once_one.len(), 1, "{once_one:?}");
    assert_eq!(once_one[0]["origin"], "catch_up");
    assert!(once_one[0]["job_id"].is_string(), "{once_one:?}");
    let view = server.get(&format!("/api/v1/schedules/{}", ids[0])).await;
    assert!(
        view["data"]["next_run_at"].is_null(),
        "a one-shot is done: {view}"
    );

    let once_none = runs_of(ids[1].clone()).await;
    assert_eq!(once_none.len(), 1, "{once_none:?}");
    assert_eq!(once_none[0]["status"], "skipped");
    assert!(once_none[0]["reason"]
        .as_str()
        .unwrap()
        .contains("catch_up: none"));

    tokio::time::sleep(Duration::from_secs(1)).await;
    let every = runs_of(ids[2].clone()).await;
    let caught: Vec<&Value> = every.iter().filter(|r| r["origin"] == "catch_up").collect();
    assert_eq!(
        caught.len(),
        1,
        "one run for all the missed ones: {every:?}"
    );
    assert!(
        caught[0]["reason"]
            .as_str()
            .unwrap()
            .contains("due times missed (catch_up: one)"),
        "{caught:?}"
    );
    server.kill9();
}

#[actix_web::test]
async fn overlap_queue_waits_for_the_last_run_and_replace_cancels_it() {
    let app = TestApp::spawn().await;
    let queued = create_schedule(
        &app,
        ALICE,
        json!({"name": "queued", "every": "1s", "overlap": "queue",
               "job": {"new_session": {}, "message": "[[slow 15 100]]"}}),
    )
    .await;
    let replaced = create_schedule(
        &app,
        ALICE,
        json!({"name": "replaced", "every": "2s", "overlap": "replace",
               "job": {"new_session": {}, "message": "[[hang]]"}}),
    )
    .await;
    let (queued, replaced) = (
        queued["id"].as_str().unwrap().to_owned(),
        replaced["id"].as_str().unwrap().to_owned(),
    );
    assert!(
        eventually(30, || async {
            started(&runs(&app, ALICE, &queued).await).len() >= 3
        })
        .await,
        "queued runs start one after another: {:?}",
        runs(&app, ALICE, &queued).await
    );
    app.post(
        &format!("/api/v1/schedules/{queued}/pause"),
        ALICE,
        json!({}),
    )
    .send()
    .await
    .unwrap();
    let all = runs(&app, ALICE, &queued).await;
    // One run waits at most; due times past it are skipped, saying so.
    for run in all.iter().filter(|r| r["status"] == "skipped") {
        assert!(
            run["reason"]
                .as_str()
                .unwrap()
                .contains("overlap: queue keeps one"),
            "{all:?}"
        );
    }
    assert!(all.iter().filter(|r| r["status"] == "waiting").count() <= 1);
    // Each started run's job started after the one before it ended.
    let mut jobs: Vec<Value> = Vec::new();
    for run in started(&all).iter().rev() {
        let session = run["session"].as_str().unwrap();
        let id = run["job_id"].as_str().unwrap();
        jobs.push(app.wait_job(ALICE, session, id, 60).await);
    }
    for pair in jobs.windows(2) {
        let ended = chrono::DateTime::parse_from_rfc3339(pair[0]["completed_at"].as_str().unwrap())
            .unwrap();
        let began =
            chrono::DateTime::parse_from_rfc3339(pair[1]["started_at"].as_str().unwrap()).unwrap();
        assert!(began >= ended, "a queued run waits for the last: {jobs:?}");
    }

    // Replace: each new run cancels the hanging job of the one before.
    assert!(
        eventually(30, || async {
            started(&runs(&app, ALICE, &replaced).await).len() >= 2
        })
        .await,
        "{:?}",
        runs(&app, ALICE, &replaced).await
    );
    app.post(
        &format!("/api/v1/schedules/{replaced}/pause"),
        ALICE,
        json!({}),
    )
    .send()
    .await
    .unwrap();
    let all = runs(&app, ALICE, &replaced).await;
    let first = started(&all).last().copied().unwrap().clone();
    let job = app
        .wait_job(
            ALICE,
            first["session"].as_str().unwrap(),
            first["job_id"].as_str().unwrap(),
            30,
        )
        .await;
    assert_eq!(job["status"], "cancelled", "replaced: {job}");
}

#[actix_web::test]
async fn a_tenant_has_a_limit_of_schedules_and_of_runs_per_hour() {
    let app = TestApp::spawn_with(
        Options::default()
            .var("SCHEDULES_PER_TENANT", "1")
            .var("SCHEDULE_RUNS_PER_HOUR", "1"),
    )
    .await;
    app.create_session(ALICE, "s").await;
    let job = json!({"session": "s", "message": "hello"});
    create_schedule(
        &app,
        ALICE,
        json!({"name": "one", "every": "1h", "job": job}),
    )
    .await;
    let res = app
        .post(
            "/api/v1/schedules",
            ALICE,
            json!({"name": "two", "every": "1h", "job": job}),
        )
        .send()
        .await
        .unwrap();
    let problem = assert_problem(res, 429, "rate-limited").await;
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("SCHEDULES_PER_TENANT"));
    // Another tenant has its own.
    app.create_session(BOB, "s").await;
    create_schedule(&app, BOB, json!({"name": "two", "every": "1h", "job": job})).await;

    let trigger = || async {
        let res = app
            .post("/api/v1/schedules/one/trigger", ALICE, json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
        res.json::<Value>().await.unwrap()["data"].clone()
    };
    let first = trigger().await;
    assert!(first["job_id"].is_string(), "{first}");
    let second = trigger().await;
    assert_eq!(second["status"], "skipped", "{second}");
    assert!(
        second["reason"]
            .as_str()
            .unwrap()
            .contains("SCHEDULE_RUNS_PER_HOUR is 1"),
        "{second}"
    );
    assert_eq!(app.query_i64("SELECT COUNT(*) AS n FROM jobs"), 1);
}

#[actix_web::test]
async fn a_schedule_stops_when_the_key_that_made_it_is_revoked() {
    let app = TestApp::spawn().await;
    let created = app
        .post(
            "/api/v1/admin/keys",
            ADMIN,
            json!({"tenant": "alice", "label": "ci"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let (key, key_id) = (
        created["data"]["key"].as_str().unwrap().to_owned(),
        created["data"]["id"].as_str().unwrap().to_owned(),
    );
    app.create_session(&key, "s").await;
    let schedule = create_schedule(
        &app,
        &key,
        json!({"name": "by-ci", "every": "1s", "overlap": "allow",
               "job": {"session": "s", "message": "tick"}}),
    )
    .await;
    let id = schedule["id"].as_str().unwrap().to_owned();
    assert!(
        eventually(10, || async {
            !started(&runs(&app, ALICE, &id).await).is_empty()
        })
        .await,
        "it runs while its key is valid"
    );
    let res = app
        .post(
            &format!("/api/v1/admin/keys/{key_id}/revoke"),
            ADMIN,
            json!({}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        eventually(10, || async {
            get_json(&app, &format!("/api/v1/schedules/{id}"), ALICE).await["data"]["paused"]
                == true
        })
        .await,
        "the schedule pauses itself"
    );
    let view = get_json(&app, &format!("/api/v1/schedules/{id}"), ALICE).await;
    assert!(view["data"]["pause_note"]
        .as_str()
        .unwrap()
        .contains("revoked"));
    let all = runs(&app, ALICE, &id).await;
    assert!(
        all[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("revoked"),
        "{all:?}"
    );
    let jobs = app.query_i64("SELECT COUNT(*) AS n FROM jobs");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        app.query_i64("SELECT COUNT(*) AS n FROM jobs"),
        jobs,
        "no run after"
    );
}
