//! The OpenAI-compatible surface, driven by the official `openai` Python
//! package against the real server (real CLI, mock model).

use serde_json::Value;

use crate::helpers::*;
use crate::python::{python_or_skip, run_script, OPENAI};

fn step<'a>(lines: &'a [Value], name: &str) -> &'a Value {
    &lines
        .iter()
        .find(|l| l["step"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {lines:?}"))["value"]
}

#[actix_web::test]
async fn openai_python_client_chats_streams_and_lists_models() {
    let Some(python) = python_or_skip(&[OPENAI]) else {
        return;
    };
    let app = TestApp::spawn().await;
    let lines = run_script(&python, "openai_client.py", &[&app.base, ALICE]).await;

    assert_eq!(step(&lines, "models")[0], "claude-code");

    let sync = step(&lines, "sync");
    assert_eq!(sync["object"], "chat.completion");
    assert!(sync["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(sync["model"], "claude-code");
    assert_eq!(sync["choices"][0]["message"]["role"], "assistant");
    assert_eq!(sync["choices"][0]["finish_reason"], "stop");
    // Only the last user message is the prompt.
    assert_eq!(
        sync["choices"][0]["message"]["content"],
        "Mock reply to: Hello from openai"
    );
    let usage = &sync["usage"];
    assert!(usage["completion_tokens"].as_i64().unwrap() > 0, "{usage}");
    assert_eq!(
        usage["total_tokens"].as_i64().unwrap(),
        usage["prompt_tokens"].as_i64().unwrap() + usage["completion_tokens"].as_i64().unwrap()
    );

    // Same `user`, same session: the conversation continues; `model` is the
    // turn's model.
    let recall = step(&lines, "recall");
    let text = recall["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(text.contains("Hello from openai"), "{text}");
    let models: Vec<String> = app
        .mock
        .requests()
        .iter()
        .filter_map(|r| r["model"].as_str().map(str::to_owned))
        .collect();
    assert!(
        models.iter().any(|m| m == "claude-opus-test-model"),
        "{models:?}"
    );

    // Streaming: role first, the text in several deltas, a stop, usage, end.
    let chunks = step(&lines, "stream").as_array().unwrap().clone();
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    let id = chunks[0]["id"].clone();
    assert!(chunks.iter().all(|c| c["id"] == id));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, " chunk0 chunk1 chunk2 chunk3");
    let deltas = chunks
        .iter()
        .filter(|c| c["choices"][0]["delta"]["content"].is_string())
        .count();
    assert!(deltas >= 2, "streamed in pieces: {chunks:?}");
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == "stop"));
    let last = chunks.last().unwrap();
    assert!(last["usage"]["completion_tokens"].as_i64().unwrap() > 0);

    assert_eq!(*step(&lines, "bad_name"), 422);
    assert_eq!(*step(&lines, "bad_key"), 401);

    // The sessions were created on first use in Alice's tenant, and the
    // turns are in their history like any chat.
    let history = app.history(ALICE, "oa-sync").await;
    assert_eq!(history.len(), 4, "{history:?}");
    assert_eq!(history[0]["content"], "Hello from openai");
    assert_eq!(history[2]["content"], "[[recall]]");
    assert_eq!(history[3]["role"], "assistant");
    let history = app.history(ALICE, "oa-stream").await;
    assert_eq!(history.len(), 2);
    assert_eq!(history[1]["content"], " chunk0 chunk1 chunk2 chunk3");
    assert_eq!(
        app.query_i64(
            "SELECT COUNT(*) AS n FROM sessions WHERE name IN ('oa-sync', 'oa-stream') \
             AND tenant_id = 'alice'"
        ),
        2
    );
    // Bob does not see them.
    let res = app
        .get("/api/v1/sessions/oa-sync", BOB)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[actix_web::test]
async fn openai_requests_are_validated_and_tenant_scoped() {
    let app = TestApp::spawn_with(Options::fake()).await;
    let post = |key: &'static str, body: Value| {
        app.client
            .post(app.url("/v1/chat/completions"))
            .header("Authorization", format!("Bearer {key}"))
            .json(&body)
    };
    let res = post(
        ALICE,
        serde_json::json!({"model": "claude-code", "messages": []}),
    )
    .send()
    .await
    .unwrap();
    assert_problem(res, 422, "validation-error").await;
    let res = app
        .client
        .post(app.url("/v1/chat/completions"))
        .json(&serde_json::json!({"messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "unauthorized").await;
    let res = app.client.get(app.url("/v1/models")).send().await.unwrap();
    assert_problem(res, 401, "unauthorized").await;
    let res = post(
        ALICE,
        serde_json::json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .header("X-Session", ".hidden")
    .send()
    .await
    .unwrap();
    assert_problem(res, 422, "validation-error").await;
}

/// The OpenAI surface takes the same path as `/chat`: a prompt the deny
/// patterns refuse is refused (and makes no session), an accepted one is
/// queued and audited as a chat.
#[actix_web::test]
async fn openai_completions_apply_the_deny_patterns_and_audit_like_chat() {
    let app = TestApp::spawn_with(Options::default().var("DENY_PATTERNS", "drop table")).await;
    let completion = |session: &str, text: &str| {
        app.post(
            "/v1/chat/completions",
            ALICE,
            serde_json::json!({"messages": [{"role": "user", "content": text}]}),
        )
        .header("X-Session", session)
        .send()
    };
    let refused = completion("oa", "please DROP TABLE users").await.unwrap();
    assert_problem(refused, 422, "validation-error").await;
    assert_eq!(
        app.query_i64("SELECT COUNT(*) AS n FROM sessions WHERE name = 'oa'"),
        0,
        "a refused prompt makes no session"
    );
    let res = completion("oa", "hello through openai").await.unwrap();
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Mock reply to: hello through openai"
    );
    // The same refusal on /chat, for the same session.
    let res = app
        .post(
            "/api/v1/sessions/oa/chat",
            ALICE,
            serde_json::json!({"message": "drop table now"}),
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 422, "validation-error").await;
    let chats = || async {
        get_json(&app, "/api/v1/audit?limit=20", ALICE).await["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "chat")
            .cloned()
            .collect::<Vec<Value>>()
    };
    // Entries are written off the request's path.
    assert!(eventually(10, || async { !chats().await.is_empty() }).await);
    let entries = chats().await;
    assert_eq!(entries.len(), 1, "only the accepted prompt: {entries:?}");
    assert_eq!(entries[0]["session_name"], "oa");
    assert_eq!(entries[0]["role"], "user");
    assert_eq!(entries[0]["content"], "hello through openai");
    assert_eq!(app.history(ALICE, "oa").await.len(), 2);
}
