//! The tenant's disk quota (`AGENT_DISK_MAX_MB`, or the tenant's own
//! `disk_max_mb`): tried from inside the agent, which writes with `dd` as
//! fast or as long as it likes, and through the files API.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use serde_json::{json, Value};

use crate::files::{file_part, upload};
use crate::helpers::*;

const MIB: u64 = 1024 * 1024;
/// What the README promises a tenant can keep beyond its quota when its
/// agent writes at this test's pace (1 MiB every 50 ms: 20 MiB/s): what it
/// writes in one check period (100 ms) plus the scheduling slack of a busy
/// test machine.
const OVERSHOOT: u64 = 12 * MIB;

/// Allocated bytes under `path`, each inode once, links not followed: what
/// `du` would say, computed here so the test does not trust the server.
fn on_disk(path: &Path) -> u64 {
    fn walk(path: &Path, seen: &mut std::collections::HashSet<(u64, u64)>) -> u64 {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return 0;
        };
        if !seen.insert((meta.dev(), meta.ino())) {
            return 0;
        }
        let mut total = meta.blocks() * 512;
        if meta.is_dir() {
            for entry in std::fs::read_dir(path).unwrap().flatten() {
                total += walk(&entry.path(), seen);
            }
        }
        total
    }
    walk(path, &mut Default::default())
}

/// What tenant `tenant` keeps: its workspaces and its CLI state.
fn tenant_on_disk(app: &TestApp, tenant: &str) -> u64 {
    on_disk(&app.workspaces().join(tenant))
        + on_disk(&app.root.path().join("data/cli-config").join(tenant))
}

async fn set_quota(app: &TestApp, tenant: &str, mb: Value) -> Value {
    let res = app
        .client
        .patch(app.url(&format!("/api/v1/admin/tenants/{tenant}")))
        .header("X-API-Key", ADMIN)
        .json(&json!({ "disk_max_mb": mb }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["data"].clone()
}

async fn disk_usage(app: &TestApp, key: &str) -> Value {
    get_json(app, "/api/v1/usage", key).await["data"]["disk"].clone()
}

fn written_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('f'))
        .count()
}

#[actix_web::test]
async fn a_turn_writing_past_the_quota_ends_with_its_error_until_files_are_deleted() {
    let app = TestApp::spawn().await;
    let tenant = set_quota(&app, "alice", json!(16)).await;
    assert_eq!(tenant["disk_max_mb"], 16);
    app.create_session(ALICE, "d").await;
    app.create_session(BOB, "b").await;
    let before = disk_usage(&app, ALICE).await;
    assert_eq!(before["limit_bytes"], 16 * MIB, "{before}");
    assert!(
        before["used_bytes"].as_u64().unwrap() < 16 * MIB,
        "{before}"
    );

    // 100 MiB, a mebibyte every 50 ms: far past the quota if nothing stops it.
    let (status, body) = app
        .chat(
            ALICE,
            "d",
            "[[bash]]for i in $(seq 1 100); do dd if=/dev/zero of=f$i bs=1M count=1 status=none; sleep 0.05; done; echo fin''ished[[/bash]]",
        )
        .await;
    assert_eq!(status, 507, "{body}");
    assert_eq!(
        body["type"],
        "urn:claude-code-api:problem:disk-quota-exceeded"
    );
    assert_eq!(body["limit_bytes"], 16 * MIB, "{body}");
    assert!(body["used_bytes"].as_u64().unwrap() >= 16 * MIB, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("disk quota"),
        "{body}"
    );
    // The turn's error event carries the same problem.
    let payloads =
        app.query_strings("SELECT payload AS s FROM events WHERE kind = 'error' ORDER BY seq");
    let event: Value = serde_json::from_str(payloads.last().unwrap()).unwrap();
    assert_eq!(
        event["type"],
        "urn:claude-code-api:problem:disk-quota-exceeded"
    );
    assert_eq!(event["status"], 507);

    // The writer was stopped with its CLI: nothing more arrives, and what
    // is kept passed the quota by no more than the documented bound.
    let ws = app.workspace("alice", "d");
    let files = written_files(&ws);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(written_files(&ws), files, "the writer outlived its turn");
    assert!(files < 100, "the loop ran to its end");
    let kept = tenant_on_disk(&app, "alice");
    assert!(
        (16 * MIB..16 * MIB + OVERSHOOT).contains(&kept),
        "kept {kept} bytes against a quota of {}",
        16 * MIB
    );
    let usage = disk_usage(&app, ALICE).await;
    assert!(usage["used_bytes"].as_u64().unwrap() >= 16 * MIB, "{usage}");
    assert_eq!(usage["limit_bytes"], 16 * MIB);

    // Another tenant works as before.
    let bob = disk_usage(&app, BOB).await;
    assert_eq!(bob["limit_bytes"], 10240 * MIB, "{bob}");
    app.chat_ok(BOB, "b", "[[bash]]echo bob-works[[/bash]]")
        .await;

    // Until files go, nothing more is written: no turn, no job, no upload.
    let (status, body) = app.chat(ALICE, "d", "hello again").await;
    assert_eq!(status, 507, "{body}");
    let (status, body) = app
        .create_job(ALICE, "d", json!({"message": "in the background"}))
        .await;
    assert_eq!(status, 507, "{body}");
    let res = upload(&app, ALICE, "d", "", &[file_part("small.txt", b"tiny")]).await;
    assert_problem(res, 507, "disk-quota-exceeded").await;
    assert!(!ws.join("small.txt").exists());

    // Deleted through the files API: the next turn runs.
    for i in 1..=files {
        let res = app
            .delete(&format!("/api/v1/sessions/d/files/f{i}"), ALICE)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
    }
    let answer = app
        .chat_ok(ALICE, "d", "[[bash]]echo back-to-work[[/bash]]")
        .await;
    assert!(answer["content"].as_str().unwrap().contains("back-to-work"));
    let usage = disk_usage(&app, ALICE).await;
    assert!(usage["used_bytes"].as_u64().unwrap() < 16 * MIB, "{usage}");
}

#[actix_web::test]
async fn no_single_file_grows_past_the_quota_and_sparse_or_linked_files_cost_what_they_hold() {
    let app = TestApp::spawn().await;
    set_quota(&app, "alice", json!(16)).await;
    app.create_session(ALICE, "s").await;
    // Sparse files, hard links and links out of the workspace are not
    // counted as what they seem; one real file as big as it can.
    let (status, body) = app
        .chat(
            ALICE,
            "s",
            "[[bash]]truncate -s 12M sparse; ln -s / root; ln -s /usr usr; \
             fallocate -l 4M real && ln real hard1 && ln real hard2; \
             dd if=/dev/zero of=big bs=1M count=64 status=none; echo status=$?[[/bash]]",
        )
        .await;
    let ws = app.workspace("alice", "s");
    let big = std::fs::metadata(ws.join("big")).unwrap().len();
    assert!(big <= 16 * MIB, "a file grew to {big} bytes");
    // dd was stopped by the file size limit (SIGXFSZ: 128 + 25), or the
    // watchdog stopped the turn first.
    match status {
        200 => assert!(
            body["data"]["content"]
                .as_str()
                .unwrap()
                .contains("status=153"),
            "{body}"
        ),
        507 => assert_eq!(
            body["type"],
            "urn:claude-code-api:problem:disk-quota-exceeded"
        ),
        other => panic!("{other}: {body}"),
    }
    // The blocks of a file just written may be counted by the file system
    // a moment after its length is.
    let counted = eventually(10, || async {
        disk_usage(&app, ALICE).await["used_bytes"]
            .as_u64()
            .unwrap()
            >= 4 * MIB + big
    })
    .await;
    let usage = disk_usage(&app, ALICE).await;
    let used = usage["used_bytes"].as_u64().unwrap();
    assert!(counted, "{usage}, big {big}");
    // 4 MiB counted once, the big file, the CLI's state; nothing of `/`.
    assert!(used < 4 * MIB + big + 4 * MIB, "{usage}");
}

#[actix_web::test]
async fn the_sandbox_tmp_is_bounded() {
    let app = TestApp::spawn_with(Options::default().var("AGENT_TMP_MAX_MB", "8")).await;
    app.create_session(ALICE, "t").await;
    let answer = app
        .chat_ok(
            ALICE,
            "t",
            // The CLI keeps a command's output in /tmp too: free it before echoing.
            "[[bash]]dd if=/dev/zero of=/tmp/fill bs=1M count=64 status=none 2>/dev/null; s=$(stat -c %s /tmp/fill); rm -f /tmp/fill; echo size=$s[[/bash]]",
        )
        .await;
    let out = answer["content"].as_str().unwrap();
    let size: u64 = out
        .split("size=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(size <= 8 * MIB, "/tmp took {size} bytes: {out}");
}

#[actix_web::test]
async fn uploads_count_against_the_quota_and_a_refused_one_stores_nothing() {
    let app = TestApp::spawn().await;
    set_quota(&app, "alice", json!(4)).await;
    app.create_session(ALICE, "u").await;
    let three = vec![7u8; 3 * MIB as usize];
    let res = upload(&app, ALICE, "u", "", &[file_part("one.bin", &three)]).await;
    assert_eq!(res.status(), 201);
    let usage = disk_usage(&app, ALICE).await;
    assert!(usage["used_bytes"].as_u64().unwrap() >= 3 * MIB, "{usage}");

    let res = upload(
        &app,
        ALICE,
        "u",
        "?path=more",
        &[file_part("two.bin", &three)],
    )
    .await;
    let body = assert_problem(res, 507, "disk-quota-exceeded").await;
    assert_eq!(body["limit_bytes"], 4 * MIB);
    let ws = app.workspace("alice", "u");
    let names: Vec<String> = std::fs::read_dir(&ws)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["one.bin"], "a refused upload left something behind");

    // Another tenant's upload is not counted against this one.
    app.create_session(BOB, "u").await;
    let res = upload(&app, BOB, "u", "", &[file_part("two.bin", &three)]).await;
    assert_eq!(res.status(), 201);

    let res = app
        .delete("/api/v1/sessions/u/files/one.bin", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = upload(
        &app,
        ALICE,
        "u",
        "?path=more",
        &[file_part("two.bin", &three)],
    )
    .await;
    assert_eq!(res.status(), 201);
}

#[actix_web::test]
async fn the_quota_is_set_per_tenant_and_measured_for_metrics() {
    let app = TestApp::spawn_with(Options::default().var("METRICS_ADDR", "127.0.0.1:0")).await;
    // A tenant of this test's own: the metrics registry is shared by every
    // server in the test process.
    let tenant = format!("disk-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let res = app
        .post(
            "/api/v1/admin/tenants",
            ADMIN,
            json!({"name": tenant, "disk_max_mb": 64}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["data"]["disk_max_mb"], 64);
    for bad in [json!(0), json!(-1), json!(1_u64 << 31), json!("10")] {
        let res = app
            .client
            .patch(app.url(&format!("/api/v1/admin/tenants/{tenant}")))
            .header("X-API-Key", ADMIN)
            .json(&json!({ "disk_max_mb": bad }))
            .send()
            .await
            .unwrap();
        assert_problem(res, 422, "validation-error").await;
    }
    let res = app
        .post("/api/v1/admin/keys", ADMIN, json!({"tenant": tenant}))
        .send()
        .await
        .unwrap();
    let key = res.json::<Value>().await.unwrap()["data"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    app.create_session(&key, "m").await;
    let res = upload(
        &app,
        &key,
        "m",
        "",
        &[file_part("data.bin", &[1u8; 100_000])],
    )
    .await;
    assert_eq!(res.status(), 201);
    let usage = disk_usage(&app, &key).await;
    assert_eq!(usage["limit_bytes"], 64 * MIB);
    let used = usage["used_bytes"].as_u64().unwrap();
    assert!(used >= 100_000, "{usage}");
    // A member key sees only its own tenant's usage.
    let res = app
        .get(&format!("/api/v1/usage?tenant={tenant}"), ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // An admin naming no tenant (or a path) gets nothing measured.
    for name in ["..", "%2Fusr", "nobody"] {
        let res = app
            .get(&format!("/api/v1/usage?tenant={name}"), ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["data"]["disk"]["used_bytes"], 0, "{name}: {body}");
    }

    let base = app.metrics_base.clone().unwrap();
    let text = app
        .client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}{{tenant=\"{tenant}\"}}")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    assert_eq!(line("cca_disk_quota_bytes"), Some(64 * MIB), "{text}");
    assert_eq!(line("cca_disk_used_bytes"), Some(used), "{text}");
    assert!(!text.contains("tenant=\"nobody\""), "{text}");

    // null: back to the server's default.
    let tenant_row = set_quota(&app, &tenant, Value::Null).await;
    assert!(tenant_row["disk_max_mb"].is_null());
    let usage = disk_usage(&app, &key).await;
    assert_eq!(usage["limit_bytes"], 10240 * MIB);
}

#[actix_web::test]
async fn a_writer_left_running_after_its_turn_is_stopped_too() {
    let app = TestApp::spawn().await;
    set_quota(&app, "alice", json!(16)).await;
    app.create_session(ALICE, "bg").await;
    // The turn ends at once; its detached child writes on.
    app.chat_ok(
        ALICE,
        "bg",
        "[[bash]]setsid nohup sh -c 'for i in $(seq 1 100); do dd if=/dev/zero of=f$i bs=1M count=1 status=none; sleep 0.05; done' > /dev/null 2>&1 & echo started[[/bash]]",
    )
    .await;
    let ws = app.workspace("alice", "bg");
    // Stopped with the idle CLI once the quota is reached.
    let mut last = 0;
    let settled = eventually(20, || {
        let now = written_files(&ws);
        let still = now == last && now >= 16;
        last = now;
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(400)).await;
            still
        }
    })
    .await;
    assert!(settled, "the background writer kept writing: {last} files");
    assert!(last < 100, "the background writer ran to its end");
    let kept = tenant_on_disk(&app, "alice");
    assert!(kept < 16 * MIB + OVERSHOOT, "kept {kept} bytes");
    let (status, body) = app.chat(ALICE, "bg", "and now?").await;
    assert_eq!(status, 507, "{body}");
}
