//! Clients of the Python original run unchanged: each test reads a response
//! the way the original's clients do (its README, docs and examples) and
//! asserts the original's field names and types.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::events::stream_chat;
use crate::files::{file_part, upload, Part};
use crate::helpers::*;
use crate::receiver::Receiver;

fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {"answer": {"type": "integer"}, "label": {"type": "string"}},
        "required": ["answer"]
    })
}

/// Item 1: the original's clients iterate `data` as a map of templates.
#[actix_web::test]
async fn templates_are_a_map_by_name() {
    let app = TestApp::spawn_with(Options::fake()).await;
    let body = get_json(&app, "/api/v1/templates", ALICE).await;
    let map = body["data"].as_object().expect("data is an object");
    assert_eq!(map.len(), 12);
    for (name, t) in map {
        assert_eq!(t["name"], name.as_str());
        // What the original's showcase prints of each.
        assert!(t["system_prompt"].as_str().unwrap().len() > 20, "{name}");
        assert!(t["effort"].is_string(), "{name}");
    }
    assert!(body.get("pagination").is_none());
}

/// Item 2: session documents, from creation through a running turn, an
/// approval and after the turn.
#[actix_web::test]
async fn session_documents_carry_status_workspace_totals_and_every_spec_field() {
    let app = TestApp::spawn_with(Options::default().var("APPROVAL_HOLD_SECONDS", "1")).await;
    // `user_id` is accepted and ignored: the key decides the tenant.
    let created = app
        .create_session_with(ALICE, json!({"name": "s", "user_id": "someone-else"}))
        .await;
    assert_eq!(created["status"], "pending");
    assert_eq!(created["user_id"], "alice");
    assert_eq!(created["total_turns"], 0);
    let workspace = app.workspace("alice", "s");
    assert_eq!(created["working_dir"], workspace.to_string_lossy().as_ref());
    for field in [
        "template",
        "system_prompt",
        "append_system_prompt",
        "model",
        "max_turns",
        "permission_mode",
        "effort",
        "allowed_tools",
        "disallowed_tools",
        "env",
        "mcp_servers",
        "cli_session_id",
    ] {
        assert!(
            created[field].is_null(),
            "{field} present and null: {created}"
        );
    }

    let answer = app.chat_ok(ALICE, "s", "hello").await;
    let got = get_json(&app, "/api/v1/sessions/s", ALICE).await;
    assert_eq!(got["data"]["status"], "active");
    assert_eq!(got["data"]["total_turns"], 1);
    let cli_id = got["data"]["cli_session_id"].as_str().expect("filled");
    assert_eq!(answer["cli_session_id"], cli_id);

    // While a turn runs the session says so.
    let streaming = stream_chat(&app, "s", "[[slow 30 100]]");
    assert!(
        eventually(20, || async {
            get_json(&app, "/api/v1/sessions/s", ALICE).await["data"]["status"] == "running"
        })
        .await
    );
    let events = streaming.await.unwrap();
    assert_eq!(events.last().unwrap().0, "done");
    let list = get_json(&app, "/api/v1/sessions", ALICE).await;
    assert_eq!(list["data"][0]["status"], "active");

    // A turn held on an approval.
    app.create_session_with(ALICE, json!({"name": "ask", "permission_mode": "default"}))
        .await;
    let (status, body) = app.chat(ALICE, "ask", "[[write a.txt]]x[[/write]]").await;
    assert_eq!(status, 202, "{body}");
    let got = get_json(&app, "/api/v1/sessions/ask", ALICE).await;
    assert_eq!(got["data"]["status"], "waiting_for_approval");
    assert_eq!(got["data"]["permission_mode"], "default");
}

/// Item 3: the audit log keeps what was asked.
#[actix_web::test]
async fn audit_entries_carry_session_role_and_content() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "a").await;
    let long = format!("remember this: {}", "y".repeat(600));
    app.chat_ok(ALICE, "a", &long).await;
    let (status, created) = app
        .create_job(ALICE, "a", json!({"message": "a job prompt"}))
        .await;
    assert_eq!(status, 202, "{created}");
    let audit = || async { get_json(&app, "/api/v1/audit?limit=10", ALICE).await["data"].clone() };
    // Entries are written off the request's path.
    assert!(
        eventually(10, || async {
            audit().await.as_array().unwrap().len() >= 3
        })
        .await
    );
    let entries = audit().await.as_array().unwrap().clone();
    let of = |action: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action)
            .unwrap_or_else(|| panic!("no {action} in {entries:?}"))
            .clone()
    };
    let chat = of("chat");
    assert_eq!(chat["session_name"], "a");
    assert_eq!(chat["role"], "user");
    let kept: String = long.chars().take(500).collect();
    assert_eq!(chat["content"], kept.as_str());
    let job = of("job.create");
    assert_eq!(
        (job["role"].clone(), job["content"].clone()),
        (json!("user"), json!("a job prompt"))
    );
    let create = of("session.create");
    assert_eq!(create["role"], "system");
    assert_eq!(create["session_name"], "a");
    assert_eq!(create["content"], "created session a");
    app.wait_job(ALICE, "a", created["data"]["id"].as_str().unwrap(), 60)
        .await;
}

/// Item 4: stream events with the members the original's clients read.
#[actix_web::test]
async fn stream_events_carry_content_tool_name_and_error() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "st").await;
    let events = stream_chat(&app, "st", "[[write note.txt]]hi[[/write]]")
        .await
        .unwrap();
    let tool = events.iter().find(|e| e.0 == "tool").expect("a tool event");
    assert_eq!(tool.2["tool_name"], "Write");
    assert!(tool.2["content"].is_null() && tool.2.get("content").is_some());
    let said = events
        .iter()
        .find(|e| e.0 == "assistant")
        .expect("an assistant event");
    assert!(said.2["content"]
        .as_str()
        .unwrap()
        .starts_with("Tool result"));
    assert!(said.2["tool_name"].is_null() && said.2.get("tool_name").is_some());
    assert_eq!(events.last().unwrap().0, "done");

    let events = stream_chat(&app, "st", "[[error 500]]").await.unwrap();
    let (kind, _, error) = events.last().unwrap();
    assert_eq!(kind, "error");
    assert!(!error["error"].as_str().unwrap().is_empty(), "{error}");
    assert_eq!(error["error"], error["detail"]);
    assert_eq!(error["status"], 502);
}

/// Item 5: `output_format` is honoured on chats and jobs.
#[actix_web::test]
async fn output_format_asks_the_cli_for_structured_output() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "so").await;
    let res = app
        .post(
            "/api/v1/sessions/so/chat",
            ALICE,
            json!({
                "message": r#"[[structured]]{"answer": 42, "label": "life"}[[/structured]]"#,
                "output_format": {"type": "json_schema", "schema": schema()},
            }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let data = res.json::<Value>().await.unwrap()["data"].clone();
    assert_eq!(
        data["structured_output"],
        json!({"answer": 42, "label": "life"})
    );
    // The original gives the result as JSON text in `content`.
    let content: Value = serde_json::from_str(data["content"].as_str().unwrap()).unwrap();
    assert_eq!(content, data["structured_output"]);
    // The CLI offered the model the schema as its structured-output tool.
    let request = app.mock.requests().last().unwrap().clone();
    let tool = request["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "StructuredOutput")
        .expect("the StructuredOutput tool was offered")
        .clone();
    assert_eq!(tool["input_schema"]["properties"], schema()["properties"]);

    // A plain chat afterwards has no structured output.
    let plain = app.chat_ok(ALICE, "so", "plain again").await;
    assert!(plain["structured_output"].is_null());

    let (status, job) = app
        .create_job(
            ALICE,
            "so",
            json!({
                "message": r#"[[structured]]{"answer": 7}[[/structured]]"#,
                "output_format": {"type": "json_schema", "schema": schema()},
            }),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    let done = app
        .wait_job(ALICE, "so", job["data"]["id"].as_str().unwrap(), 60)
        .await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["result"]["structured_output"], json!({"answer": 7}));

    // Only JSON Schema output is supported: anything else is a 422.
    let res = app
        .post(
            "/api/v1/sessions/so/chat",
            ALICE,
            json!({"message": "x", "output_format": {"type": "json"}}),
        )
        .send()
        .await
        .unwrap();
    let problem = assert_problem(res, 422, "validation-error").await;
    assert_eq!(problem["errors"][0]["field"], "output_format.type");
    let res = app
        .post(
            "/api/v1/sessions/so/jobs",
            ALICE,
            json!({"message": "x", "output_format": {"type": "json_schema", "schema": "x"}}),
        )
        .send()
        .await
        .unwrap();
    let problem = assert_problem(res, 422, "validation-error").await;
    assert_eq!(problem["errors"][0]["field"], "output_format.schema");
}

/// Item 6: history, usage, reload, 422 problems and health.
#[actix_web::test]
async fn history_usage_reload_problems_and_health_carry_the_originals_members() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "h").await;
    app.chat_ok(ALICE, "h", "one").await;
    let history = get_json(&app, "/api/v1/sessions/h/history?limit=10", ALICE).await;
    assert_eq!(history["session_id"], "h");
    assert_eq!(history["count"], 2);
    assert_eq!(history["data"].as_array().unwrap().len(), 2);

    let (_, job) = app.create_job(ALICE, "h", json!({"message": "two"})).await;
    app.wait_job(ALICE, "h", job["data"]["id"].as_str().unwrap(), 60)
        .await;
    let usage = get_json(&app, "/api/v1/usage", ALICE).await;
    assert_eq!(usage["user_id"], "alice");
    let data = &usage["data"];
    assert_eq!(data["user_id"], "alice");
    assert_eq!(data["messages"], 4);
    assert_eq!(data["sessions"], 1);
    assert_eq!(data["turns"], 2);
    assert!(data["cost"].is_f64() || data["cost"].is_u64());
    assert_eq!(
        (&data["jobs"]["total"], &data["jobs"]["completed"]),
        (&json!(1), &json!(1))
    );
    assert_eq!(
        (&data["jobs"]["running"], &data["jobs"]["failed"]),
        (&json!(0), &json!(0))
    );

    let res = app
        .post("/api/v1/templates/reload", ADMIN, json!({}))
        .send()
        .await
        .unwrap();
    let reload: Value = res.json().await.unwrap();
    assert_eq!(reload["data"]["count"], 12);
    assert_eq!(reload["data"]["names"].as_array().unwrap().len(), 12);

    let res = app
        .post(
            "/api/v1/sessions",
            ALICE,
            json!({"name": "x", "colour": "red"}),
        )
        .send()
        .await
        .unwrap();
    let problem = assert_problem(res, 422, "validation-error").await;
    assert_eq!(problem["errors"][0]["field"], "colour");
    assert_eq!(problem["errors"][0]["type"], "extra_forbidden");
    assert!(problem["errors"][0]["message"].is_string());
    let res = app
        .post("/api/v1/sessions/h/chat", ALICE, json!({}))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(res, 422, "validation-error").await;
    assert_eq!(problem["errors"][0]["field"], "message");
    assert_eq!(problem["errors"][0]["type"], "missing");

    for path in ["/api/v1/health", "/health"] {
        let health: Value = app
            .client
            .get(app.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["meta"]["version"], "v1");
        assert!(health["meta"]["request_id"].is_string());
        assert_eq!(health["checks"]["database"]["status"], "ok");
    }
}

/// Item 7: a listing names its folder; a folder has no size.
#[actix_web::test]
async fn file_listings_carry_their_path_and_folders_have_no_size() {
    let app = TestApp::spawn_with(Options::fake()).await;
    app.create_session(ALICE, "f").await;
    let path_field = Part {
        name: "path",
        filename: None,
        data: b"src",
    };
    let res = upload(
        &app,
        ALICE,
        "f",
        "",
        &[file_part("main.py", b"print(1)\n"), path_field],
    )
    .await;
    assert_eq!(res.status(), 201);
    let root = get_json(&app, "/api/v1/sessions/f/files", ALICE).await;
    assert_eq!(root["path"], ".");
    let folder = &root["data"][0];
    assert_eq!(
        (&folder["name"], &folder["type"]),
        (&json!("src"), &json!("directory"))
    );
    assert!(folder["size"].is_null() && folder.get("size").is_some());
    let sub = get_json(&app, "/api/v1/sessions/f/files?path=src", ALICE).await;
    assert_eq!(sub["path"], "src");
    assert_eq!(sub["data"][0]["size"], 9);
}

/// Item 8: a shipped template refuses what its rules do not allow instead
/// of holding a sync chat; approvals only when the client asks for them.
#[actix_web::test]
async fn shipped_templates_refuse_instead_of_holding_for_approval() {
    let app = TestApp::spawn_with(Options::default().var("APPROVAL_HOLD_SECONDS", "1")).await;
    for t in std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates"))
        .unwrap()
    {
        let text = std::fs::read_to_string(t.unwrap().path()).unwrap();
        assert!(!text.contains("permission_mode: default"), "{text}");
    }
    app.create_session_with(ALICE, json!({"name": "rev", "template": "code-reviewer"}))
        .await;
    let started = Instant::now();
    let (status, body) = app
        .chat(ALICE, "rev", "[[bash]]touch made.txt[[/bash]]")
        .await;
    assert_eq!(status, 200, "answered, not held: {body}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(!app.workspace("alice", "rev").join("made.txt").exists());
    let pending = get_json(&app, "/api/v1/sessions/rev/approvals", ALICE).await;
    assert_eq!(pending["data"], json!([]));

    // The client asks for approvals itself: then the call waits on one.
    app.create_session_with(
        ALICE,
        json!({"name": "ask", "template": "code-reviewer", "permission_mode": "default"}),
    )
    .await;
    let (status, body) = app
        .chat(ALICE, "ask", "[[bash]]touch made.txt[[/bash]]")
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["data"]["status"], "waiting_for_approval");
}

/// The original's documented flow (its README, docs and showcase), reading
/// only the fields they read.
#[actix_web::test]
async fn the_originals_documented_flow_runs_unchanged() {
    let app = TestApp::spawn().await;
    let hook = Receiver::start(&[200]);
    let v1 = |p: &str| format!("/api/v1{p}");

    let health: Value = app
        .client
        .get(app.url(&v1("/health")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");

    let templates = get_json(&app, &v1("/templates"), ALICE).await;
    for (_, t) in templates["data"].as_object().unwrap() {
        let _ = t["system_prompt"].as_str().unwrap().chars().take(75);
        let _ = t.get("effort");
    }

    let res = app
        .post(&v1("/sessions"), ALICE, json!({"name": "my-project"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let sd = res.json::<Value>().await.unwrap()["data"].clone();
    assert_eq!(sd["name"], "my-project");
    assert!(sd["working_dir"].is_string() && sd["user_id"].is_string());
    assert_eq!(sd["status"], "pending");

    let res = app
        .post(&v1("/sessions/my-project/chat"), ALICE, json!({"message": "create a hello.py that prints Hello World [[write hello.py]]print('Hello World')[[/write]]"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let d = res.json::<Value>().await.unwrap()["data"].clone();
    assert!(d["session_id"].as_str().unwrap().chars().take(16).count() > 0);
    assert!(d["cost"].as_f64().is_some() && d["duration_ms"].as_i64().is_some());
    assert!(d["num_turns"].as_i64().unwrap() >= 1);
    let tools: Vec<&str> = d["tools_used"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["Write"]);
    assert!(d["content"].is_string());

    let res = app
        .post(
            &v1("/sessions/my-project/chat/stream"),
            ALICE,
            json!({"message": "read hello.py [[read hello.py]]"}),
        )
        .send()
        .await
        .unwrap();
    let events = read_sse(res).await;
    let mut seen = Vec::new();
    for (event, _, data) in &events {
        match event.as_str() {
            "assistant" => seen.push(format!("assistant:{}", data["content"].is_string())),
            "tool" => seen.push(format!("tool:{}", data["tool_name"].as_str().unwrap())),
            "done" => seen.push(format!("done:{}", data["content"].is_string())),
            "error" => panic!("{}", data["error"]),
            _ => {}
        }
    }
    assert!(seen.contains(&"tool:Read".to_string()), "{seen:?}");
    assert!(seen.contains(&"assistant:true".to_string()), "{seen:?}");
    assert_eq!(seen.last().unwrap(), "done:true");

    let history = get_json(&app, &v1("/sessions/my-project/history?limit=10"), ALICE).await;
    for msg in history["data"].as_array().unwrap() {
        assert!(["user", "assistant"].contains(&msg["role"].as_str().unwrap()));
        assert!(msg["content"].is_string());
    }
    assert_eq!(history["count"], 4);

    let res = app
        .post(
            &v1("/sessions"),
            ALICE,
            json!({"name": "review-auth", "template": "code-reviewer"}),
        )
        .send()
        .await
        .unwrap();
    let rd = res.json::<Value>().await.unwrap()["data"].clone();
    assert!(rd["system_prompt"].is_null() || rd["system_prompt"].is_string());
    assert_eq!(rd["effort"], "high");
    assert_eq!(rd["status"], "pending");
    let res = app
        .post(
            &v1("/sessions/review-auth/chat"),
            ALICE,
            json!({"message": "Review this code", "effort": "max"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let sessions = get_json(&app, &v1("/sessions?page=1&limit=10"), ALICE).await;
    for s in sessions["data"].as_array().unwrap() {
        assert_eq!(s["status"], "active");
        assert!(s["name"].is_string() && s["total_cost"].as_f64().is_some());
    }

    let res = app
        .post(
            &v1("/sessions/my-project/jobs"),
            ALICE,
            json!({"message": "run the full test suite", "webhook_url": hook.url}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let job = res.json::<Value>().await.unwrap()["data"].clone();
    assert_eq!(job["status"], "queued");
    let id = job["id"].as_str().unwrap().to_owned();
    let poll = || async {
        get_json(&app, &v1(&format!("/sessions/my-project/jobs/{id}")), ALICE).await["data"].clone()
    };
    assert!(eventually(60, || async { poll().await["status"] == "done" }).await);
    let polled = poll().await;
    assert!(polled["result"]["content"].is_string() && polled["cost"].as_f64().is_some());
    assert!(eventually(30, || async { !hook.received().is_empty() }).await);
    let callback = hook.received()[0].json();
    assert_eq!(callback["event"], "job.completed");
    assert_eq!(callback["job"]["id"], id.as_str());
    assert_eq!(callback["job"]["status"], "done");
    assert!(callback["job"]["result"].is_object());
    let jobs = get_json(&app, &v1("/sessions/my-project/jobs"), ALICE).await;
    assert_eq!(jobs["data"][0]["id"], id.as_str());

    let path_field = Part {
        name: "path",
        filename: None,
        data: b"src",
    };
    let res = upload(
        &app,
        ALICE,
        "my-project",
        "",
        &[file_part("local-file.py", b"x = 1\n"), path_field],
    )
    .await;
    assert_eq!(res.status(), 201);
    let files = get_json(&app, &v1("/sessions/my-project/files"), ALICE).await;
    let names: Vec<&str> = files["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"hello.py") && names.contains(&"src"),
        "{names:?}"
    );
    let res = app
        .get(&v1("/sessions/my-project/files/src/local-file.py"), ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"x = 1\n");

    let res = app
        .post(
            &v1("/tokens/count"),
            ALICE,
            json!({"text": "def hello():\n    print('Hello, World!')\n\nhello()"}),
        )
        .send()
        .await
        .unwrap();
    let td = res.json::<Value>().await.unwrap()["data"].clone();
    assert!(
        td["characters"].as_u64().is_some()
            && td["words"].as_u64().is_some()
            && td["estimated_tokens"].as_u64().is_some()
    );

    let usage = get_json(&app, &v1("/usage"), ALICE).await;
    let ud = &usage["data"];
    assert_eq!(ud["sessions"], 2);
    assert!(ud["messages"].as_i64().unwrap() >= 8);
    assert!(ud["cost"].as_f64().is_some() && ud["turns"].as_i64().is_some());
    assert_eq!(
        (&ud["jobs"]["total"], &ud["jobs"]["completed"]),
        (&json!(1), &json!(1))
    );

    let audit = get_json(&app, &v1("/audit?limit=5"), ALICE).await;
    assert_eq!(audit["data"].as_array().unwrap().len(), 5);
    for entry in audit["data"].as_array().unwrap() {
        assert!(
            entry["session_name"].is_string()
                && entry["role"].is_string()
                && entry["content"].is_string(),
            "{entry}"
        );
    }

    for name in ["my-project", "review-auth"] {
        let res = app
            .delete(&v1(&format!("/sessions/{name}")), ALICE)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
    }
}
