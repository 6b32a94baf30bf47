//! Process lifecycle: restart with resume, LRU eviction under the live cap,
//! idle timeout, orphans of a crashed run.

use std::time::Duration;

use crate::helpers::*;

#[actix_web::test]
async fn a_restarted_server_continues_the_conversation() {
    let first = TestApp::spawn().await;
    first.create_session(ALICE, "r").await;
    first.chat_ok(ALICE, "r", "remember KIWI").await;
    let second = first.restart().await;
    let data = second.chat_ok(ALICE, "r", "[[recall]]").await;
    assert!(
        data["content"].as_str().unwrap().contains("remember KIWI"),
        "{data}"
    );
    assert_eq!(second.history(ALICE, "r").await.len(), 4);
}

#[actix_web::test]
async fn the_live_cap_evicts_the_least_recently_used_and_context_survives() {
    let app = TestApp::spawn_with(Options::default().var("MAX_LIVE_SESSIONS", "1")).await;
    app.create_session(ALICE, "one").await;
    app.create_session(ALICE, "two").await;
    app.chat_ok(ALICE, "one", "one says APPLE").await;
    app.chat_ok(ALICE, "two", "two says PEAR").await;
    assert_eq!(live_processes(&app).await, 1);
    let data = app.chat_ok(ALICE, "one", "[[recall]]").await;
    let content = data["content"].as_str().unwrap();
    assert!(
        content.contains("one says APPLE") && !content.contains("PEAR"),
        "{content}"
    );
    assert_eq!(live_processes(&app).await, 1);
}

#[actix_web::test]
async fn idle_processes_are_stopped_and_respawned_on_demand() {
    let app = TestApp::spawn_with(Options::fake().var("SESSION_IDLE_TIMEOUT_SECONDS", "1")).await;
    app.create_session(ALICE, "idle").await;
    app.chat_ok(ALICE, "idle", "hello").await;
    let stopped = eventually(10, || async { live_processes(&app).await == 0 }).await;
    assert!(stopped, "the idle process was stopped");
    let data = app.chat_ok(ALICE, "idle", "again").await;
    assert_eq!(data["content"], "fake reply: again");
}

#[actix_web::test]
async fn orphans_of_a_previous_run_are_killed_at_start() {
    let root = tempfile::tempdir().unwrap();
    let pid_dir = root.path().join("data/run");
    std::fs::create_dir_all(&pid_dir).unwrap();
    // A leftover "CLI" with a tool child, in its own process group.
    use std::os::unix::process::CommandExt;
    let mut orphan = std::process::Command::new("sleep")
        .arg("300")
        .process_group(0)
        .spawn()
        .unwrap();
    let exe = std::fs::read_link(format!("/proc/{}/exe", orphan.id())).unwrap();
    std::fs::write(
        pid_dir.join(format!("cli-{}.pid", orphan.id())),
        exe.to_string_lossy().as_bytes(),
    )
    .unwrap();
    let mut vars = std::collections::BTreeMap::new();
    vars.insert("API_PORT".to_string(), "0".to_string());
    vars.insert("API_KEYS".to_string(), ALICE.to_string());
    vars.insert(
        "DATA_DIR".to_string(),
        root.path().join("data").to_string_lossy().into_owned(),
    );
    vars.insert(
        "APPROVED_DIRECTORY".to_string(),
        root.path().join("ws").to_string_lossy().into_owned(),
    );
    vars.insert(
        "CLAUDE_CLI_PATH".to_string(),
        claude_code_api_testkit::fake_cli_path()
            .to_string_lossy()
            .into_owned(),
    );
    let settings = claude_code_api_core::config::Settings::from_vars(&vars).unwrap();
    let _app = claude_code_api::app::Application::build(settings)
        .await
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(status) = orphan.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the orphan was killed");
    assert!(!status.success());
    assert!(
        std::fs::read_dir(&pid_dir).unwrap().next().is_none(),
        "pid file cleared"
    );
}
