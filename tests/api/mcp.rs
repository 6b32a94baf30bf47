//! The MCP endpoint, driven by the official `mcp` Python client over the
//! streamable HTTP transport (real CLI, mock model).

use serde_json::Value;

use crate::helpers::*;
use crate::python::{python_or_skip, run_script, MCP};

fn step<'a>(lines: &'a [Value], name: &str) -> &'a Value {
    &lines
        .iter()
        .find(|l| l["step"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {lines:?}"))["value"]
}

#[actix_web::test]
async fn mcp_python_client_uses_tools_and_resources() {
    let Some(python) = python_or_skip(&[MCP]) else {
        return;
    };
    let app = TestApp::spawn().await;
    // Bob's session: never visible to Alice through MCP.
    app.create_session(BOB, "bobs").await;
    let lines = run_script(&python, "mcp_client.py", &[&app.base, ALICE]).await;

    let init = step(&lines, "init");
    assert_eq!(init["server"], "claude-code-api");
    // The newest version the client speaks: the SDK speaks it too.
    assert_eq!(init["version"], init["client_version"]);
    assert!(init["session_id"].as_str().is_some_and(|s| !s.is_empty()));
    let tools: Vec<&str> = step(&lines, "tools")
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        tools,
        [
            "chat",
            "create_job",
            "create_session",
            "delete_session",
            "get_history",
            "get_job",
            "get_session",
            "list_files",
            "list_sessions"
        ]
    );
    let create = step(&lines, "create");
    assert_eq!(create["isError"], false, "{create}");
    assert_eq!(create["structured"]["data"]["name"], "mcp-s");

    let chat = step(&lines, "chat");
    assert_eq!(chat["isError"], false, "{chat}");
    assert_eq!(chat["structured"]["data"]["tools_used"][0]["name"], "Write");
    let get = step(&lines, "get");
    assert_eq!(get["structured"]["data"]["turns"], 1);
    let list = step(&lines, "list");
    let names: Vec<&str> = list["structured"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mcp-s"], "only Alice's sessions");
    let history = step(&lines, "history");
    assert_eq!(history["structured"]["data"].as_array().unwrap().len(), 2);
    let files = step(&lines, "files");
    assert!(
        files["structured"]["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "out.txt"),
        "{files}"
    );
    let job = step(&lines, "get_job");
    assert_eq!(job["structured"]["data"]["status"], "done", "{job}");

    let missing = step(&lines, "missing");
    assert_eq!(missing["isError"], true);
    assert_eq!(missing["structured"]["error"]["status"], 404);
    assert_eq!(step(&lines, "bad_name")["isError"], true);

    let resources = step(&lines, "resources").as_array().unwrap().clone();
    assert!(resources.contains(&Value::from("cca://sessions")));
    assert!(resources.contains(&Value::from("cca://templates")));
    assert!(resources.contains(&Value::from("cca://sessions/mcp-s")));
    assert!(!resources
        .iter()
        .any(|r| r.as_str().unwrap().contains("bobs")));
    assert_eq!(step(&lines, "read_sessions")[0]["name"], "mcp-s");
    assert_eq!(
        step(&lines, "read_templates")["code-reviewer"]["name"],
        "code-reviewer"
    );
    assert_eq!(step(&lines, "delete")["isError"], false);
    assert_eq!(
        step(&lines, "after_delete")["structured"]["data"],
        Value::Array(vec![])
    );
    // The job's turn and the chat are in the database like any other.
    assert_eq!(
        app.query_i64("SELECT COUNT(*) AS n FROM sessions WHERE name = 'bobs'"),
        1
    );
    // Tools run through the services, as the REST routes do: the chat and
    // the job are audited with the caller's key, the session's creation too.
    assert!(
        eventually(10, || async {
            app.query_i64(
                "SELECT COUNT(*) AS n FROM audit_log WHERE session_name = 'mcp-s' \
                 AND action IN ('chat', 'job.create', 'session.create', 'session.delete')",
            ) == 4
        })
        .await
    );
}

/// A POST to `/mcp` as an MCP client sends it.
fn mcp_post(app: &TestApp, key: &str, body: Value) -> reqwest::RequestBuilder {
    app.post("/mcp", key, body)
        .header("Accept", "application/json, text/event-stream")
}

/// The JSON-RPC message answering `id` in an SSE response body.
async fn rpc_reply(res: reqwest::Response, id: i64) -> Value {
    let body = res.text().await.unwrap();
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("no reply to {id} in {body:?}"))
}

#[actix_web::test]
async fn mcp_requires_a_key_and_a_session_of_the_same_tenant() {
    let app = TestApp::spawn_with(Options::fake()).await;
    let init = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "t", "version": "0"}}});
    let res = app
        .client
        .post(app.url("/mcp"))
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "unauthorized").await;
    let res = mcp_post(&app, "cca_not-a-key", init.clone())
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "unauthorized").await;

    // The transport's own refusals are problems too, with its reason: an
    // `Accept` that excludes event streams (none at all, or `*/*`, allows them).
    let res = app
        .post("/mcp", ALICE, init.clone())
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    let problem = assert_problem(res, 406, "http-error").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("text/event-stream"),
        "{problem}"
    );

    for accept in [None, Some("*/*")] {
        let mut req = app.post("/mcp", ALICE, init.clone());
        if let Some(accept) = accept {
            req = req.header("Accept", accept);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200, "Accept: {accept:?}");
    }
    let res = app
        .client
        .request(reqwest::Method::PUT, app.url("/mcp"))
        .header("X-API-Key", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["allow"], "GET, POST, DELETE");
    assert_problem(res, 405, "method-not-allowed").await;

    // Served under any host name (the key is the access control).
    let res = mcp_post(&app, ALICE, init)
        .header("Host", "mcp.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let session = res.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let reply = rpc_reply(res, 1).await;
    assert_eq!(reply["result"]["serverInfo"]["name"], "claude-code-api");
    assert_eq!(reply["result"]["protocolVersion"], "2025-06-18");

    let list = serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    // Bob can neither use nor end Alice's MCP session, nor listen on it.
    let res = mcp_post(&app, BOB, list.clone())
        .header("Mcp-Session-Id", &session)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
    let res = app
        .delete("/mcp", BOB)
        .header("Mcp-Session-Id", &session)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
    let res = app
        .get("/mcp", BOB)
        .header("Accept", "text/event-stream")
        .header("Mcp-Session-Id", &session)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
    // Anything but `initialize` needs a session.
    let res = mcp_post(&app, ALICE, list.clone()).send().await.unwrap();
    let problem = assert_problem(res, 400, "bad-request").await;
    assert!(problem["detail"].as_str().unwrap().contains("Session ID"));
    // Bodies are limited like the REST API's.
    let big = serde_json::json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list",
        "params": {"pad": "x".repeat(3 * 1024 * 1024)}});
    let res = mcp_post(&app, ALICE, big)
        .header("Mcp-Session-Id", &session)
        .send()
        .await
        .unwrap();
    assert_problem(res, 413, "payload-too-large").await;

    let res = mcp_post(&app, ALICE, list.clone())
        .header("Mcp-Session-Id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let reply = rpc_reply(res, 2).await;
    assert_eq!(reply["result"]["tools"].as_array().unwrap().len(), 9);

    // GET opens the session's server-to-client stream.
    let res = app
        .get("/mcp", ALICE)
        .header("Accept", "text/event-stream")
        .header("Mcp-Session-Id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    drop(res);

    // DELETE ends it; the id is then unknown.
    let res = app
        .delete("/mcp", ALICE)
        .header("Mcp-Session-Id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let res = mcp_post(&app, ALICE, list)
        .header("Mcp-Session-Id", &session)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
}

/// Clients of the sessionless revision (2026-07-28) get no MCP session:
/// each request stands on its own key.
#[actix_web::test]
async fn mcp_sessionless_requests_act_with_their_own_key() {
    let app = TestApp::spawn_with(Options::fake()).await;
    app.create_session(ALICE, "alices").await;
    app.create_session(BOB, "bobs").await;
    let call = |id: i64| {
        serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "list_sessions", "arguments": {},
                "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                          "io.modelcontextprotocol/clientCapabilities": {},
                          "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "0"}}}})
    };
    let send = |key: &str, id: i64| {
        mcp_post(&app, key, call(id))
            .header("MCP-Protocol-Version", "2026-07-28")
            .header("Mcp-Method", "tools/call")
            .header("Mcp-Name", "list_sessions")
            .send()
    };
    for (key, id, name) in [(ALICE, 1, "alices"), (BOB, 2, "bobs")] {
        let res = send(key, id).await.unwrap();
        assert_eq!(res.status(), 200);
        assert!(!res.headers().contains_key("mcp-session-id"));
        let reply = rpc_reply(res, id).await;
        let result = &reply["result"];
        assert_eq!(result["isError"], false, "{reply}");
        let names: Vec<&str> = result["structuredContent"]["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, [name]);
    }
    let res = send("cca_not-a-key", 3).await.unwrap();
    assert_problem(res, 401, "unauthorized").await;
}

fn remaining(res: &reqwest::Response) -> i64 {
    res.headers()["ratelimit-remaining"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[actix_web::test]
async fn mcp_and_openai_requests_count_against_the_rate_limit_once() {
    let app = TestApp::spawn_with(
        Options::fake()
            .var("RATE_LIMIT_REQUESTS", "6")
            .var("RATE_LIMIT_WINDOW", "3600"),
    )
    .await;
    let init = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "t", "version": "0"}}});
    let res = mcp_post(&app, ALICE, init).send().await.unwrap();
    assert_eq!(remaining(&res), 5);
    let session = res.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    rpc_reply(res, 1).await;
    let initialized = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let res = mcp_post(&app, ALICE, initialized)
        .header("Mcp-Session-Id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(remaining(&res), 4);
    let call = serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "list_sessions", "arguments": {}}});
    let res = mcp_post(&app, ALICE, call)
        .header("Mcp-Session-Id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(remaining(&res), 3);
    let reply = rpc_reply(res, 2).await;
    assert_eq!(reply["result"]["isError"], false, "{reply}");
    // The REST call the tool made was not counted a second time.
    let res = app.get("/api/v1/sessions", ALICE).send().await.unwrap();
    assert_eq!(remaining(&res), 2);
    // The OpenAI-compatible routes share the same budget.
    let res = app.get("/v1/models", ALICE).send().await.unwrap();
    assert_eq!(remaining(&res), 1);
    let res = app.get("/v1/models", ALICE).send().await.unwrap();
    assert_eq!(remaining(&res), 0);
    let res = app.get("/v1/models", ALICE).send().await.unwrap();
    assert!(res.headers().contains_key("retry-after"));
    assert_problem(res, 429, "rate-limited").await;
    let res = mcp_post(
        &app,
        ALICE,
        serde_json::json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}),
    )
    .header("Mcp-Session-Id", &session)
    .send()
    .await
    .unwrap();
    assert_problem(res, 429, "rate-limited").await;
    // A wrong key is limited at /mcp as everywhere (no free guessing).
    for _ in 0..6 {
        let res = mcp_post(&app, "cca_guess", serde_json::json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    let res = mcp_post(&app, "cca_guess", serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 429, "rate-limited").await;
    // A client cannot spare itself the limit by faking the internal mark.
    let res = app
        .get("/v1/models", ALICE)
        .header("x-cca-forward", "guess")
        .send()
        .await
        .unwrap();
    assert_problem(res, 429, "rate-limited").await;
}

/// A viewer reads through MCP (the tools that read, only those listed) and
/// estimates tokens; the tools that write refuse it, and nothing is made.
#[actix_web::test]
async fn a_viewer_uses_the_mcp_tools_that_read_only() {
    let app = TestApp::spawn_with(Options::fake()).await;
    app.create_session(ALICE, "alices").await;
    let res = app
        .post(
            "/api/v1/admin/keys",
            ADMIN,
            serde_json::json!({"tenant": "alice", "role": "viewer"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let viewer: Value = res.json().await.unwrap();
    let viewer = viewer["data"]["key"].as_str().unwrap().to_owned();
    let rpc = |id: i64, method: &str, params: Value| {
        let mut params = params;
        params["_meta"] = serde_json::json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "0"}});
        mcp_post(
            &app,
            &viewer,
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
        )
        .header("MCP-Protocol-Version", "2026-07-28")
        .header("Mcp-Method", method.to_owned())
    };
    let res = rpc(1, "tools/list", serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let reply = rpc_reply(res, 1).await;
    let mut names: Vec<&str> = reply["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "get_history",
            "get_job",
            "get_session",
            "list_files",
            "list_sessions"
        ]
    );
    let call = |id: i64, tool: &str, arguments: Value| {
        rpc(
            id,
            "tools/call",
            serde_json::json!({"name": tool, "arguments": arguments}),
        )
        .header("Mcp-Name", tool.to_owned())
        .send()
    };
    let reply = rpc_reply(
        call(2, "get_session", serde_json::json!({"name": "alices"}))
            .await
            .unwrap(),
        2,
    )
    .await;
    assert_eq!(reply["result"]["isError"], false, "{reply}");
    assert_eq!(
        reply["result"]["structuredContent"]["data"]["name"],
        "alices"
    );
    let reply = rpc_reply(
        call(
            3,
            "create_session",
            serde_json::json!({"name": "by-a-viewer"}),
        )
        .await
        .unwrap(),
        3,
    )
    .await;
    assert_eq!(reply["result"]["isError"], true, "{reply}");
    assert_eq!(
        reply["result"]["structuredContent"]["error"]["status"], 403,
        "{reply}"
    );
    let reply = rpc_reply(
        call(
            4,
            "chat",
            serde_json::json!({"session": "alices", "message": "hi"}),
        )
        .await
        .unwrap(),
        4,
    )
    .await;
    assert_eq!(reply["result"]["isError"], true, "{reply}");
    assert_eq!(
        app.query_i64("SELECT COUNT(*) AS n FROM sessions WHERE tenant_id = 'alice'"),
        1
    );
    assert_eq!(app.query_i64("SELECT COUNT(*) AS n FROM messages"), 0);

    // A token estimate reads too.
    let res = app
        .post(
            "/api/v1/tokens/count",
            &viewer,
            serde_json::json!({"text": "two words"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}
