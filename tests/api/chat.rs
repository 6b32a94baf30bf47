//! Chat through the real CLI: tools really run in the workspace, history and
//! cost are stored, turns queue in order, the agent's environment is clean.

use serde_json::{json, Value};

use crate::events::subscribe;
use crate::helpers::*;

#[actix_web::test]
async fn chat_writes_a_file_and_records_history_and_cost() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "w").await;
    let data = app
        .chat_ok(
            ALICE,
            "w",
            "Please [[write hello.py]]print('Hello World')\n[[/write]]",
        )
        .await;
    let file = app.workspace("alice", "w").join("hello.py");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "print('Hello World')\n"
    );
    assert_eq!(data["session_id"], "w");
    assert_eq!(data["is_error"], false);
    assert!(
        data["content"]
            .as_str()
            .unwrap()
            .starts_with("Tool result:"),
        "{data}"
    );
    assert_eq!(data["tools_used"][0]["name"], "Write");
    assert!(data["tools_used"][0]["input"]["file_path"]
        .as_str()
        .unwrap()
        .ends_with("hello.py"));
    assert_eq!(data["num_turns"], 2);
    let cost = data["cost_micros"].as_i64().unwrap();
    assert!(cost > 0, "a turn costs something: {data}");
    assert!(data["usage"]["output_tokens"].as_i64().unwrap() > 0);

    let history = app.history(ALICE, "w").await;
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["role"], "user");
    assert!(history[0]["content"]
        .as_str()
        .unwrap()
        .contains("[[write hello.py]]"));
    assert_eq!(history[1]["role"], "assistant");
    assert_eq!(history[1]["content"], data["content"]);
    assert_eq!(history[1]["tools_used"], data["tools_used"]);
    assert_eq!(history[1]["cost_micros"], cost);

    let session: Value = app
        .get("/api/v1/sessions/w", ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["data"]["total_cost_micros"], cost);
    assert_eq!(session["data"]["turns"], 1);
    // Every stream event of the turn is stored with increasing seq.
    let events = app.query_i64("SELECT COUNT(*) AS n FROM events");
    let max_seq = app.query_i64("SELECT MAX(seq) AS n FROM events");
    assert!(
        events >= 4,
        "turn_started, tool, tool_result, assistant, done…: {events}"
    );
    assert_eq!(events, max_seq, "seq runs 1..n without gaps");
    assert_eq!(
        app.query_i64("SELECT COUNT(*) AS n FROM events WHERE kind = 'done'"),
        1
    );
}

#[actix_web::test]
async fn chat_runs_commands_and_keeps_the_conversation() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "b").await;
    app.chat_ok(
        ALICE,
        "b",
        "[[bash]]echo ran-by-agent > ran.txt && pwd >> ran.txt[[/bash]]",
    )
    .await;
    let ran = std::fs::read_to_string(app.workspace("alice", "b").join("ran.txt")).unwrap();
    let workspace = app.workspace("alice", "b").canonicalize().unwrap();
    assert_eq!(ran, format!("ran-by-agent\n{}\n", workspace.display()));
    app.chat_ok(ALICE, "b", "remember BANANA").await;
    let data = app.chat_ok(ALICE, "b", "[[recall]]").await;
    let content = data["content"].as_str().unwrap();
    assert!(content.contains("remember BANANA"), "{content}");
    assert!(content.contains("[[bash]]echo ran-by-agent"), "{content}");
    // One warm process served all three turns: the cost is charged as deltas,
    // so the session total equals the sum of the turns.
    let history = app.history(ALICE, "b").await;
    let sum: i64 = history
        .iter()
        .map(|m| m["cost_micros"].as_i64().unwrap())
        .sum();
    let session: Value = app
        .get("/api/v1/sessions/b", ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["data"]["total_cost_micros"], sum);
    assert_eq!(session["data"]["turns"], 3);
}

#[actix_web::test]
async fn messages_sent_during_a_turn_wait_their_turn() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "q").await;
    let mut events = subscribe(&app, ALICE, "q", None).await;
    let slow = app.chat(ALICE, "q", "first [[slow 10 100]]");
    let quick = async {
        // Sent once the first turn runs.
        events.until("turn_started", 60).await;
        app.chat(ALICE, "q", "second message").await
    };
    let ((s1, b1), (s2, b2)) = tokio::join!(slow, quick);
    assert_eq!((s1, s2), (200, 200), "{b1} {b2}");
    assert!(b1["data"]["content"].as_str().unwrap().contains("chunk9"));
    assert_eq!(b2["data"]["content"], "Mock reply to: second message");
    // The model saw two separate prompts, never a merged one.
    let prompts: Vec<String> = app
        .mock
        .requests()
        .iter()
        .filter_map(|r| r["messages"].as_array()?.last().cloned())
        .map(|m| m["content"].to_string())
        .collect();
    assert!(
        prompts
            .iter()
            .all(|p| !(p.contains("first") && p.contains("second message"))),
        "{prompts:?}"
    );
    let history = app.history(ALICE, "q").await;
    let roles: Vec<&str> = history
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant"]);
    assert!(history[0]["content"].as_str().unwrap().starts_with("first"));
    assert_eq!(history[2]["content"], "second message");
}

#[actix_web::test]
async fn a_cli_error_is_a_502_problem_with_its_message() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "e").await;
    let res = app
        .post(
            "/api/v1/sessions/e/chat",
            ALICE,
            json!({"message": "[[error 500]]"}),
        )
        .send()
        .await
        .unwrap();
    let body = assert_problem(res, 502, "cli-error").await;
    assert!(body["detail"].as_str().unwrap().contains("500"), "{body}");
    // The session goes on.
    let data = app.chat_ok(ALICE, "e", "after the error").await;
    assert_eq!(data["content"], "Mock reply to: after the error");
    let history = app.history(ALICE, "e").await;
    assert_eq!(history.len(), 4);
    assert_eq!(history[1]["is_error"], true);
}

#[actix_web::test]
async fn the_agent_sees_only_allowlisted_environment() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "env").await;
    app.chat_ok(ALICE, "env", "[[bash]]env > env.txt[[/bash]]")
        .await;
    let env = std::fs::read_to_string(app.workspace("alice", "env").join("env.txt")).unwrap();
    assert!(env.contains("ANTHROPIC_BASE_URL="), "{env}");
    for secret in [
        "WEBHOOK_SECRET",
        "DATABASE_URL",
        "API_KEYS",
        "alice-key",
        "APPROVED_DIRECTORY",
    ] {
        assert!(
            !env.contains(secret),
            "{secret} leaked into the agent's environment"
        );
    }
}

#[actix_web::test]
async fn per_turn_overrides_reach_the_model_and_session_options_apply() {
    let app = TestApp::spawn().await;
    app.create_session_with(
        ALICE,
        json!({"name": "o", "append_system_prompt": "SESSION-PROMPT-MARK", "disallowed_tools": ["WebSearch"]}),
    )
    .await;
    app.chat_ok(ALICE, "o", "plain").await;
    let res = app
        .post(
            "/api/v1/sessions/o/chat",
            ALICE,
            json!({"message": "with override", "model": "claude-override-1", "system": "TURN-PROMPT-MARK"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let requests = app.mock.requests();
    let first = &requests[0];
    let last = requests.last().unwrap();
    let system_of = |r: &Value| r["system"].to_string();
    let tools_of = |r: &Value| -> Vec<String> {
        r["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert!(system_of(first).contains("SESSION-PROMPT-MARK"));
    assert!(!tools_of(first).contains(&"WebSearch".to_string()));
    assert!(tools_of(first).contains(&"Write".to_string()));
    assert!(system_of(last).contains("TURN-PROMPT-MARK"));
    assert!(system_of(last).contains("SESSION-PROMPT-MARK"));
    assert_eq!(
        last["model"],
        "claude-override-1",
        "{:?}",
        requests
            .iter()
            .map(|r| (
                r["model"].clone(),
                r["messages"]
                    .to_string()
                    .chars()
                    .take(300)
                    .collect::<String>()
            ))
            .collect::<Vec<_>>()
    );
    // The conversation survived the restart the override needed.
    let prompts = last["messages"].to_string();
    assert!(prompts.contains("plain"), "{prompts}");
}
