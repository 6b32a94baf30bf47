//! A session equipped per request: subagents from the template, the session
//! and the job, and attachments sent with a message.

use serde_json::{json, Value};

use crate::helpers::*;

/// What the model was told of the subagents it may hand work to: the
/// `Agent`/`Task` tool, and the list of agent types the CLI puts in the
/// conversation (a `<system-reminder>`).
fn offered_agents(request: &Value) -> String {
    let tool = request["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| matches!(t["name"].as_str(), Some("Task" | "Agent")))
        .expect("the model is offered the subagent tool");
    format!("{tool}\n{}", request["messages"])
}

/// Asserts that creating the session `body` is a 422 whose detail names
/// `named`.
async fn refused_create(app: &TestApp, body: Value, named: &str) {
    let res = app
        .post("/api/v1/sessions", ALICE, body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422, "{body}");
    let problem: Value = res.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap_or("").contains(named),
        "{named}: {problem}"
    );
}

#[actix_web::test]
async fn subagents_of_template_session_and_job_reach_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("team.yaml"),
        "description: with a subagent\n\
         agents:\n  \
           doc-writer:\n    \
             description: Writes documentation TEMPLATE-AGENT-MARK\n    \
             prompt: You write documentation.\n  \
           tester:\n    \
             description: Old tester description\n    \
             prompt: You test.\n",
    )
    .unwrap();
    let app =
        TestApp::spawn_with(Options::default().var("TEMPLATES_DIR", dir.path().to_string_lossy()))
            .await;
    let created = app
        .create_session_with(
            ALICE,
            json!({
                "name": "team",
                "template": "team",
                "agents": {
                    "security-reviewer": {
                        "description": "Reviews code for security flaws SESSION-AGENT-MARK",
                        "prompt": "You are a security reviewer.",
                        "tools": ["Read", "Grep"],
                        "model": "inherit"
                    },
                    "tester": {"description": "Runs the tests SESSION-TESTER-MARK", "prompt": "You test."}
                }
            }),
        )
        .await;
    // The session shows the merged set: the session's `tester` replaced the
    // template's whole.
    let agents = &created["agents"];
    assert_eq!(
        agents["security-reviewer"]["tools"],
        json!(["Read", "Grep"]),
        "{created}"
    );
    assert!(agents["doc-writer"]["description"]
        .as_str()
        .unwrap()
        .contains("TEMPLATE-AGENT-MARK"));
    assert!(agents["tester"]["description"]
        .as_str()
        .unwrap()
        .contains("SESSION-TESTER-MARK"));
    // The effective configuration: every field resolved, none left null
    // for the server's default to fill in.
    let effective = &created["effective"];
    assert_eq!(
        effective["agents"].as_object().unwrap().len(),
        3,
        "{created}"
    );
    assert!(effective["permission_mode"].is_string(), "{created}");
    assert_eq!(effective["max_turns"], 25, "{created}");
    assert_eq!(
        created["max_turns"],
        Value::Null,
        "the session's own choice"
    );

    app.chat_ok(ALICE, "team", "hello").await;
    let offered = offered_agents(app.mock.requests().last().unwrap());
    for mark in [
        "security-reviewer",
        "SESSION-AGENT-MARK",
        "TEMPLATE-AGENT-MARK",
        "SESSION-TESTER-MARK",
    ] {
        assert!(offered.contains(mark), "{mark} not offered: {offered}");
    }
    assert!(!offered.contains("Old tester description"), "{offered}");

    // A job brings one of its own, for its turn.
    let res = app
        .post(
            "/api/v1/sessions/team/jobs",
            ALICE,
            json!({
                "message": "hello from a job",
                "agents": {"triager": {"description": "Triages issues JOB-AGENT-MARK", "prompt": "Triage."}}
            }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let job: Value = res.json().await.unwrap();
    let id = job["data"]["id"].as_str().unwrap();
    let done = app.wait_job(ALICE, "team", id, 60).await;
    assert_eq!(done["status"], "done", "{done}");
    let offered = offered_agents(app.mock.requests().last().unwrap());
    assert!(offered.contains("JOB-AGENT-MARK"), "{offered}");
    assert!(offered.contains("SESSION-AGENT-MARK"), "{offered}");

    // A session of the same tenant without them is offered none of them.
    app.create_session(ALICE, "plain").await;
    app.chat_ok(ALICE, "plain", "hello").await;
    let offered = offered_agents(app.mock.requests().last().unwrap());
    assert!(!offered.contains("security-reviewer"), "{offered}");
}

#[actix_web::test]
async fn bad_subagent_definitions_are_a_422_naming_the_field() {
    let app = TestApp::spawn_with(Options::fake()).await;
    for (agents, named) in [
        (json!({"-x": {"description": "d", "prompt": "p"}}), "\"-x\""),
        (
            json!({"ok": {"description": " ", "prompt": "p"}}),
            "agents.ok.description",
        ),
        (json!({"ok": {"description": "d"}}), "prompt"),
        (
            json!({"ok": {"description": "d", "prompt": "p", "color": "red"}}),
            "color",
        ),
    ] {
        refused_create(&app, json!({"name": "bad", "agents": agents}), named).await;
    }
    let res = app.get("/api/v1/sessions/bad", ALICE).send().await.unwrap();
    assert_eq!(res.status(), 404, "nothing was made");
}

/// A 1×1 PNG.
const PNG_B64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

/// A PDF of one empty page.
const PDF: &str = "%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n\
2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n\
3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 10 10]>>endobj\n\
trailer<</Root 1 0 R>>\n%%EOF\n";

/// The content blocks of type `kind` the model received in the newest
/// user message of `request`.
fn blocks_of(request: &Value, kind: &str) -> Vec<Value> {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_array())
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == kind)
        .cloned()
        .collect()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[actix_web::test]
async fn images_and_documents_reach_the_model_as_content_blocks() {
    let app = TestApp::spawn_with(Options::default()).await;
    app.create_session(ALICE, "eyes").await;
    // From the request, and a PDF from the workspace.
    app.chat_ok(
        ALICE,
        "eyes",
        &format!("[[write report.pdf]]{PDF}[[/write]]"),
    )
    .await;
    let (status, body) = app
        .chat_value(
            ALICE,
            "eyes",
            json!([
                {"type": "text", "text": "What is in these?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
                {"type": "document", "source": {"type": "file", "path": "report.pdf"}, "title": "Report"},
            ]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["data"]["content"]
            .as_str()
            .unwrap()
            .contains("What is in these?"),
        "{body}"
    );
    let request = app.mock.requests().last().unwrap().clone();
    let images = blocks_of(&request, "image");
    assert_eq!(images.len(), 1, "{request}");
    assert_eq!(images[0]["source"]["media_type"], "image/png");
    assert_eq!(images[0]["source"]["data"], PNG_B64);
    let documents = blocks_of(&request, "document");
    assert_eq!(documents.len(), 1, "{request}");
    assert_eq!(documents[0]["source"]["media_type"], "application/pdf");
    assert_eq!(documents[0]["source"]["data"], b64(PDF.as_bytes()));
    // History keeps the text.
    let history = get_json(&app, "/api/v1/sessions/eyes/history", ALICE).await;
    assert!(history.to_string().contains("What is in these?"));

    // A job keeps its image until it runs.
    let res = app
        .post(
            "/api/v1/sessions/eyes/jobs",
            ALICE,
            json!({"message": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
                {"type": "text", "text": "Describe the image"},
            ]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let job: Value = res.json().await.unwrap();
    assert_eq!(job["data"]["message"], "Describe the image");
    let done = app
        .wait_job(ALICE, "eyes", job["data"]["id"].as_str().unwrap(), 60)
        .await;
    assert_eq!(done["status"], "done", "{done}");
    let request = app.mock.requests().last().unwrap().clone();
    assert_eq!(blocks_of(&request, "image")[0]["source"]["data"], PNG_B64);

    // The OpenAI surface takes data URLs.
    let res = app
        .post(
            "/v1/chat/completions",
            ALICE,
            json!({"user": "eyes", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "And this one?"},
                {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG_B64}")}},
            ]}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let request = app.mock.requests().last().unwrap().clone();
    assert_eq!(blocks_of(&request, "image")[0]["source"]["data"], PNG_B64);
}

#[actix_web::test]
async fn attachments_past_the_limits_are_refused_and_cost_nothing() {
    let app = TestApp::spawn_with(Options::default()).await;
    app.create_session(ALICE, "eyes").await;
    let calls = app.mock.requests().len();
    let refused = |status: u16, body: Value, kind: &str| {
        assert_eq!(
            body["type"],
            format!("urn:claude-code-api:problem:{kind}"),
            "{status} {body}"
        );
    };
    // 30 MB of PNG: larger than the body may be.
    let mut big = b"\x89PNG\r\n\x1a\n".to_vec();
    big.resize(30 * 1024 * 1024, 0);
    let res = app
        .post(
            "/api/v1/sessions/eyes/chat",
            ALICE,
            json!({"message": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64(&big)}}, {"type": "text", "text": "x"}]}),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 413);
    // Read and dropped by the server first: the whole answer arrives.
    refused(413, res.json().await.unwrap(), "payload-too-large");
    // 21 MB: the body may be that large, the attachments may not.
    big.truncate(21 * 1024 * 1024);
    let (status, body) = app
        .chat_value(
            ALICE,
            "eyes",
            json!([{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64(&big)}}]),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("MAX_ATTACHMENTS_MB"),
        "{body}"
    );
    // A PNG named a JPEG, a text file as an image: 415.
    let (status, body) = app
        .chat_value(
            ALICE,
            "eyes",
            json!([{"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": PNG_B64}}]),
        )
        .await;
    assert_eq!(status, 415, "{body}");
    refused(status, body, "unsupported-media-type");
    std::fs::write(app.workspace("alice", "eyes").join("notes.txt"), "plain").unwrap();
    let (status, body) = app
        .chat_value(
            ALICE,
            "eyes",
            json!([{"type": "image", "source": {"type": "file", "path": "notes.txt"}}]),
        )
        .await;
    assert_eq!(status, 415, "{body}");
    // No such file, a path out of the workspace, bad base64.
    for (path, status_wanted) in [
        ("missing.png", 404),
        ("../eyes/notes.txt", 404),
        ("/etc/passwd", 404),
    ] {
        let (status, body) = app
            .chat_value(
                ALICE,
                "eyes",
                json!([{"type": "image", "source": {"type": "file", "path": path}}]),
            )
            .await;
        assert_eq!(status, status_wanted, "{path}: {body}");
    }
    let (status, _) = app
        .chat_value(
            ALICE,
            "eyes",
            json!([{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "not base64!"}}]),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = app
        .chat_value(ALICE, "eyes", json!([{"type": "image", "source": {"type": "url", "url": "http://example.com/a.png"}}]))
        .await;
    assert_eq!(status, 422);
    // Nothing reached the model; nothing was charged.
    assert_eq!(app.mock.requests().len(), calls);
    let usage = get_json(&app, "/api/v1/usage", ALICE).await;
    assert_eq!(usage["data"]["cost_micros"], 0, "{usage}");
}

#[actix_web::test]
async fn a_file_attachment_never_follows_the_agents_links() {
    let app = TestApp::spawn_with(Options::default()).await;
    app.create_session(ALICE, "eyes").await;
    // A secret of the host that would pass as an image.
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.png");
    let mut marker = b"\x89PNG\r\n\x1a\n".to_vec();
    marker.extend_from_slice(b"HOST-SECRET-MARKER-5531");
    std::fs::write(&secret, &marker).unwrap();
    // The agent links to it, and to the folder holding it.
    app.chat_ok(
        ALICE,
        "eyes",
        &format!(
            "[[bash]]ln -s {} leak.png; ln -s {} out[[/bash]]",
            secret.display(),
            outside.path().display()
        ),
    )
    .await;
    let workspace = app.workspace("alice", "eyes");
    assert!(workspace.join("leak.png").is_symlink());
    for path in ["leak.png", "out/secret.png"] {
        let (status, body) = app
            .chat_value(
                ALICE,
                "eyes",
                json!([{"type": "image", "source": {"type": "file", "path": path}}, {"type": "text", "text": "look"}]),
            )
            .await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let seen = serde_json::to_string(&app.mock.all_requests()).unwrap();
    assert!(
        !seen.contains(&b64(&marker)),
        "the secret reached the model"
    );
}

/// A remote MCP server of the official SDK on loopback, answering only
/// `Authorization: <expected>`; killed when dropped.
struct GlossaryServer {
    child: std::process::Child,
    port: u16,
    path: &'static str,
}

impl Drop for GlossaryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl GlossaryServer {
    /// Serves `transport` (`http` or `sse`); `None` (after saying why)
    /// when the `mcp` package cannot be installed.
    async fn start(expected: &str, transport: &str) -> Option<GlossaryServer> {
        let python = match crate::python::python_with(&[crate::python::MCP]) {
            Ok(python) => python,
            Err(why) => {
                eprintln!("SKIPPED: {why}");
                return None;
            }
        };
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/api/py/mcp_lookup_server.py");
        let mut child = std::process::Command::new(python)
            .arg(script)
            .arg(expected)
            .arg(transport)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Its first line is the port it listens on (taken and held by itself).
        let stdout = child.stdout.take().unwrap();
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
                .map(|_| line)
        });
        let line = tokio::time::timeout(std::time::Duration::from_secs(60), line)
            .await
            .expect("the MCP server named its port within 60 s")
            .unwrap()
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the MCP server's first line: {line:?}"));
        let path = if transport == "sse" { "/sse" } else { "/mcp" };
        Some(GlossaryServer { child, port, path })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}{}", self.port, self.path)
    }
}

/// Lets tenant alice's agents (and so the MCP relay) reach loopback.
async fn allow_loopback(app: &TestApp) {
    let res = app
        .client
        .put(app.url("/api/v1/admin/tenants/alice/egress"))
        .header("X-API-Key", ADMIN)
        .json(&json!({"allowed_hosts": ["127.0.0.1"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[actix_web::test]
async fn a_remote_mcp_server_is_reached_through_the_server_with_a_secret_the_agent_never_sees() {
    const TOKEN: &str = "mcp-token-MARK-4417";
    let Some(glossary) = GlossaryServer::start(&format!("Bearer {TOKEN}"), "http").await else {
        return;
    };
    let app = TestApp::spawn_with(Options::default().var("MCP_ALLOWED_HOSTS", "127.0.0.1")).await;
    allow_loopback(&app).await;
    let res = crate::secrets::put(&app, ALICE, "GLOSSARY_TOKEN", &format!("Bearer {TOKEN}")).await;
    assert!(res.status().is_success(), "{}", res.status());
    let created = app
        .create_session_with(
            ALICE,
            json!({
                "name": "glossary",
                "permission_mode": "bypassPermissions",
                "mcp_servers": {
                    "glossary": {"type": "http", "url": glossary.url(),
                                 "headers": {"Authorization": {"secret": "GLOSSARY_TOKEN"}}},
                    // Nothing listens there: a status, not a failed session.
                    "down": {"type": "http", "url": "http://127.0.0.1:9/mcp"},
                }
            }),
        )
        .await;
    assert_eq!(
        created["mcp_servers"]["glossary"]["headers"]["Authorization"],
        json!({"secret": "GLOSSARY_TOKEN"}),
        "{created}"
    );
    assert_eq!(
        created["effective"]["mcp_servers"]["glossary"]["type"],
        "http"
    );
    // The model calls the server's tool; the answer comes back through the server.
    let answer = app
        .chat_ok(
            ALICE,
            "glossary",
            "[[tool mcp__glossary__lookup]]{\"word\": \"zebra\"}[[/tool]]",
        )
        .await;
    let status = get_json(&app, "/api/v1/sessions/glossary/mcp", ALICE).await;
    assert!(
        answer["content"]
            .as_str()
            .unwrap()
            .contains("glossary entry for zebra: LOOKUP-ANSWER-7731"),
        "{answer}\nMCP status: {status}"
    );
    let servers = status["data"].as_array().unwrap();
    let of = |name: &str| servers.iter().find(|s| s["name"] == name).unwrap().clone();
    assert_eq!(of("glossary")["status"], "connected", "{status}");
    assert_eq!(of("glossary")["type"], "http");
    assert_eq!(of("glossary")["tools"], json!(["mcp__glossary__lookup"]));
    assert_eq!(of("down")["status"], "failed", "{status}");

    // From inside the agent: the token is nowhere it can look.
    app.chat_ok(
        ALICE,
        "glossary",
        "[[bash]]env > seen.txt; cat /proc/[0-9]*/cmdline /proc/[0-9]*/environ >> seen.txt 2>/dev/null; \
         grep -rs mcp-token-MARK \"$CLAUDE_CONFIG_DIR\" /tmp . >> seen.txt; echo done >> seen.txt[[/bash]]",
    )
    .await;
    let seen = std::fs::read(app.workspace("alice", "glossary").join("seen.txt")).unwrap();
    let seen = String::from_utf8_lossy(&seen);
    assert!(seen.contains("done"), "the probe ran");
    assert!(
        seen.contains("sdk"),
        "the CLI's MCP config was read: {seen}"
    );
    assert!(!seen.contains(TOKEN), "the token reached the sandbox");
    let requests = serde_json::to_string(&app.mock.all_requests()).unwrap();
    assert!(!requests.contains(TOKEN), "the token reached the model");
    let listed = get_json(&app, "/api/v1/sessions/glossary", ALICE).await;
    assert!(!listed.to_string().contains(TOKEN));

    // Another tenant's session cannot name it, nor the secret.
    let res = app
        .get("/api/v1/sessions/glossary/mcp", BOB)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = app
        .post(
            "/api/v1/sessions",
            BOB,
            json!({"name": "b", "mcp_servers": {"g": {"type": "http", "url": glossary.url(),
                   "headers": {"Authorization": {"secret": "GLOSSARY_TOKEN"}}}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422, "bob has no such secret");
}

#[actix_web::test]
async fn an_sse_mcp_server_is_relayed_only_where_the_egress_allowlist_lets_the_agent_go() {
    const TOKEN: &str = "sse-token-MARK-2290";
    let Some(glossary) = GlossaryServer::start(&format!("Bearer {TOKEN}"), "sse").await else {
        return;
    };
    let app = TestApp::spawn_with(Options::default().var("MCP_ALLOWED_HOSTS", "127.0.0.1")).await;
    let res = crate::secrets::put(&app, ALICE, "GLOSSARY_TOKEN", &format!("Bearer {TOKEN}")).await;
    assert!(res.status().is_success(), "{}", res.status());
    let body = json!({
        "name": "legacy",
        "permission_mode": "bypassPermissions",
        "mcp_servers": {"glossary": {"type": "sse", "url": glossary.url(),
                        "headers": {"Authorization": {"secret": "GLOSSARY_TOKEN"}}}},
    });
    // The operator allows the host, but the tenant's allowlist does not list it.
    refused_create(&app, body.clone(), "egress allowlist").await;
    allow_loopback(&app).await;
    app.create_session_with(ALICE, body).await;
    let answer = app
        .chat_ok(
            ALICE,
            "legacy",
            "[[tool mcp__glossary__lookup]]{\"word\": \"yak\"}[[/tool]]",
        )
        .await;
    let status = get_json(&app, "/api/v1/sessions/legacy/mcp", ALICE).await;
    assert!(
        answer["content"]
            .as_str()
            .unwrap()
            .contains("glossary entry for yak: LOOKUP-ANSWER-7731"),
        "{answer}\nMCP status: {status}"
    );
    assert_eq!(status["data"][0]["type"], "sse", "{status}");
    assert_eq!(status["data"][0]["status"], "connected", "{status}");
    let requests = serde_json::to_string(&app.mock.all_requests()).unwrap();
    assert!(!requests.contains(TOKEN), "the token reached the model");

    // Taken off the allowlist, the server is out of reach at the next message.
    let res = app
        .client
        .put(app.url("/api/v1/admin/tenants/alice/egress"))
        .header("X-API-Key", ADMIN)
        .json(&json!({"allowed_hosts": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let answer = app
        .chat_ok(
            ALICE,
            "legacy",
            "[[tool mcp__glossary__lookup]]{\"word\": \"gnu\"}[[/tool]]",
        )
        .await;
    assert!(
        !answer["content"]
            .as_str()
            .unwrap()
            .contains("glossary entry for gnu"),
        "{answer}"
    );
}

#[actix_web::test]
async fn the_workspaces_mcp_json_is_used_only_when_strict_mcp_config_is_false() {
    let app = TestApp::spawn_with(Options::default()).await;
    app.create_session_with(
        ALICE,
        json!({"name": "strict", "permission_mode": "bypassPermissions"}),
    )
    .await;
    // The agent writes a stdio server and a `.mcp.json` naming it.
    app.chat_ok(
        ALICE,
        "strict",
        &format!(
            "[[write probe.sh]]{}[[/write]]",
            crate::templates::MCP_PROBE
        ),
    )
    .await;
    app.chat_ok(
        ALICE,
        "strict",
        r#"[[write .mcp.json]]{"mcpServers": {"proj": {"command": "sh", "args": ["probe.sh"]}}}[[/write]]"#,
    )
    .await;
    let offered = |app: &TestApp| -> Vec<String> {
        app.mock.requests().last().unwrap()["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["name"].as_str().map(str::to_owned))
            .collect()
    };
    // A new process (a job with its own model) still ignores the file.
    let run_job = |strict: Option<bool>| {
        let mut body = json!({"message": "which tools?", "model": "claude-strict-test"});
        if let Some(strict) = strict {
            body["strict_mcp_config"] = json!(strict);
        }
        app.post("/api/v1/sessions/strict/jobs", ALICE, body).send()
    };
    for strict in [None, Some(false)] {
        let res = run_job(strict).await.unwrap();
        assert_eq!(res.status(), 202);
        let job: Value = res.json().await.unwrap();
        let done = app
            .wait_job(ALICE, "strict", job["data"]["id"].as_str().unwrap(), 60)
            .await;
        assert_eq!(done["status"], "done", "{done}");
        let tools = offered(&app);
        assert_eq!(
            tools.contains(&"mcp__proj__ping".to_owned()),
            strict == Some(false),
            "strict_mcp_config {strict:?}: {tools:?}"
        );
    }
    let session = get_json(&app, "/api/v1/sessions/strict", ALICE).await;
    assert_eq!(session["data"]["effective"]["strict_mcp_config"], true);
    let loose = app
        .create_session_with(ALICE, json!({"name": "loose", "strict_mcp_config": false}))
        .await;
    assert_eq!(loose["effective"]["strict_mcp_config"], false, "{loose}");
}

#[actix_web::test]
async fn mcp_servers_are_checked_and_a_stdio_server_runs_in_the_sandbox() {
    let app = TestApp::spawn_with(Options::default()).await;
    // Internal addresses need the operator; the form is checked.
    for (servers, named) in [
        (
            json!({"g": {"type": "http", "url": "http://127.0.0.1:9/mcp"}}),
            "MCP_ALLOWED_HOSTS",
        ),
        (
            json!({"g": {"type": "http", "url": "http://169.254.169.254/"}}),
            "MCP_ALLOWED_HOSTS",
        ),
        (
            json!({"g": {"type": "ws", "url": "wss://example.com/mcp"}}),
            "\"sse\"",
        ),
        (
            json!({"g": {"type": "http", "url": "https://example.com/mcp", "headers": {"Authorization": {"secret": "NOPE"}}}}),
            "NOPE",
        ),
        (json!({"g": {"command": "x", "cwd": "/"}}), "cwd"),
    ] {
        refused_create(&app, json!({"name": "m", "mcp_servers": servers}), named).await;
    }
    // A stdio server from the workspace, for one job.
    app.create_session_with(
        ALICE,
        json!({"name": "m", "permission_mode": "bypassPermissions"}),
    )
    .await;
    app.chat_ok(
        ALICE,
        "m",
        &format!(
            "[[write probe.sh]]{}[[/write]]",
            crate::templates::MCP_PROBE
        ),
    )
    .await;
    let res = app
        .post(
            "/api/v1/sessions/m/jobs",
            ALICE,
            json!({"message": "hello", "mcp_servers": {"probe": {"command": "sh", "args": ["probe.sh"]}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let job: Value = res.json().await.unwrap();
    let done = app
        .wait_job(ALICE, "m", job["data"]["id"].as_str().unwrap(), 60)
        .await;
    assert_eq!(done["status"], "done", "{done}");
    let tools: Vec<String> = app.mock.requests().last().unwrap()["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    assert!(tools.contains(&"mcp__probe__ping".to_owned()), "{tools:?}");
}

#[actix_web::test]
async fn a_message_may_be_a_form_with_files() {
    use crate::files::{multipart, multipart_type, Part};
    use base64::Engine;
    let app = TestApp::spawn_with(Options::default()).await;
    app.create_session(ALICE, "form").await;
    let png = base64::engine::general_purpose::STANDARD
        .decode(PNG_B64)
        .unwrap();
    let form = |text: &str, files: &[(&str, Vec<u8>)]| {
        let mut parts = vec![Part {
            name: "message",
            filename: None,
            data: text.as_bytes(),
        }];
        for (name, bytes) in files {
            parts.push(Part {
                name: "files",
                filename: Some(name),
                data: bytes,
            });
        }
        multipart(&parts)
    };
    let send = |path: &str, body: Vec<u8>| {
        app.client
            .post(app.url(path))
            .header("X-API-Key", ALICE)
            .header("content-type", multipart_type())
            .body(body)
            .send()
    };
    let res = send(
        "/api/v1/sessions/form/chat",
        form(
            "What is in the picture and the report?",
            &[
                ("pixel.png", png.clone()),
                ("report.pdf", PDF.as_bytes().to_vec()),
            ],
        ),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let request = app.mock.requests().last().unwrap().clone();
    assert_eq!(blocks_of(&request, "image")[0]["source"]["data"], PNG_B64);
    assert_eq!(
        blocks_of(&request, "document")[0]["source"]["data"],
        b64(PDF.as_bytes())
    );
    assert!(request
        .to_string()
        .contains("What is in the picture and the report?"));
    // A job too.
    let res = send(
        "/api/v1/sessions/form/jobs",
        form("Describe it", &[("pixel.png", png.clone())]),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 202);
    let job: Value = res.json().await.unwrap();
    let done = app
        .wait_job(ALICE, "form", job["data"]["id"].as_str().unwrap(), 60)
        .await;
    assert_eq!(done["status"], "done", "{done}");
    let kept = app.query_i64(&format!(
        "SELECT COUNT(*) AS n FROM jobs WHERE id = '{}' AND attachments IS NOT NULL",
        done["id"].as_str().unwrap()
    ));
    assert_eq!(kept, 0, "an ended job keeps no copy of its attachments");
    // A file that is neither an image nor a PDF; a part of another name.
    let res = send(
        "/api/v1/sessions/form/chat",
        form("look", &[("notes.txt", b"plain text".to_vec())]),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 415);
    let res = send(
        "/api/v1/sessions/form/chat",
        multipart(&[Part {
            name: "model",
            filename: None,
            data: b"x",
        }]),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 422);
}

#[actix_web::test]
async fn tenant_defaults_lie_under_the_template_and_the_session() {
    let app = TestApp::spawn_with(Options::default()).await;
    let put = |key: &str, tenant: &str, body: Value| {
        app.client
            .put(app.url(&format!("/api/v1/admin/tenants/{tenant}/defaults")))
            .header("X-API-Key", key)
            .json(&body)
            .send()
    };
    let defaults = json!({
        "model": "team-model",
        "max_turns": 7,
        "append_system_prompt": "TEAM-PROMPT-MARK",
        "agents": {"team-helper": {"description": "The team's helper TEAM-AGENT-MARK", "prompt": "Help."}},
    });
    assert_eq!(
        put(ALICE, "alice", defaults.clone())
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        put(ADMIN, "nobody-here", defaults.clone())
            .await
            .unwrap()
            .status(),
        404
    );
    let res = put(ADMIN, "alice", json!({"template": "x"})).await.unwrap();
    assert_eq!(res.status(), 422, "a template is not a default");
    let res = put(ADMIN, "alice", defaults.clone()).await.unwrap();
    assert_eq!(res.status(), 200);
    let stored = get_json(&app, "/api/v1/admin/tenants/alice/defaults", ADMIN).await;
    assert_eq!(stored["data"], defaults);

    // A new session of the tenant starts from them.
    let created = app.create_session(ALICE, "d").await;
    assert_eq!(created["effective"]["model"], "team-model", "{created}");
    assert_eq!(created["effective"]["max_turns"], 7);
    app.chat_ok(ALICE, "d", "hello").await;
    let request = app.mock.requests().last().unwrap().clone();
    assert_eq!(request["model"], "team-model");
    assert!(request["system"].to_string().contains("TEAM-PROMPT-MARK"));
    assert!(request.to_string().contains("TEAM-AGENT-MARK"));
    // The session's own choice wins; another tenant has none of them.
    let own = app
        .create_session_with(ALICE, json!({"name": "own", "model": "own-model"}))
        .await;
    assert_eq!(own["effective"]["model"], "own-model");
    assert_eq!(own["effective"]["max_turns"], 7);
    let bobs = app.create_session(BOB, "b").await;
    assert_ne!(bobs["effective"]["model"], "team-model");
    assert_ne!(bobs["effective"]["max_turns"], 7);
}
