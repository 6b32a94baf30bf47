//! Git-native sessions: a repository registered with a credential, a
//! session made from it as a worktree on its own branch, the agent's work
//! seen as status and diff, committed, pushed to a real remote (smart HTTP
//! with basic auth) and opened as a pull request on a fake forge; the
//! credential never reachable from inside the agent.

use serde_json::{json, Value};

use crate::git_server::{bare_repo, git, FakeProvider, GitServer};
use crate::helpers::*;

const TOKEN: &str = "GIT-TOKEN-MARKER-7731";
/// A pattern `grep` matches `TOKEN` with, which is not `TOKEN` itself (the
/// agent's own command line must not count as a leak).
const TOKEN_PATTERN: &str = "GIT-TOKEN-MARKER-77[3]1";

async fn register(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.post("/api/v1/repos", key, body).send().await.unwrap()
}

fn app_options() -> Options {
    Options::default().var("GIT_ALLOWED_HOSTS", "127.0.0.1")
}

#[actix_web::test]
async fn a_session_from_a_repository_ends_as_a_pushed_branch_and_a_pull_request() {
    let app = TestApp::spawn_with(app_options()).await;
    let remote_root = tempfile::tempdir().unwrap();
    let projects = bare_repo(remote_root.path(), "REPO-README-MARKER\n");
    let server = GitServer::start("127.0.0.1:0", projects.clone(), Some(TOKEN));
    let forge = FakeProvider::start("github");

    // A wrong credential is refused by the remote at registration.
    let res = register(
        &app,
        ALICE,
        json!({"name": "app", "url": server.url(), "credential": "wrong-token"}),
    )
    .await;
    assert_problem(res, 502, "upstream-error").await;

    let res = register(
        &app,
        ALICE,
        json!({"name": "app", "url": server.url(), "credential": TOKEN,
               "provider": "github", "api_url": forge.url()}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let repo: Value = res.json().await.unwrap();
    let text = repo.to_string();
    assert!(!text.contains(TOKEN), "{text}");
    assert_eq!(repo["data"]["has_credential"], true);
    assert_eq!(repo["data"]["default_branch"], "main");
    // Sealed at rest.
    let stored = app.query_strings("SELECT credential AS s FROM repos");
    assert!(stored[0].starts_with("v1:") && !stored[0].contains(TOKEN));

    let created = app
        .create_session_with(ALICE, json!({"name": "fix", "repo": {"name": "app"}}))
        .await;
    assert_eq!(created["name"], "fix", "{created}");
    let workspace = app.workspace("alice", "fix");
    assert_eq!(
        std::fs::read_to_string(workspace.join("README")).unwrap(),
        "REPO-README-MARKER\n"
    );

    // The agent works with git in its worktree (no credential anywhere it
    // can look), and changes the repository.
    let answer = app
        .chat_ok(
            ALICE,
            "fix",
            &format!(
                "[[bash]]echo changed >> README; echo new > added.txt; \
                 echo branch=$(git rev-parse --abbrev-ref HEAD); \
                 echo log=$(git log --format=%s -1); \
                 {{ env; git config -l; cat .git/config; git remote -v; \
                  cat /proc/*/environ /proc/*/cmdline; cat -v $HOME/* $HOME/.* .git/*; }} \
                  > /tmp/scan 2>/dev/null; echo scanned=$(wc -c < /tmp/scan); \
                  if grep -q {TOKEN_PATTERN} /tmp/scan; then echo leak=yes; else echo leak=no; fi[[/bash]]"
            ),
        )
        .await;
    let out = tool_output(&answer);
    assert_eq!(field(&out, "branch"), Some("cca/fix"), "{out}");
    assert_eq!(field(&out, "log"), Some("one"), "{out}");
    assert_eq!(field(&out, "leak"), Some("no"), "{out}");
    assert_ne!(field(&out, "scanned"), Some("0"), "{out}");
    for request in app.mock.all_requests() {
        assert!(!request.to_string().contains(TOKEN));
    }

    let status = get_json(&app, "/api/v1/sessions/fix/git", ALICE).await;
    let data = &status["data"];
    assert_eq!(data["branch"], "cca/fix", "{status}");
    assert_eq!(data["base"]["ref"], "main");
    assert_eq!(data["ahead"], 0);
    let dirty: Vec<&str> = data["dirty"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(
        dirty.contains(&"README") && dirty.contains(&"added.txt"),
        "{status}"
    );

    let diff = get_json(&app, "/api/v1/sessions/fix/diff", ALICE).await;
    let files = diff["data"]["files"].as_array().unwrap();
    assert_eq!(diff["data"]["stat"]["files"], 2, "{diff}");
    let added = files.iter().find(|f| f["path"] == "added.txt").unwrap();
    assert_eq!(added["status"], "added");
    let readme = files.iter().find(|f| f["path"] == "README").unwrap();
    assert!(readme["hunks"][0]["lines"]
        .as_array()
        .unwrap()
        .contains(&json!("+changed")));
    let patch = app
        .get("/api/v1/sessions/fix/diff", ALICE)
        .header("Accept", "text/x-diff")
        .send()
        .await
        .unwrap();
    assert!(patch.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/x-diff"));
    assert!(patch.text().await.unwrap().contains("+new"));

    let res = app
        .post(
            "/api/v1/sessions/fix/commit",
            ALICE,
            json!({"message": "Fix the README"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let commit: Value = res.json().await.unwrap();
    let commit_id = commit["data"]["commit"].as_str().unwrap().to_owned();
    assert_eq!(commit_id.len(), 40);
    let again = app
        .post("/api/v1/sessions/fix/commit", ALICE, json!({}))
        .send()
        .await
        .unwrap();
    assert_problem(again, 409, "conflict").await;
    let status = get_json(&app, "/api/v1/sessions/fix/git", ALICE).await;
    assert_eq!(status["data"]["ahead"], 1, "{status}");
    assert_eq!(status["data"]["dirty"], json!([]));

    // The pull request pushes the branch first.
    let res = app
        .post(
            "/api/v1/sessions/fix/pull-request",
            ALICE,
            json!({"title": "Fix it", "draft": true}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let pr: Value = res.json().await.unwrap();
    assert_eq!(
        pr["data"],
        json!({"number": 7, "url": "https://forge.example/pull/7"})
    );
    assert_eq!(
        git(
            &projects.join("repo.git"),
            &["rev-parse", "refs/heads/cca/fix"]
        ),
        commit_id,
        "the remote has the session's commit"
    );
    let requests = forge.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/repos/repo/pulls")
    );
    assert_eq!(request.header("authorization"), format!("Bearer {TOKEN}"));
    assert_eq!(request.body["head"], "cca/fix");
    assert_eq!(request.body["base"], "main");
    assert_eq!(request.body["title"], "Fix it");
    assert_eq!(request.body["draft"], true);

    // The session's stream tells each step, stored like a turn's events.
    let session_id = created["id"].as_str().unwrap().to_owned();
    let kinds = app.query_strings(&format!(
        "SELECT kind AS s FROM events WHERE session_id = '{session_id}' ORDER BY seq"
    ));
    for kind in ["git_commit", "git_push", "pull_request_opened"] {
        assert!(kinds.iter().any(|k| k == kind), "{kinds:?}");
    }
    let actions = app.query_strings("SELECT action AS s FROM audit_log");
    for action in [
        "repo.create",
        "session.git.commit",
        "session.git.push",
        "session.git.pull_request",
    ] {
        assert!(actions.iter().any(|a| a == action), "{actions:?}");
    }

    // Deleting the session removes its worktree.
    let res = app
        .delete("/api/v1/sessions/fix", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(!workspace.exists());
}

#[actix_web::test]
async fn repositories_are_checked_and_tenant_scoped() {
    let app = TestApp::spawn().await;
    let remote_root = tempfile::tempdir().unwrap();
    let projects = bare_repo(remote_root.path(), "x");
    let server = GitServer::start("127.0.0.1:0", projects, None);
    for (body, why) in [
        (
            json!({"name": "a", "url": "http://example.com/a/b.git"}),
            "plain http",
        ),
        (
            json!({"name": "a", "url": "https://user:pw@example.com/a/b.git"}),
            "credentials in the URL",
        ),
        (json!({"name": "a", "url": "file:///etc"}), "file scheme"),
        (json!({"name": "a", "url": "/etc"}), "a path not allowed"),
        (
            json!({"name": "a", "url": "ext::sh -c id"}),
            "ext transport",
        ),
        (
            json!({"name": "../a", "url": "https://example.com/a/b.git"}),
            "a bad name",
        ),
        (
            json!({"name": "a", "url": server.url()}),
            "loopback without GIT_ALLOWED_HOSTS",
        ),
        (
            json!({"name": "a", "url": "https://127.0.0.1/a/b.git"}),
            "loopback",
        ),
    ] {
        let res = register(&app, ALICE, body).await;
        assert_eq!(res.status(), 422, "{why}: {}", res.text().await.unwrap());
    }

    let app = TestApp::spawn_with(app_options()).await;
    let res = register(&app, ALICE, json!({"name": "app", "url": server.url()})).await;
    assert_eq!(res.status(), 201);
    let res = register(&app, ALICE, json!({"name": "app", "url": server.url()})).await;
    assert_problem(res, 409, "conflict").await;
    // Another tenant sees nothing of it.
    for path in ["/api/v1/repos/app"] {
        assert_eq!(app.get(path, BOB).send().await.unwrap().status(), 404);
        assert_eq!(app.delete(path, BOB).send().await.unwrap().status(), 404);
    }
    let listed = get_json(&app, "/api/v1/repos", BOB).await;
    assert_eq!(listed["data"], json!([]));
    let res = app
        .post(
            "/api/v1/sessions",
            BOB,
            json!({"name": "s", "repo": {"name": "app"}}),
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
    assert!(!app.workspace("bob", "s").exists());
    // A ref that does not exist: nothing is left behind.
    let res = app
        .post(
            "/api/v1/sessions",
            ALICE,
            json!({"name": "s", "repo": {"name": "app", "ref": "nope"}}),
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
    assert!(!app.workspace("alice", "s").exists());
    assert_eq!(app.query_i64("SELECT COUNT(*) AS n FROM sessions"), 0);
    // A session not made from a repository has no git routes.
    app.create_session(ALICE, "plain").await;
    let res = app
        .get("/api/v1/sessions/plain/git", ALICE)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
    // Bob cannot reach alice's session's git routes either.
    app.create_session_with(ALICE, json!({"name": "r", "repo": {"name": "app"}}))
        .await;
    let res = app
        .get("/api/v1/sessions/r/diff", BOB)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // Changing and deleting.
    let res = app
        .post("/api/v1/repos/app", ALICE, json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    let res = app
        .client
        .patch(app.url("/api/v1/repos/app"))
        .header("X-API-Key", ALICE)
        .json(&json!({"author": {"name": "Bot", "email": "bot@example.com"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app.delete("/api/v1/repos/app", ALICE).send().await.unwrap();
    assert_eq!(res.status(), 204);
    // The session made from it keeps working, but cannot push.
    let res = app
        .post("/api/v1/sessions/r/push", ALICE, json!({}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 409, "conflict").await;
    let status = get_json(&app, "/api/v1/sessions/r/git", ALICE).await;
    assert_eq!(status["data"]["branch"], "cca/r", "{status}");
}

#[actix_web::test]
async fn a_push_the_remote_moved_past_is_rejected_and_parallel_sessions_share_one_mirror() {
    let app = TestApp::spawn_with(app_options()).await;
    let remote_root = tempfile::tempdir().unwrap();
    let projects = bare_repo(remote_root.path(), "base\n");
    let server = GitServer::start("127.0.0.1:0", projects.clone(), Some(TOKEN));
    let res = register(
        &app,
        ALICE,
        json!({"name": "app", "url": server.url(), "credential": format!("bot:{TOKEN}")}),
    )
    .await;
    assert_eq!(res.status(), 201);

    // Four sessions at once on one repository: one mirror, four branches.
    let creates = (0..4).map(|i| {
        let app = &app;
        async move {
            app.post(
                "/api/v1/sessions",
                ALICE,
                json!({"name": format!("p{i}"), "repo": {"name": "app"}}),
            )
            .send()
            .await
            .unwrap()
            .status()
        }
    });
    for status in futures_util::future::join_all(creates).await {
        assert_eq!(status, 201);
    }
    let mirrors = std::fs::read_dir(app.root.path().join("data/git/alice"))
        .unwrap()
        .count();
    assert_eq!(mirrors, 1, "one mirror for the repository");
    for i in 0..4 {
        std::fs::write(
            app.workspace("alice", &format!("p{i}"))
                .join(format!("f{i}")),
            "x",
        )
        .unwrap();
        let res = app
            .post(&format!("/api/v1/sessions/p{i}/commit"), ALICE, json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let res = app
            .post(&format!("/api/v1/sessions/p{i}/push"), ALICE, json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    }
    let branches = git(&projects.join("repo.git"), &["branch", "--list", "cca/*"]);
    assert_eq!(branches.lines().count(), 4, "{branches}");
    // Nothing new to push is a clear conflict.
    let res = app
        .post("/api/v1/sessions/p0/push", ALICE, json!({}))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(res, 409, "conflict").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("nothing to push"),
        "{problem}"
    );

    // Someone else pushes to the session's branch: the session's next push
    // is refused, not forced.
    let other = remote_root.path().join("other");
    git(
        remote_root.path(),
        &[
            "clone",
            "-q",
            projects.join("repo.git").to_str().unwrap(),
            other.to_str().unwrap(),
        ],
    );
    git(&other, &["checkout", "-q", "cca/p0"]);
    std::fs::write(other.join("theirs"), "y").unwrap();
    git(&other, &["add", "theirs"]);
    git(&other, &["commit", "-qm", "theirs"]);
    git(&other, &["push", "-q", "origin", "cca/p0"]);
    std::fs::write(app.workspace("alice", "p0").join("mine"), "z").unwrap();
    let res = app
        .post("/api/v1/sessions/p0/commit", ALICE, json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .post("/api/v1/sessions/p0/push", ALICE, json!({}))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(res, 409, "conflict").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("rejected"),
        "{problem}"
    );
    // Every request the remote saw carried the stored credential.
    let seen = server.authorizations.lock().unwrap().clone();
    assert!(seen.iter().filter(|a| !a.is_empty()).count() > 0);
}

fn field<'a>(out: &'a str, name: &str) -> Option<&'a str> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{name}=")))
}

#[actix_web::test]
async fn jobs_go_from_a_prompt_to_a_merge_request_each_on_its_own_branch() {
    let app = TestApp::spawn_with(app_options()).await;
    let remote_root = tempfile::tempdir().unwrap();
    let projects = bare_repo(remote_root.path(), "base\n");
    let server = GitServer::start("127.0.0.1:0", projects.clone(), Some(TOKEN));
    let forge = FakeProvider::start("gitlab");
    let receiver = crate::receiver::Receiver::start(&[200]);
    let res = register(
        &app,
        ALICE,
        json!({"name": "app", "url": server.url(), "credential": TOKEN,
               "provider": "gitlab", "api_url": forge.url(),
               "author": {"name": "Release Bot", "email": "bot@example.com"}}),
    )
    .await;
    assert_eq!(res.status(), 201);

    // A session not made from a repository cannot take a git step.
    app.create_session(ALICE, "plain").await;
    let res = app
        .post(
            "/api/v1/sessions/plain/jobs",
            ALICE,
            json!({"message": "hi", "git": {"commit": true}}),
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 409, "conflict").await;

    // Twelve jobs fan out, each on its own session of the one repository;
    // a thirteenth changes nothing.
    let mut jobs = Vec::new();
    for i in 0..13 {
        let name = format!("j{i}");
        app.create_session_with(ALICE, json!({"name": name, "repo": {"name": "app"}}))
            .await;
        let message = if i < 12 {
            format!("Bump part {i}\n[[write part{i}.txt]]v{i}[[/write]]")
        } else {
            "Just look around".to_owned()
        };
        let res = app
            .post(
                &format!("/api/v1/sessions/{name}/jobs"),
                ALICE,
                json!({"message": message, "webhook_url": receiver.url,
                       "git": {"commit": true, "push": true,
                               "pull_request": {"title": format!("Part {i}")}}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
        let body: Value = res.json().await.unwrap();
        jobs.push((name, body["data"]["id"].as_str().unwrap().to_owned()));
    }
    for (i, (name, id)) in jobs.iter().enumerate() {
        let job = app.wait_job(ALICE, name, id, 90).await;
        assert_eq!(job["status"], "done", "{job}");
        let git = &job["git"];
        if i < 12 {
            assert_eq!(git["changed"], true, "{job}");
            assert_eq!(git["branch"], format!("cca/{name}"));
            assert_eq!(git["diff_stat"]["files"], 1);
            assert_eq!(git["pushed"], true);
            let number = git["pull_request"]["number"].as_u64().unwrap();
            assert_eq!(
                git["pull_request"]["url"],
                format!("https://forge.example/mr/{number}")
            );
            // The remote has the branch, committed by the repository's author.
            let remote = projects.join("repo.git");
            let branch = format!("cca/{name}");
            assert_eq!(
                crate::git_server::git(&remote, &["log", "-1", "--format=%an <%ae>|%s", &branch]),
                format!("Release Bot <bot@example.com>|Bump part {i}")
            );
        } else {
            assert_eq!(git["changed"], false, "{job}");
            assert!(git["pull_request"].is_null());
        }
    }
    // One merge request per changed job, with GitLab's shape and token.
    let requests = forge.requests();
    assert_eq!(requests.len(), 12);
    for request in &requests {
        assert_eq!(request.path, "/projects/repo/merge_requests");
        assert_eq!(request.header("private-token"), TOKEN);
        assert_eq!(request.body["target_branch"], "main");
        assert!(request.body["source_branch"]
            .as_str()
            .unwrap()
            .starts_with("cca/j"));
    }
    // The webhooks carry the same `git`.
    assert!(
        eventually(30, || async { receiver.received().len() >= 13 }).await,
        "every webhook arrived"
    );
    for received in receiver.received() {
        let event = received.json();
        let job = &event["job"];
        let (name, _) = jobs
            .iter()
            .find(|(_, id)| job["id"] == id.as_str())
            .unwrap();
        let stored = app.job(ALICE, name, job["id"].as_str().unwrap()).await;
        assert_eq!(job["git"], stored["git"], "{event}");
    }
    // The session's stream has the git events before the job's status.
    let session_id = app.query_strings("SELECT id AS s FROM sessions WHERE name = 'j0'")[0].clone();
    let kinds = app.query_strings(&format!(
        "SELECT kind AS s FROM events WHERE session_id = '{session_id}' ORDER BY seq"
    ));
    let at = |kind: &str| kinds.iter().rposition(|k| k == kind).unwrap();
    assert!(at("git_commit") < at("git_push"), "{kinds:?}");
    assert!(at("git_push") < at("pull_request_opened"), "{kinds:?}");
    assert!(at("pull_request_opened") < at("job_status"), "{kinds:?}");
}

#[actix_web::test]
async fn a_local_repository_opens_pull_requests_on_gitea() {
    let remote_root = tempfile::tempdir().unwrap();
    let projects = bare_repo(remote_root.path(), "local\n");
    let app = TestApp::spawn_with(
        app_options().var("GIT_ALLOWED_PATHS", projects.to_string_lossy().into_owned()),
    )
    .await;
    let forge = FakeProvider::start("gitea");
    // Gitea has no public API: it needs api_url.
    let path = projects.join("repo.git");
    let res = register(
        &app,
        ALICE,
        json!({"name": "local", "url": path, "provider": "gitea", "credential": TOKEN}),
    )
    .await;
    assert_problem(res, 422, "validation-error").await;
    let res = register(
        &app,
        ALICE,
        json!({"name": "local", "url": path, "provider": "gitea",
               "api_url": format!("{}/api/v1", forge.url()), "credential": TOKEN}),
    )
    .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    app.create_session_with(
        ALICE,
        json!({"name": "l", "repo": {"name": "local", "branch": "feature/x"}}),
    )
    .await;
    let answer = app
        .chat_ok(
            ALICE,
            "l",
            "[[bash]]echo more >> README && git add README && git commit -qm 'Agent commit' && echo committed=yes[[/bash]]",
        )
        .await;
    assert!(tool_output(&answer).contains("committed=yes"), "{answer}");
    let res = app
        .post("/api/v1/sessions/l/pull-request", ALICE, json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let requests = forge.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.header("authorization"), format!("token {TOKEN}"));
    assert!(request.path.ends_with("/repo/pulls"), "{}", request.path);
    assert!(
        request.path.starts_with("/api/v1/repos/"),
        "{}",
        request.path
    );
    // No title or body given: the agent was asked for them (a turn of the
    // session's, in its history); the branch is the one asked for.
    assert_eq!(request.body["title"], "Mock title of the pull request");
    assert_eq!(
        request.body["body"],
        "Mock description of the pull request."
    );
    let history = app.history(ALICE, "l").await;
    assert!(history.iter().any(|m| m["content"]
        .as_str()
        .unwrap_or("")
        .starts_with("Describe these changes as a pull request")));
    assert_eq!(request.body["head"], "feature/x");
    assert_eq!(
        git(&path, &["log", "-1", "--format=%s", "feature/x"]),
        "Agent commit"
    );
}

#[actix_web::test]
async fn a_providers_refusal_is_passed_on_with_its_message() {
    let app = TestApp::spawn_with(app_options()).await;
    let remote_root = tempfile::tempdir().unwrap();
    let projects = bare_repo(remote_root.path(), "x\n");
    let server = GitServer::start("127.0.0.1:0", projects, Some(TOKEN));
    let forge = FakeProvider::refusing("github", 422, "Validation Failed: base branch missing");
    let res = register(
        &app,
        ALICE,
        json!({"name": "app", "url": server.url(), "credential": TOKEN,
               "provider": "github", "api_url": forge.url()}),
    )
    .await;
    assert_eq!(res.status(), 201);
    app.create_session_with(ALICE, json!({"name": "s", "repo": {"name": "app"}}))
        .await;
    std::fs::write(app.workspace("alice", "s").join("new.txt"), "n").unwrap();
    let res = app
        .post("/api/v1/sessions/s/commit", ALICE, json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .post(
            "/api/v1/sessions/s/pull-request",
            ALICE,
            json!({"base": "nope"}),
        )
        .send()
        .await
        .unwrap();
    let problem = assert_problem(res, 502, "upstream-error").await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("base branch missing") && detail.contains("422"),
        "{detail}"
    );
    assert!(!detail.contains(TOKEN));
    assert_eq!(forge.requests()[0].body["base"], "nope");
    // The push before it happened and is kept: the branch is on the remote.
    let status = get_json(&app, "/api/v1/sessions/s/git", ALICE).await;
    assert!(status["data"]["pushed_commit"].is_string(), "{status}");
}

/// A deploy key reaches an ssh remote; it never enters the agent's reach.
#[actix_web::test]
async fn an_ssh_remote_is_reached_with_a_deploy_key() {
    if !server_is_root() {
        eprintln!("SKIPPED: sshd logs in as root only in this test (the run as nobody skips it)");
        return;
    }
    let app = TestApp::spawn_with(app_options()).await;
    let remote_root = tempfile::tempdir().unwrap();
    let projects = bare_repo(remote_root.path(), "ssh\n");
    let ssh = crate::git_server::SshServer::start();
    let url = ssh.url(&projects.join("repo.git"));
    // A token is not an SSH credential.
    let res = register(
        &app,
        ALICE,
        json!({"name": "s", "url": url, "credential": "tok"}),
    )
    .await;
    assert_problem(res, 422, "validation-error").await;
    let res = register(
        &app,
        ALICE,
        json!({"name": "s", "url": url, "credential": ssh.private_key}),
    )
    .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let view: Value = get_json(&app, "/api/v1/repos/s", ALICE).await;
    assert_eq!(view["data"]["credential_kind"], "ssh_key");
    assert!(!view.to_string().contains("PRIVATE KEY"));
    app.create_session_with(ALICE, json!({"name": "k", "repo": {"name": "s"}}))
        .await;
    let answer = app
        .chat_ok(
            ALICE,
            "k",
            "[[bash]]echo more >> README; grep -rl 'PRIVATE[ ]KEY' $HOME . /tmp 2>/dev/null | wc -l | sed 's/^/keys=/'[[/bash]]",
        )
        .await;
    assert!(tool_output(&answer).contains("keys=0"), "{answer}");
    let res = app
        .post(
            "/api/v1/sessions/k/commit",
            ALICE,
            json!({"message": "over ssh"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .post("/api/v1/sessions/k/push", ALICE, json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    assert_eq!(
        git(
            &projects.join("repo.git"),
            &["log", "-1", "--format=%s", "cca/k"]
        ),
        "over ssh"
    );
    // The key file the push used is gone.
    let keys = app.root.path().join("data/git/.keys");
    assert_eq!(std::fs::read_dir(keys).map(|d| d.count()).unwrap_or(0), 0);
}
