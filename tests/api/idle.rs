//! Idle session actors stop and leave the registry; a new session's process
//! starts before its first turn (warm-up).

use std::time::Duration;

use crate::events::SseReader;
use crate::helpers::*;

async fn sessions_stat(app: &TestApp, field: &str) -> i64 {
    app.health().await["sessions"][field].as_i64().unwrap()
}

#[actix_web::test]
async fn an_idle_actor_stops_and_the_next_message_resumes_the_conversation() {
    let app =
        // Long enough that the process is not retired between two of the
        // test's own requests on a slow machine (a resumed process may write
        // its transcript elsewhere), short enough to wait for.
        TestApp::spawn_with(Options::default().var("SESSION_IDLE_TIMEOUT_SECONDS", "3")).await;
    app.create_session(ALICE, "nap").await;
    app.chat_ok(ALICE, "nap", "remember KIWI").await;
    assert_eq!(sessions_stat(&app, "live_sessions").await, 1);
    // The process is retired by the idle timeout, then the actor goes.
    let gone = eventually(15, || async {
        sessions_stat(&app, "live_sessions").await == 0
            && sessions_stat(&app, "live_processes").await == 0
    })
    .await;
    assert!(gone, "the idle actor left: {}", app.health().await);
    let data = app.chat_ok(ALICE, "nap", "[[recall]]").await;
    assert!(
        data["content"].as_str().unwrap().contains("remember KIWI"),
        "{data}"
    );
    assert_eq!(sessions_stat(&app, "live_sessions").await, 1);
    assert_eq!(app.history(ALICE, "nap").await.len(), 4);
    // Its events go on numbered after the ones its first actor stored.
    let res = app
        .get("/api/v1/sessions/nap/events?after=0", ALICE)
        .send()
        .await
        .unwrap();
    let mut events = SseReader::new(res);
    let mut ids = Vec::new();
    while let Some((_, id, _)) = events.next(2).await {
        ids.push(id.parse::<i64>().unwrap());
    }
    assert!(ids.len() >= 4, "{ids:?}");
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "no gap, no reuse: {ids:?}"
    );
}

/// Requests that arrive while the session's actor is stopping, or just
/// after, reach a live actor: none is lost (a lost one would be a 500).
#[actix_web::test]
async fn messages_around_an_actor_stopping_are_never_lost() {
    let app = TestApp::spawn_with(Options::fake().var("WARM_ON_CREATE", "false")).await;
    app.create_session(ALICE, "edge").await;
    let mut stopped_between = 0;
    for pause_ms in [0u64, 20, 150, 400, 700, 900, 1000, 1100, 1300]
        .iter()
        .cycle()
        .take(27)
    {
        let res = app
            .post(
                "/api/v1/sessions/edge/interrupt",
                ALICE,
                serde_json::json!({}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 409, "{}", res.text().await.unwrap());
        tokio::time::sleep(Duration::from_millis(*pause_ms)).await;
        if sessions_stat(&app, "live_sessions").await == 0 {
            stopped_between += 1;
        }
    }
    assert!(stopped_between > 0, "the actor never stopped in between");
    let data = app.chat_ok(ALICE, "edge", "still here").await;
    assert_eq!(data["content"], "fake reply: still here");
}

#[actix_web::test]
async fn a_new_sessions_process_starts_before_its_first_turn() {
    let app = TestApp::spawn_with(Options::fake()).await;
    app.create_session(ALICE, "warm").await;
    let started = eventually(10, || async {
        sessions_stat(&app, "live_processes").await == 1
            && sessions_stat(&app, "processes_started").await == 1
    })
    .await;
    assert!(started, "warmed at create: {}", app.health().await);
    let data = app.chat_ok(ALICE, "warm", "first").await;
    assert_eq!(data["content"], "fake reply: first");
    assert_eq!(
        sessions_stat(&app, "processes_started").await,
        1,
        "the first turn used the warm process"
    );
}

#[actix_web::test]
async fn warm_up_takes_only_a_free_slot_and_can_be_turned_off() {
    let app = TestApp::spawn_with(Options::fake().var("MAX_LIVE_SESSIONS", "1")).await;
    app.create_session(ALICE, "a").await;
    assert!(
        eventually(10, || async {
            sessions_stat(&app, "processes_started").await == 1
        })
        .await
    );
    // No free slot: b is not warmed, and a keeps its process.
    app.create_session(ALICE, "b").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sessions_stat(&app, "processes_started").await, 1);
    assert_eq!(sessions_stat(&app, "live_processes").await, 1);

    let off = TestApp::spawn_with(Options::fake().var("WARM_ON_CREATE", "false")).await;
    off.create_session(ALICE, "cold").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sessions_stat(&off, "processes_started").await, 0);
    off.chat_ok(ALICE, "cold", "hi").await;
    assert_eq!(sessions_stat(&off, "processes_started").await, 1);
}

#[actix_web::test]
async fn opening_the_event_stream_warms_a_cold_session() {
    let app = TestApp::spawn_with(Options::fake().var("SESSION_IDLE_TIMEOUT_SECONDS", "1")).await;
    app.create_session(ALICE, "es").await;
    // The warm process of the create is retired when idle.
    assert!(
        eventually(15, || async {
            sessions_stat(&app, "processes_started").await == 1
                && sessions_stat(&app, "live_processes").await == 0
        })
        .await
    );
    let res = app
        .get("/api/v1/sessions/es/events", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert!(
        eventually(10, || async {
            sessions_stat(&app, "processes_started").await == 2
        })
        .await,
        "{}",
        app.health().await
    );
    drop(res);
}

#[actix_web::test]
async fn a_warmed_session_is_primed_without_a_model_call_or_a_trace() {
    let app =
        TestApp::spawn_with(Options::default().var("SESSION_IDLE_TIMEOUT_SECONDS", "6")).await;
    app.create_session(ALICE, "primed").await;
    assert!(
        eventually(20, || async {
            sessions_stat(&app, "processes_started").await == 1
        })
        .await
    );
    // Time for the process to start, initialise and be primed.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        app.mock.all_requests().is_empty(),
        "priming reached the model: {:?}",
        app.mock.all_requests()
    );

    let answer = app.chat_ok(ALICE, "primed", "remember 42").await;
    assert!(answer["content"].as_str().is_some(), "{answer}");
    // The model saw one call, the turn's, on a conversation holding only
    // the client's message: the priming exchange left nothing in it (and
    // the new conversation's side calls were made while priming).
    let calls = app.mock.all_requests();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let sent = calls[0]["messages"].to_string();
    assert!(sent.contains("remember 42"), "{sent}");
    assert!(!sent.contains("(warm-up)"), "{sent}");
    let users = calls[0]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .count();
    assert_eq!(users, 1, "{sent}");
    assert_eq!(sessions_stat(&app, "processes_started").await, 1);

    // Nothing of it was stored: the mirrored transcript is the current
    // conversation's alone, and the session cost only its turn.
    let current =
        app.query_strings("SELECT cli_session_id AS s FROM sessions WHERE name = 'primed'");
    let mirrored = app.query_strings("SELECT DISTINCT cli_session_id AS s FROM transcript_entries");
    assert_eq!(mirrored, current);
    let turns = app.query_i64("SELECT COUNT(*) AS n FROM messages WHERE role = 'user'");
    assert_eq!(turns, 1);
    // The throwaway conversation's transcript file is gone: one is left,
    // the current conversation's.
    let projects = app.root.path().join("data/cli-config/alice/projects");
    let transcripts = || {
        std::fs::read_dir(&projects)
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|dir| {
                std::fs::read_dir(dir.path())
                    .into_iter()
                    .flatten()
                    .flatten()
            })
            .filter(|f| f.file_name().to_string_lossy().ends_with(".jsonl"))
            .map(|f| f.file_name().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
    };
    let only_current = eventually(5, || async {
        transcripts() == [format!("{}.jsonl", current[0])]
    })
    .await;
    assert!(only_current, "{:?} (current {current:?})", transcripts());

    // A later process resumes this conversation, not the primed one.
    assert!(eventually(20, || async { live_processes(&app).await == 0 }).await);
    let recalled = app.chat_ok(ALICE, "primed", "[[recall]]").await;
    let text = recalled["content"].as_str().unwrap();
    assert!(text.contains("remember 42"), "{text}");
    assert!(!text.contains("(warm-up)"), "{text}");
}
