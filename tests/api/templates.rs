//! Agent templates: the shipped set, reload, and templates that really shape
//! what the model receives (its system prompt and the tools it is offered)
//! and the CLI's environment.

use serde_json::{json, Value};

use crate::helpers::*;

fn tools_of(request: &Value) -> Vec<String> {
    request["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap_or("").to_string())
        .collect()
}

#[actix_web::test]
async fn the_shipped_templates_are_listed_and_readable() {
    let app = TestApp::spawn_with(Options::fake()).await;
    let res = app.get("/api/v1/templates", ALICE).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    // A map by name, as the original answers; each entry names itself too.
    let map = body["data"].as_object().unwrap();
    let names: Vec<&str> = map.keys().map(String::as_str).collect();
    assert!(map.iter().all(|(name, t)| t["name"] == name.as_str()));
    assert_eq!(
        names,
        [
            "api-designer",
            "architect",
            "code-reviewer",
            "data-engineer",
            "debug",
            "devops",
            "docs",
            "frontend",
            "performance",
            "refactor",
            "security",
            "test-writer"
        ]
    );
    assert!(body.get("pagination").is_none(), "{body}");

    let res = app
        .get("/api/v1/templates/code-reviewer", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let t: Value = res.json().await.unwrap();
    let t = &t["data"];
    assert_eq!(t["name"], "code-reviewer");
    assert!(t["description"].as_str().unwrap().len() > 10);
    assert!(t["system_prompt"]
        .as_str()
        .unwrap()
        .contains("code reviewer"));
    assert_eq!(t["permission_mode"], "dontAsk");
    let denied = t["disallowed_tools"].as_array().unwrap();
    assert!(denied.contains(&json!("Write")) && denied.contains(&json!("Edit")));

    let res = app
        .get("/api/v1/templates/nope", ALICE)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
    // Templates need a key like everything else.
    for path in ["/api/v1/templates", "/api/v1/templates/docs"] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_problem(res, 401, "unauthorized").await;
    }
    let res = app
        .client
        .post(app.url("/api/v1/templates/reload"))
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "unauthorized").await;
}

#[actix_web::test]
async fn reload_rereads_the_folder_and_a_broken_file_keeps_the_old_set() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("one.yaml"), "description: first\n").unwrap();
    let app =
        TestApp::spawn_with(Options::fake().var("TEMPLATES_DIR", dir.path().to_string_lossy()))
            .await;
    let names = |body: Value| -> Vec<String> {
        body["data"].as_object().unwrap().keys().cloned().collect()
    };
    let list = || async {
        app.get("/api/v1/templates", ALICE)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    assert_eq!(names(list().await), ["one"]);

    std::fs::write(
        dir.path().join("two.yaml"),
        "description: second\nmax_turnz: 3\n",
    )
    .unwrap();
    let res = app
        .post("/api/v1/templates/reload", ALICE, json!({}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "forbidden").await;
    let res = app
        .post("/api/v1/templates/reload", ADMIN, json!({}))
        .send()
        .await
        .unwrap();
    let body = assert_problem(res, 422, "validation-error").await;
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("two.yaml"), "names the file: {detail}");
    assert!(detail.contains("max_turnz"), "names the field: {detail}");
    assert_eq!(names(list().await), ["one"], "the old set stays");

    std::fs::write(
        dir.path().join("two.yaml"),
        "description: second\nmax_turns: 3\n",
    )
    .unwrap();
    let res = app
        .client
        .post(app.url("/api/v1/templates/reload"))
        .header("X-API-Key", ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"]["loaded"], 2);
    assert_eq!(body["data"]["count"], 2);
    assert_eq!(body["data"]["names"], json!(["one", "two"]));
    assert_eq!(names(list().await), ["one", "two"]);
}

#[actix_web::test]
async fn a_bad_template_stops_startup_naming_the_file() {
    let root = tempfile::tempdir().unwrap();
    let templates = root.path().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(templates.join("good.yaml"), "description: ok\n").unwrap();
    std::fs::write(
        templates.join("broken.yaml"),
        "description: x\npermission_mode: everything\n",
    )
    .unwrap();
    let vars: std::collections::BTreeMap<String, String> = [
        ("API_PORT", "0".to_string()),
        ("API_KEYS", ALICE.to_string()),
        (
            "APPROVED_DIRECTORY",
            root.path().join("ws").to_string_lossy().into_owned(),
        ),
        (
            "DATA_DIR",
            root.path().join("data").to_string_lossy().into_owned(),
        ),
        ("TEMPLATES_DIR", templates.to_string_lossy().into_owned()),
        (
            "CLAUDE_CLI_PATH",
            claude_code_api_testkit::fake_cli_path()
                .to_string_lossy()
                .into_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let settings = claude_code_api_core::config::Settings::from_vars(&vars).unwrap();
    let error = match claude_code_api::app::Application::build(settings).await {
        Ok(_) => panic!("a broken template must stop startup"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("broken.yaml"), "{error}");
    assert!(error.contains("everything"), "{error}");
}

#[actix_web::test]
async fn a_template_shapes_the_prompt_and_tools_the_model_receives() {
    let app = TestApp::spawn().await;
    let data = app
        .create_session_with(ALICE, json!({"name": "rev", "template": "code-reviewer"}))
        .await;
    assert_eq!(data["template"], "code-reviewer");
    assert_eq!(data["permission_mode"], "dontAsk");
    assert_eq!(data["max_turns"], 20);
    assert_eq!(data["effort"], "high");
    app.chat_ok(ALICE, "rev", "please review").await;
    let request = app.mock.requests().last().unwrap().clone();
    let system = request["system"].to_string();
    assert!(
        system.contains("You are a code reviewer"),
        "the template prompt reached the model: {system}"
    );
    assert!(
        system.contains("You are Claude Code"),
        "appended to Claude Code's own prompt, not replacing it"
    );
    let tools = tools_of(&request);
    assert!(!tools.is_empty(), "{tools:?}");
    for forbidden in ["Write", "Edit", "NotebookEdit", "WebFetch", "WebSearch"] {
        assert!(
            !tools.contains(&forbidden.to_string()),
            "{forbidden} offered: {tools:?}"
        );
    }
    let allowed = ["Read", "Glob", "Grep", "Bash"];
    assert!(
        tools.iter().all(|t| allowed.contains(&t.as_str())),
        "only the template's tools: {tools:?}"
    );
    assert!(tools.contains(&"Read".to_string()), "{tools:?}");

    // A docs writer is not offered Bash.
    app.create_session_with(ALICE, json!({"name": "doc", "template": "docs"}))
        .await;
    app.chat_ok(ALICE, "doc", "write docs").await;
    let tools = tools_of(app.mock.requests().last().unwrap());
    assert!(!tools.contains(&"Bash".to_string()), "{tools:?}");
    assert!(tools.contains(&"Write".to_string()), "{tools:?}");
}

#[actix_web::test]
async fn explicit_request_fields_override_the_template() {
    let app = TestApp::spawn().await;
    let data = app
        .create_session_with(
            ALICE,
            json!({
                "name": "open",
                "template": "code-reviewer",
                "allowed_tools": [],
                "disallowed_tools": [],
                "permission_mode": "bypassPermissions",
                "max_turns": 4,
            }),
        )
        .await;
    assert_eq!(data["allowed_tools"], json!([]));
    assert_eq!(data["max_turns"], 4);
    assert_eq!(
        data["effort"], "high",
        "unset fields still come from the template"
    );
    app.chat_ok(ALICE, "open", "hello").await;
    let request = app.mock.requests().last().unwrap().clone();
    let tools = tools_of(&request);
    assert!(
        tools.contains(&"Write".to_string()) && tools.contains(&"Edit".to_string()),
        "explicit empty lists lifted the template's restrictions: {tools:?}"
    );
    assert!(request["system"]
        .to_string()
        .contains("You are a code reviewer"));

    // A template that replaces the system prompt, and a request that
    // replaces the template's.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("terse.yaml"),
        "description: terse\nsystem_prompt: TERSE-ONLY-PROMPT\nreplace_system_prompt: true\n",
    )
    .unwrap();
    drop(app);
    let app =
        TestApp::spawn_with(Options::default().var("TEMPLATES_DIR", dir.path().to_string_lossy()))
            .await;
    app.create_session_with(ALICE, json!({"name": "t", "template": "terse"}))
        .await;
    app.chat_ok(ALICE, "t", "hi").await;
    let system = app.mock.requests().last().unwrap()["system"].to_string();
    assert!(system.contains("TERSE-ONLY-PROMPT"), "{system}");
    assert!(
        !system.contains("You are an interactive agent"),
        "Claude Code's own prompt was replaced: {system}"
    );
    let res = app
        .post(
            "/api/v1/sessions",
            ALICE,
            json!({"name": "u", "template": "missing"}),
        )
        .send()
        .await
        .unwrap();
    // Named in the body or the path, a template that is not there is a 404.
    let body = assert_problem(res, 404, "not-found").await;
    assert!(body["detail"].as_str().unwrap().contains("missing"));
}

/// A minimal MCP server over stdio offering one tool, `ping`.
pub(crate) const MCP_PROBE: &str = r#"#!/bin/sh
while IFS= read -r line; do
  id=$(printf '%s' "$line" | sed -n 's/.*"id":\([0-9][0-9]*\).*/\1/p')
  ver=$(printf '%s' "$line" | sed -n 's/.*"protocolVersion":"\([^"]*\)".*/\1/p')
  case "$line" in
    *'"method":"initialize"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"%s","capabilities":{"tools":{}},"serverInfo":{"name":"probe","version":"1"}}}\n' "$id" "$ver";;
    *'"method":"tools/list"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"ping","description":"Answers pong","inputSchema":{"type":"object","properties":{}}}]}}\n' "$id";;
    *) if [ -n "$id" ]; then printf '{"jsonrpc":"2.0","id":%s,"result":{}}\n' "$id"; fi;;
  esac
done
"#;

#[actix_web::test]
async fn template_env_and_mcp_servers_reach_only_that_sessions_cli() {
    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("probe.sh");
    std::fs::write(&probe, MCP_PROBE).unwrap();
    std::fs::set_permissions(&probe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(
        dir.path().join("envy.yaml"),
        format!(
            "description: with env\n\
             permission_mode: bypassPermissions\n\
             env:\n  TEMPLATE_MARK: from-the-template\n\
             mcp_servers:\n  probe:\n    command: {}\n    env:\n      PROBE_TOKEN: probe-secret\n",
            probe.display()
        ),
    )
    .unwrap();
    // The agent sees programs outside the system only in CLAUDE_ADD_DIRS
    // (read-only), and runs as another user: the folder must be readable.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let app = TestApp::spawn_with(
        Options::default()
            .var("TEMPLATES_DIR", dir.path().to_string_lossy())
            .var("CLAUDE_ADD_DIRS", dir.path().to_string_lossy()),
    )
    .await;
    app.create_session_with(ALICE, json!({"name": "e", "template": "envy"}))
        .await;
    app.create_session(ALICE, "plain").await;
    let mut tools = Vec::new();
    for session in ["e", "plain"] {
        app.chat_ok(ALICE, session, "[[bash]]env > env.txt[[/bash]]")
            .await;
        tools.push(tools_of(app.mock.requests().last().unwrap()));
    }
    let env = std::fs::read_to_string(app.workspace("alice", "e").join("env.txt")).unwrap();
    assert!(env.contains("TEMPLATE_MARK=from-the-template"), "{env}");
    for secret in ["WEBHOOK_SECRET", "DATABASE_URL", "API_KEYS", "alice-key"] {
        assert!(!env.contains(secret), "{secret} leaked");
    }
    let plain = std::fs::read_to_string(app.workspace("alice", "plain").join("env.txt")).unwrap();
    assert!(
        !plain.contains("TEMPLATE_MARK"),
        "only that session's process"
    );
    // The CLI was started with the template's MCP server: the model is
    // offered its tool, in that session only.
    assert!(
        tools[0].contains(&"mcp__probe__ping".to_string()),
        "{:?}",
        tools[0]
    );
    assert!(
        !tools[1].iter().any(|t| t.starts_with("mcp__")),
        "{:?}",
        tools[1]
    );
    let data: Value = app
        .get("/api/v1/sessions/e", ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        data["data"]["mcp_servers"]["probe"]["command"],
        probe.to_string_lossy().as_ref()
    );
    // The credentials reached the CLI above; no client reads them back,
    // except admins from the template itself.
    assert_eq!(data["data"]["env"]["TEMPLATE_MARK"], "[redacted]");
    assert_eq!(
        data["data"]["mcp_servers"]["probe"]["env"]["PROBE_TOKEN"],
        "[redacted]"
    );
    for (key, shown) in [
        (ALICE, "[redacted]"),
        (BOB, "[redacted]"),
        (ADMIN, "from-the-template"),
    ] {
        let one: Value = app
            .get("/api/v1/templates/envy", key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(one["data"]["env"]["TEMPLATE_MARK"], shown, "{one}");
        let list = app
            .get("/api/v1/templates", key)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(list.contains("probe-secret"), key == ADMIN, "{list}");
        assert_eq!(list.contains("from-the-template"), key == ADMIN);
    }
}

/// The built binary, started where there is no `templates/` folder (as a
/// packaged or copied binary would be), with `extra` variables: its
/// stderr, and the port once it listens (`None` if it exits first).
fn start_binary(
    cwd: &std::path::Path,
    extra: &[(&str, String)],
) -> (std::process::Child, Vec<String>, Option<u16>) {
    use std::io::BufRead;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_claude-code-api"));
    cmd.arg("serve")
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("API_PORT", "0")
        .env("API_KEYS", ALICE)
        .env("CLAUDE_CLI_PATH", claude_code_api_testkit::fake_cli_path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start the server binary");
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    // Drained to the end, so the server never writes into a closed pipe.
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    while let Ok(line) = lines.recv_timeout(std::time::Duration::from_secs(60)) {
        log.push(line.clone());
        if let Some(port) = line.split("port=").nth(1) {
            if line.contains("listening") {
                return (child, log, port.trim().parse().ok());
            }
        }
    }
    (child, log, None)
}

#[actix_web::test]
async fn a_binary_away_from_the_source_has_the_built_in_templates() {
    let cwd = tempfile::tempdir().unwrap();
    let (mut child, log, port) = start_binary(cwd.path(), &[]);
    let port = port.unwrap_or_else(|| panic!("the server did not start:\n{}", log.join("\n")));
    let line = log
        .iter()
        .find(|l| l.contains("agent templates loaded"))
        .expect("the log says where templates came from");
    assert!(line.contains("source=built-in"), "{line}");
    assert!(line.contains("count=12"), "{line}");
    let res = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{port}/api/v1/templates/code-reviewer"
        ))
        .header("X-API-Key", ALICE)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200);
}

#[actix_web::test]
async fn an_empty_or_missing_templates_folder_that_was_asked_for_stops_startup() {
    let cwd = tempfile::tempdir().unwrap();
    let empty = cwd.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for (dir, says) in [
        (empty.clone(), "holds no"),
        (cwd.path().join("missing"), "does not exist"),
    ] {
        let dir = dir.to_string_lossy().into_owned();
        let (mut child, log, port) = start_binary(cwd.path(), &[("TEMPLATES_DIR", dir.clone())]);
        let status = child.wait().unwrap();
        assert!(port.is_none() && !status.success(), "{}", log.join("\n"));
        let log = log.join("\n");
        assert!(log.contains(&dir) && log.contains(says), "{log}");
    }
    // A `templates/` folder in the working directory is used instead of the
    // built-in set, and the log names it.
    let local = cwd.path().join("templates");
    std::fs::create_dir(&local).unwrap();
    std::fs::write(local.join("mine.yaml"), "description: mine\n").unwrap();
    let (mut child, log, port) = start_binary(cwd.path(), &[]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(port.is_some(), "{}", log.join("\n"));
    let line = log
        .iter()
        .find(|l| l.contains("agent templates loaded"))
        .unwrap();
    assert!(
        line.contains(&local.display().to_string()) && line.contains("count=1"),
        "{line}"
    );
}
