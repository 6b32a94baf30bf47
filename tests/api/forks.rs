//! Forks: a new session from one turn of another, with the conversation up
//! to that turn and the workspace as it was at its end; the original left
//! as it was. Driven through the real CLI and the mock model.

use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::helpers::*;

async fn fork(app: &TestApp, key: &str, from: &str, body: Value) -> reqwest::Response {
    app.post(&format!("/api/v1/sessions/{from}/fork"), key, body)
        .send()
        .await
        .unwrap()
}

fn session_id(app: &TestApp, tenant: &str, name: &str) -> String {
    app.query_strings(&format!(
        "SELECT id AS s FROM sessions WHERE tenant_id = '{tenant}' AND name = '{name}'"
    ))
    .remove(0)
}

/// Every path beneath `dir` (links included, as links), sorted.
fn listing(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(base).unwrap().display().to_string());
            if std::fs::symlink_metadata(&path).unwrap().is_dir() {
                walk(&path, base, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Files beneath `dir` (links not followed) whose bytes hold `marker`.
fn holding(dir: &Path, marker: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            found.extend(holding(&path, marker));
        } else if meta.is_file()
            && String::from_utf8_lossy(&std::fs::read(&path).unwrap()).contains(marker)
        {
            found.push(path);
        }
    }
    found
}

#[actix_web::test]
async fn a_fork_at_turn_one_of_three_has_that_turns_conversation_and_files_only() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "orig").await;
    for (n, word) in [(1, "one"), (2, "two"), (3, "three")] {
        app.chat_ok(
            ALICE,
            "orig",
            &format!(
                "[[bash]]mkdir -p dir{n} && echo {word} > dir{n}/{word}.txt[[/bash]] PROMPT-{word}"
            ),
        )
        .await;
    }

    let res = fork(
        &app,
        ALICE,
        "orig",
        json!({ "new_name": "early", "at_turn": 1 }),
    )
    .await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["location"], "/api/v1/sessions/early");
    let body: Value = res.json().await.unwrap();
    let data = &body["data"];
    assert_eq!(data["name"], "early");
    assert_eq!(
        data["forked_from"],
        json!({ "session": "orig", "at_turn": 1 })
    );
    assert_eq!(data["turns"], 0);

    // The workspace as it was at the end of turn 1.
    let orig_ws = app.workspace("alice", "orig");
    let fork_ws = app.workspace("alice", "early");
    assert_eq!(data["workspace"], fork_ws.to_string_lossy().as_ref());
    assert_eq!(listing(&fork_ws), ["dir1", "dir1/one.txt"]);
    assert_eq!(
        std::fs::read_to_string(fork_ws.join("dir1/one.txt")).unwrap(),
        "one\n"
    );
    // Owned like the original's files: the agent's.
    let (made, copied) = (
        std::fs::metadata(orig_ws.join("dir1/one.txt")).unwrap(),
        std::fs::metadata(fork_ws.join("dir1/one.txt")).unwrap(),
    );
    assert_eq!((copied.uid(), copied.gid()), (made.uid(), made.gid()));
    assert_eq!(copied.mode() & 0o777, made.mode() & 0o777);

    // The conversation up to turn 1 only.
    let recalled = app.chat_ok(ALICE, "early", "[[recall]]").await;
    let content = recalled["content"].as_str().unwrap();
    assert!(content.contains("PROMPT-one"), "{content}");
    assert!(
        !content.contains("PROMPT-two") && !content.contains("PROMPT-three"),
        "{content}"
    );

    // The original is untouched: all its files, all its conversation.
    for f in ["dir1/one.txt", "dir2/two.txt", "dir3/three.txt"] {
        assert!(orig_ws.join(f).is_file(), "{f}");
    }
    let recalled = app.chat_ok(ALICE, "orig", "[[recall]]").await;
    let content = recalled["content"].as_str().unwrap();
    for p in ["PROMPT-one", "PROMPT-two", "PROMPT-three"] {
        assert!(content.contains(p), "{content}");
    }
    assert!(
        !content.contains("[[recall]] | [[recall]]"),
        "the fork's turn is not the original's: {content}"
    );
    assert!(!orig_ws.join("early").exists());

    // Who comes from whom, as a client and in the database.
    let got = get_json(&app, "/api/v1/sessions/early", ALICE).await;
    assert_eq!(
        got["data"]["forked_from"],
        json!({ "session": "orig", "at_turn": 1 })
    );
    assert_eq!(got["data"]["turns"], 1);
    let got = get_json(&app, "/api/v1/sessions/orig", ALICE).await;
    assert_eq!(got["data"]["forked_from"], Value::Null);
    let forks = get_json(&app, "/api/v1/sessions/orig/forks", ALICE).await;
    assert_eq!(forks["pagination"]["total"], 1, "{forks}");
    assert_eq!(forks["data"][0]["name"], "early");
    assert_eq!(forks["data"][0]["forked_from"]["at_turn"], 1);
    let none = get_json(&app, "/api/v1/sessions/early/forks", ALICE).await;
    assert_eq!(none["data"], json!([]));

    let (orig_id, fork_id) = (
        session_id(&app, "alice", "orig"),
        session_id(&app, "alice", "early"),
    );
    let link = app.query_strings(&format!(
        "SELECT parent_session_id || ' ' || parent_name || ' ' || CAST(at_turn AS TEXT) AS s \
         FROM session_forks WHERE session_id = '{fork_id}'"
    ));
    assert_eq!(link, [format!("{orig_id} orig 1")]);
    assert_eq!(
        app.query_i64(&format!(
            "SELECT COUNT(*) AS n FROM turn_snapshots WHERE session_id = '{orig_id}' AND snapshot = 'stored'"
        )),
        4
    );
    // The fork's conversation is its own, under its own id.
    let ids = app.query_strings(&format!(
        "SELECT cli_session_id AS s FROM sessions WHERE id IN ('{orig_id}', '{fork_id}') ORDER BY name"
    ));
    assert_ne!(ids[0], ids[1]);

    // Without `at_turn`: the latest turn (the original's recall is its 4th).
    let res = fork(&app, ALICE, "orig", json!({ "new_name": "late" })).await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"]["forked_from"]["at_turn"], 4);
    assert_eq!(
        listing(&app.workspace("alice", "late")),
        [
            "dir1",
            "dir1/one.txt",
            "dir2",
            "dir2/two.txt",
            "dir3",
            "dir3/three.txt"
        ]
    );
}

#[actix_web::test]
async fn forks_are_refused_with_problems_that_say_why() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "orig").await;
    app.create_session(ALICE, "taken").await;

    let res = fork(&app, ALICE, "orig", json!({ "new_name": "f" })).await;
    let body = assert_problem(res, 422, "validation-error").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("no completed turn"),
        "{body}"
    );

    app.chat_ok(ALICE, "orig", "first").await;
    app.chat_ok(ALICE, "orig", "second").await;
    for at in [0, 3, -1] {
        let res = fork(
            &app,
            ALICE,
            "orig",
            json!({ "new_name": "f", "at_turn": at }),
        )
        .await;
        let body = assert_problem(res, 422, "validation-error").await;
        assert!(
            body["detail"].as_str().unwrap().contains("from 1 to 2"),
            "{body}"
        );
    }
    let res = fork(
        &app,
        ALICE,
        "orig",
        json!({ "new_name": "taken", "at_turn": 1 }),
    )
    .await;
    let body = assert_problem(res, 409, "conflict").await;
    assert!(
        body["detail"].as_str().unwrap().contains("already exists"),
        "{body}"
    );
    for bad in ["", ".hidden", "a/b", "../up"] {
        let res = fork(&app, ALICE, "orig", json!({ "new_name": bad })).await;
        assert_problem(res, 422, "validation-error").await;
    }
    let res = fork(&app, ALICE, "orig", json!({ "new_name": "f", "extra": 1 })).await;
    assert_eq!(res.status(), 422);

    // Another tenant's session is no session at all.
    let res = fork(&app, BOB, "orig", json!({ "new_name": "mine" })).await;
    assert_problem(res, 404, "not-found").await;
    let res = app
        .get("/api/v1/sessions/orig/forks", BOB)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
    assert!(!app.workspace("bob", "mine").exists());
    assert!(!app.workspace("alice", "f").exists());
    assert_eq!(app.query_i64("SELECT COUNT(*) AS n FROM session_forks"), 0);
}

#[actix_web::test]
async fn snapshot_limits_and_retention_refuse_a_fork_and_a_delete_removes_the_snapshots() {
    let app = TestApp::spawn_with(
        Options::default()
            .var("SNAPSHOT_MAX_FILES", "3")
            .var("SNAPSHOT_KEEP_TURNS", "2"),
    )
    .await;
    app.create_session(ALICE, "s").await;
    app.chat_ok(ALICE, "s", "[[bash]]echo a > a[[/bash]]").await;
    app.chat_ok(ALICE, "s", "[[bash]]echo b > b[[/bash]]").await;
    app.chat_ok(ALICE, "s", "[[bash]]echo c > c && echo d > d[[/bash]]")
        .await;
    app.chat_ok(ALICE, "s", "[[bash]]rm c d[[/bash]]").await;

    // Turns 1 and 2 are older than the last two.
    for at in [1, 2] {
        let res = fork(&app, ALICE, "s", json!({ "new_name": "f", "at_turn": at })).await;
        let body = assert_problem(res, 409, "conflict").await;
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("SNAPSHOT_KEEP_TURNS"), "{body}");
    }
    // Turn 3 had four files.
    let res = fork(&app, ALICE, "s", json!({ "new_name": "f", "at_turn": 3 })).await;
    let body = assert_problem(res, 409, "conflict").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("SNAPSHOT_MAX_FILES"),
        "{body}"
    );
    assert!(!app.workspace("alice", "f").exists());
    // Turn 4 is back under the limit.
    let res = fork(&app, ALICE, "s", json!({ "new_name": "f", "at_turn": 4 })).await;
    assert_eq!(res.status(), 201);
    assert_eq!(listing(&app.workspace("alice", "f")), ["a", "b"]);

    // The store keeps the last two turns' manifests (turn 3 had none), then
    // nothing at all.
    let id = session_id(&app, "alice", "s");
    let store = app.workspaces().join(".snapshots").join(&id);
    assert_eq!(listing(&store.join("turns")), ["4.json"]);
    assert_eq!(
        listing(&store.join("blobs")).len(),
        2,
        "the blobs of a and b only"
    );
    let res = app
        .delete("/api/v1/sessions/s", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(!store.exists());
    // The fork lives on, still naming its (gone) parent.
    let got = get_json(&app, "/api/v1/sessions/f", ALICE).await;
    assert_eq!(
        got["data"]["forked_from"],
        json!({ "session": "s", "at_turn": 4 })
    );
}

/// The agent plants links to secrets outside its workspace (another
/// tenant's file, a file of the server's), a FIFO, a setuid file and a
/// hard link: the fork holds none of the secrets, nothing outside is read
/// or changed, and the special bits are gone.
#[actix_web::test]
async fn a_fork_never_follows_what_the_agent_planted() {
    let app = TestApp::spawn().await;
    app.create_session(BOB, "bobs").await;
    let bob_secret = app.workspace("bob", "bobs").join("secret.txt");
    std::fs::write(&bob_secret, "BOB-TENANT-SECRET-MARKER").unwrap();
    let host = app.root.path().join("host");
    std::fs::create_dir_all(&host).unwrap();
    let server_secret = host.join("server-secret.txt");
    std::fs::write(&server_secret, "SERVER-PRIVATE-SECRET-MARKER").unwrap();
    std::fs::set_permissions(&server_secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    app.create_session(ALICE, "a").await;
    let answer = app
        .chat_ok(
            ALICE,
            "a",
            &format!(
                "[[bash]]echo mine > mine.txt && ln -s {bob} to-bob && ln -s {server} to-server \
                 && ln -s {host} to-host-dir && mkdir -p sub && ln -s / sub/root \
                 && mkfifo pipe && echo s > suid && chmod 4755 suid \
                 && ln mine.txt hard.txt; ls -la[[/bash]]",
                bob = bob_secret.display(),
                server = server_secret.display(),
                host = host.display(),
            ),
        )
        .await;
    let ws = app.workspace("alice", "a");
    assert!(
        std::fs::symlink_metadata(ws.join("to-server"))
            .unwrap()
            .is_symlink(),
        "the agent planted its links: {}",
        tool_output(&answer)
    );
    assert!(std::fs::symlink_metadata(ws.join("pipe"))
        .unwrap()
        .file_type()
        .is_fifo());

    // Bob's agent has been given his workspace by now: as it is now, the
    // fork must leave it.
    let before: Vec<_> = [&bob_secret, &server_secret]
        .iter()
        .map(|p| std::fs::symlink_metadata(p).unwrap())
        .collect();
    let res = fork(&app, ALICE, "a", json!({ "new_name": "copy" })).await;
    assert_eq!(res.status(), 201);
    let copy = app.workspace("alice", "copy");
    // Neither the links nor the FIFO, nor a file with other hard links.
    assert_eq!(listing(&copy), ["sub", "suid"]);
    let mode = std::fs::metadata(copy.join("suid")).unwrap().mode();
    assert_eq!(mode & 0o7777, 0o755, "no setuid bit");
    for marker in ["BOB-TENANT-SECRET-MARKER", "SERVER-PRIVATE-SECRET-MARKER"] {
        assert!(holding(&copy, marker).is_empty(), "{marker} in the fork");
        assert!(
            holding(&app.workspaces().join(".snapshots"), marker).is_empty(),
            "{marker} in the snapshot store"
        );
    }
    // What the links pointed at is as it was, and not read (its atime
    // aside, which a mount may not keep: contents, mode and times).
    for (path, was) in [&bob_secret, &server_secret].iter().zip(&before) {
        let now = std::fs::symlink_metadata(path).unwrap();
        assert!(now.is_file());
        assert_eq!(
            (now.mode(), now.uid(), now.mtime(), now.ctime()),
            (was.mode(), was.uid(), was.mtime(), was.ctime())
        );
    }
    assert_eq!(
        std::fs::read_to_string(&bob_secret).unwrap(),
        "BOB-TENANT-SECRET-MARKER"
    );
    // The fork's agent sees no secret either.
    let seen = app
        .chat_ok(
            ALICE,
            "copy",
            "[[bash]]grep -r MARKER . ; echo done[[/bash]]",
        )
        .await;
    let out = tool_output(&seen);
    assert!(!out.contains("SECRET-MARKER"), "{out}");
}

#[actix_web::test]
async fn a_repository_sessions_fork_is_a_worktree_at_that_turns_commit_on_its_own_branch() {
    use crate::git_server::{bare_repo, GitServer};
    let app = TestApp::spawn_with(Options::default().var("GIT_ALLOWED_HOSTS", "127.0.0.1")).await;
    let remote_root = tempfile::tempdir().unwrap();
    let projects = bare_repo(remote_root.path(), "FORK-README\n");
    let server = GitServer::start("127.0.0.1:0", projects, Some("fork-token"));
    let res = app
        .post(
            "/api/v1/repos",
            ALICE,
            json!({"name": "app", "url": server.url(), "credential": "fork-token"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    app.create_session_with(ALICE, json!({"name": "work", "repo": {"name": "app"}}))
        .await;
    for (turn, file) in [(1, "first.txt"), (2, "second.txt")] {
        let answer = app
            .chat_ok(
                ALICE,
                "work",
                &format!(
                    "[[bash]]echo {turn} > {file} && git add {file} && git commit -q -m turn-{turn} && echo head=$(git rev-parse HEAD)[[/bash]]"
                ),
            )
            .await;
        assert!(tool_output(&answer).contains("head="), "{answer}");
    }
    let original = get_json(&app, "/api/v1/sessions/work/git", ALICE).await;
    assert_eq!(original["data"]["ahead"], 2, "{original}");

    let res = fork(
        &app,
        ALICE,
        "work",
        json!({"new_name": "alt", "at_turn": 1}),
    )
    .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let workspace = app.workspace("alice", "alt");
    assert_eq!(
        std::fs::read_to_string(workspace.join("first.txt")).unwrap(),
        "1\n"
    );
    assert!(!workspace.join("second.txt").exists());
    let git = get_json(&app, "/api/v1/sessions/alt/git", ALICE).await;
    let data = &git["data"];
    assert_eq!(data["branch"], "cca/alt", "{git}");
    assert_eq!(data["checked_out"], "cca/alt", "{git}");
    assert_eq!(data["ahead"], 1, "turn 1's commit only: {git}");
    assert_eq!(data["base"]["commit"], original["data"]["base"]["commit"]);
    assert_eq!(data["dirty"], json!([]));
    // The agent of the fork works on its own branch.
    let answer = app
        .chat_ok(
            ALICE,
            "alt",
            "[[bash]]echo branch=$(git rev-parse --abbrev-ref HEAD) log=$(git log --format=%s -1)[[/bash]]",
        )
        .await;
    let out = tool_output(&answer);
    assert!(out.contains("branch=cca/alt log=turn-1"), "{out}");
    // The original is untouched.
    let again = get_json(&app, "/api/v1/sessions/work/git", ALICE).await;
    assert_eq!(again["data"]["head"], original["data"]["head"]);
    assert_eq!(again["data"]["checked_out"], "cca/work");
}
