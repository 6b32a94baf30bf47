//! The agent is untrusted code: what its Bash tool can reach, tried from
//! inside the agent (the real CLI running the mock model's commands) with the
//! sandbox as the defaults give it (tests run as root, as CI does).

use std::os::unix::fs::MetadataExt as _;
use std::process::Command;

use serde_json::json;

use crate::files::{file_part, upload};
use crate::helpers::*;

/// `name=value` lines printed by a probe, as a lookup.
fn field<'a>(output: &'a str, name: &str) -> Option<&'a str> {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{name}=")))
}

fn sleepers(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                .is_ok_and(|c| c.starts_with("sleep ") && c.contains(marker))
        })
        .count()
}

#[actix_web::test]
async fn health_names_the_sandbox_and_its_limits() {
    let app = TestApp::spawn().await;
    let health = app.health().await;
    let sandbox = &health["sandbox"];
    assert_eq!(sandbox["mode"], "bwrap", "{health}");
    assert_eq!(sandbox["seccomp"], true, "{sandbox}");
    if !server_is_root() {
        // The server's own user in a user namespace; limits need a cgroup
        // it may write, which an unprivileged user seldom has.
        assert!(sandbox["agent_user"].is_null(), "{sandbox}");
        return;
    }
    // One agent user per tenant, from AGENT_UID / AGENT_GID up.
    assert_eq!(sandbox["agent_user"], "10900-20899:10900-20899");
    assert_eq!(sandbox["limits"]["memory_max_mb"], 2048);
    assert_eq!(sandbox["limits"]["pids_max"], 512);
    assert!(sandbox["cgroup"].is_string(), "{sandbox}");
}

#[actix_web::test]
async fn another_tenants_agent_cannot_reach_the_server_its_data_or_other_workspaces() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "a").await;
    app.chat_ok(
        ALICE,
        "a",
        "[[write secret.txt]]ALICE-PRIVATE-NOTE[[/write]]",
    )
    .await;
    let alice_ws = app.workspace("alice", "a");
    assert!(alice_ws.join("secret.txt").is_file());
    let data = app.root.path().join("data");
    let db = app.db.url.clone();

    app.create_session(BOB, "b").await;
    // The secret is written in two quoted halves, so bob's own transcript of
    // this prompt does not hold it.
    let probe = format!(
        "[[bash]]echo uid=$(id -u); \
         for p in {alice} {workspaces}/alice {db}; do test -e $p && echo seen=$p; done; \
         echo data=$(ls -A {data}); echo tenants=$(ls -A {data}/cli-config); \
         echo found=$(grep -rls 'ALICE-PRIVATE''-NOTE' / --exclude-dir=proc --exclude-dir=sys --exclude-dir=usr --exclude-dir=dev 2>/dev/null | head -3 | tr '\\n' ' '); \
         echo procs=$(ls /proc | grep -c '^[0-9]'); \
         echo server=$(cat /proc/{server}/environ 2>/dev/null | wc -c); \
         echo done[[/bash]]",
        data = data.display(),
        alice = alice_ws.display(),
        workspaces = app.workspaces().display(),
        db = db,
        server = std::process::id(),
    );
    let answer = app.chat_ok(BOB, "b", &probe).await;
    let out = tool_output(&answer);
    assert!(out.contains("done"), "{out}");
    let bob_uid: u32 = field(&out, "uid").unwrap().parse().unwrap();
    let alice_uid = std::fs::metadata(alice_ws.join("secret.txt"))
        .unwrap()
        .uid();
    if server_is_root() {
        // Each tenant's agent is a user of its own.
        assert!((10_900..20_900).contains(&bob_uid), "{out}");
        assert!((10_900..20_900).contains(&alice_uid));
        assert_ne!(bob_uid, alice_uid, "tenants share no agent user");
    } else {
        // The server's user, in a user namespace of each process's own.
        assert_eq!(bob_uid, server_uid(), "{out}");
    }
    assert!(!out.contains("seen="), "{out}");
    // Of the data folder, only the way to bob's own CLI state is there.
    assert_eq!(field(&out, "data"), Some("cli-config"), "{out}");
    assert_eq!(field(&out, "tenants"), Some("bob"), "{out}");
    assert_eq!(field(&out, "found").map(str::trim), Some(""), "{out}");
    // The server's process (this test's) and its environment are not there.
    assert_eq!(field(&out, "server"), Some("0"), "{out}");
    let procs: u32 = field(&out, "procs").unwrap().parse().unwrap();
    assert!(
        procs < 10,
        "the agent sees only its sandbox's processes: {out}"
    );
}

#[actix_web::test]
async fn the_agent_works_in_its_workspace_and_shares_files_with_the_api() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "w").await;
    let answer = app
        .chat_ok(
            ALICE,
            "w",
            "[[bash]]git init -q . && echo hi > made.txt && git add made.txt && \
             git -c user.email=a@b -c user.name=a commit -qm first && \
             echo commits=$(git log --oneline | wc -l); \
             echo py=$(python3 -c 'print(6 * 7)'); echo tmp=$(mktemp -d)[[/bash]]",
        )
        .await;
    let out = tool_output(&answer);
    assert_eq!(field(&out, "commits"), Some("1"), "{out}");
    assert_eq!(field(&out, "py"), Some("42"), "{out}");
    assert!(
        field(&out, "tmp").is_some_and(|t| t.starts_with("/tmp/")),
        "{out}"
    );

    // Uploaded by the API, changed by the agent.
    let res = upload(
        &app,
        ALICE,
        "w",
        "?path=docs",
        &[file_part("up.txt", b"from the api\n")],
    )
    .await;
    assert_eq!(res.status(), 201);
    let answer = app
        .chat_ok(
            ALICE,
            "w",
            "[[bash]]echo from the agent >> docs/up.txt && touch docs/new.txt && echo ok=$(wc -l < docs/up.txt)[[/bash]]",
        )
        .await;
    assert_eq!(field(&tool_output(&answer), "ok"), Some("2"), "{answer}");
    // Written by the agent, read and deleted through the API.
    let body = app
        .get("/api/v1/sessions/w/files/made.txt", ALICE)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "hi\n");
    let res = app
        .delete("/api/v1/sessions/w/files/made.txt", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(!app.workspace("alice", "w").join("made.txt").exists());
}

#[actix_web::test]
async fn a_setsid_child_dies_with_its_session() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "s").await;
    let marker = "7313";
    app.chat_ok(
        ALICE,
        "s",
        &format!("[[bash]]setsid nohup sleep {marker}1 > /dev/null 2>&1 & echo started[[/bash]]"),
    )
    .await;
    assert!(
        eventually(5, || async { sleepers(marker) == 1 }).await,
        "the detached child runs"
    );
    let res = app
        .delete("/api/v1/sessions/s", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(
        eventually(10, || async { sleepers(marker) == 0 }).await,
        "the detached child outlived its session"
    );
}

#[actix_web::test]
async fn a_memory_hog_is_killed_and_the_session_answers_the_next_turn() {
    let app = TestApp::spawn_with(Options::default().var("AGENT_MEMORY_MAX_MB", "1024")).await;
    if app.health().await["sandbox"]["cgroup"].is_null() {
        // Documented: limits need a writable cgroup (root, or a delegated subtree).
        assert!(!server_is_root(), "as root, the limits are there");
        eprintln!("no writable cgroup for this user: the memory limit is not tested");
        return;
    }
    app.create_session(ALICE, "m").await;
    let answer = app
        .chat_ok(
            ALICE,
            "m",
            "[[bash]]python3 -c 'b = bytearray(1536 * 1024 * 1024); print(\"surv\" + \"ived\")'; echo status=$?[[/bash]]",
        )
        .await;
    let out = tool_output(&answer);
    assert!(!out.contains("survived"), "{out}");
    assert_eq!(
        field(&out, "status"),
        Some("137"),
        "killed by SIGKILL: {out}"
    );
    app.chat_ok(ALICE, "m", "still there?").await;
}

#[actix_web::test]
async fn a_killed_server_leaves_no_agent_process() {
    let env = crate::recovery::Env::new();
    let server = env.start(30).await;
    server.post("/api/v1/sessions", json!({"name": "k"})).await;
    server
        .post(
            "/api/v1/sessions/k/chat",
            json!({"message": "[[bash]]setsid nohup sleep 73142 > /dev/null 2>&1 & echo started[[/bash]]"}),
        )
        .await;
    assert!(eventually(5, || async { sleepers("73142") == 1 }).await);
    server.kill9();
    assert!(
        eventually(10, || async { sleepers("73142") == 0 }).await,
        "the agent's processes outlived their killed server"
    );
}

#[actix_web::test]
async fn agent_sandbox_bwrap_without_bwrap_stops_startup_with_the_fix() {
    let root = tempfile::tempdir().unwrap();
    let empty = root.path().join("bin");
    std::fs::create_dir_all(&empty).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_claude-code-api"))
        .arg("serve")
        .current_dir(root.path())
        .env_clear()
        .env("PATH", &empty)
        .env("API_PORT", "0")
        .env("ANTHROPIC_API_KEY", "test-key")
        .env("CLAUDE_CLI_PATH", real_cli_path())
        .env("AGENT_SANDBOX", "bwrap")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("AGENT_SANDBOX=bwrap") && stderr.contains("apt-get install bubblewrap"),
        "{stderr}"
    );
    // `auto` starts unconfined instead, and says so.
    let mut child = Command::new(env!("CARGO_BIN_EXE_claude-code-api"))
        .arg("serve")
        .current_dir(root.path())
        .env_clear()
        .env("PATH", &empty)
        .env("API_PORT", "0")
        .env("ANTHROPIC_API_KEY", "test-key")
        .env("CLAUDE_CLI_PATH", real_cli_path())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let warning = std::io::BufRead::lines(stderr)
        .map_while(Result::ok)
        .take(60)
        .find(|l| l.contains("NOT confined"));
    let _ = child.kill();
    let _ = child.wait();
    let warning = warning.expect("auto mode warns that the agent is not confined");
    assert!(warning.contains("bubblewrap"), "{warning}");
}
