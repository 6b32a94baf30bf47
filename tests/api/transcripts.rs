//! The CLI's transcripts mirrored into the database (`transcript_entries`),
//! and a transcript file that went missing rebuilt from there before the
//! conversation is resumed.

use std::path::PathBuf;

use crate::helpers::*;

/// The session's CLI conversation id and its transcript file.
fn transcript_file(app: &TestApp, session: &str) -> (String, PathBuf) {
    let row = |column: &str| {
        app.query_strings(&format!(
            "SELECT {column} AS s FROM sessions WHERE name = '{session}' AND tenant_id = 'alice'"
        ))
        .remove(0)
    };
    let (cli_id, workspace) = (row("cli_session_id"), row("workspace"));
    let config_dir = app.root.path().join("data/cli-config/alice");
    let path = claude_code_api_core::cli::command::transcript_path(
        &config_dir,
        std::path::Path::new(&workspace),
        &cli_id,
    );
    (cli_id, path)
}

/// The mirrored lines of a conversation, in order.
fn mirrored(app: &TestApp, cli_id: &str) -> Vec<String> {
    app.query_strings(&format!(
        "SELECT line AS s FROM transcript_entries WHERE cli_session_id = '{cli_id}' ORDER BY position"
    ))
}

fn file_lines(path: &PathBuf) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Waits until the table holds exactly the file's lines, in order.
async fn mirrored_as_the_file(app: &TestApp, cli_id: &str, path: &PathBuf) -> bool {
    eventually(15, || async {
        let file = file_lines(path);
        !file.is_empty() && mirrored(app, cli_id) == file
    })
    .await
}

#[actix_web::test]
async fn a_chat_is_mirrored_into_the_database_once_per_entry() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "m").await;
    app.chat_ok(ALICE, "m", "remember 42").await;
    let (cli_id, path) = transcript_file(&app, "m");
    assert!(
        mirrored_as_the_file(&app, &cli_id, &path).await,
        "table {:?}\nfile {:?}",
        mirrored(&app, &cli_id),
        file_lines(&path)
    );
    let first = mirrored(&app, &cli_id);
    assert!(first.iter().any(|l| l.contains("remember 42")), "{first:?}");

    app.chat_ok(ALICE, "m", "and now 43").await;
    assert!(mirrored_as_the_file(&app, &cli_id, &path).await);
    let second = mirrored(&app, &cli_id);
    assert!(second.len() > first.len());
    assert_eq!(second[..first.len()], first[..], "appended, in order");
    // Stored once each: as many rows as distinct keys and as distinct lines.
    let rows = app.query_i64(&format!(
        "SELECT COUNT(*) AS n FROM transcript_entries WHERE cli_session_id = '{cli_id}'"
    ));
    let lines = app.query_i64(&format!(
        "SELECT COUNT(DISTINCT line) AS n FROM transcript_entries WHERE cli_session_id = '{cli_id}'"
    ));
    assert_eq!(rows, second.len() as i64);
    assert_eq!(lines, rows, "no line stored twice");
    // The positions are the order of first appearance, without gaps.
    let max = app.query_i64(&format!(
        "SELECT MAX(position) AS n FROM transcript_entries WHERE cli_session_id = '{cli_id}'"
    ));
    assert_eq!(max + 1, rows);

    // Mirror frames are not events: the stream is numbered 1..n without gaps,
    // and clients see only the kinds they saw before.
    let (count, max_seq) = (
        app.query_i64("SELECT COUNT(*) AS n FROM events"),
        app.query_i64("SELECT MAX(seq) AS n FROM events"),
    );
    assert_eq!(count, max_seq);
    assert_eq!(
        app.query_i64("SELECT COUNT(*) AS n FROM events WHERE payload LIKE '%transcript_mirror%' OR kind LIKE '%mirror%'"),
        0
    );

    // Deleting the session deletes its transcript rows.
    let res = app
        .delete("/api/v1/sessions/m", ALICE)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(
        app.query_i64("SELECT COUNT(*) AS n FROM transcript_entries"),
        0
    );
}

#[actix_web::test]
async fn a_lost_transcript_file_is_rebuilt_and_the_conversation_resumes() {
    let app =
        TestApp::spawn_with(Options::default().var("SESSION_IDLE_TIMEOUT_SECONDS", "1")).await;
    app.create_session(ALICE, "lost").await;
    app.chat_ok(ALICE, "lost", "remember 42").await;
    let (cli_id, path) = transcript_file(&app, "lost");
    // The idle process is retired; what it wrote on the way out is mirrored too.
    let retired = eventually(15, || async { live_processes(&app).await == 0 }).await;
    assert!(retired, "the idle process was retired");
    assert!(mirrored_as_the_file(&app, &cli_id, &path).await);
    let before = file_lines(&path);
    assert!(
        before
            .iter()
            .any(|l| l.starts_with(r#"{"type":"last-prompt""#)),
        "the entry written on the way out is in the file (and so in the table): {before:?}"
    );

    // The file is purged (or the session ran on another node).
    std::fs::remove_file(&path).unwrap();
    let data = app.chat_ok(ALICE, "lost", "[[recall]]").await;
    assert!(
        data["content"].as_str().unwrap().contains("remember 42"),
        "the model saw the earlier turn: {data}"
    );
    // The same conversation goes on in the rebuilt file.
    let after = file_lines(&path);
    assert!(after.len() > before.len(), "{after:?}");
    assert_eq!(after[..before.len()], before[..], "rebuilt line for line");
    let retired = eventually(15, || async { live_processes(&app).await == 0 }).await;
    assert!(retired);
    assert!(mirrored_as_the_file(&app, &cli_id, &path).await);
    assert_eq!(app.history(ALICE, "lost").await.len(), 4);
}

#[actix_web::test]
async fn without_a_mirror_a_lost_transcript_starts_a_new_conversation() {
    let app =
        TestApp::spawn_with(Options::default().var("SESSION_IDLE_TIMEOUT_SECONDS", "1")).await;
    app.create_session(ALICE, "gone").await;
    app.chat_ok(ALICE, "gone", "remember 42").await;
    let (cli_id, path) = transcript_file(&app, "gone");
    let retired = eventually(15, || async { live_processes(&app).await == 0 }).await;
    assert!(retired, "the idle process was retired");
    assert!(mirrored_as_the_file(&app, &cli_id, &path).await);
    // Both the file and its mirror are gone: as before the mirror existed.
    std::fs::remove_file(&path).unwrap();
    app.exec("DELETE FROM transcript_entries");
    let data = app.chat_ok(ALICE, "gone", "[[recall]]").await;
    let content = data["content"].as_str().unwrap();
    assert!(!content.contains("remember 42"), "{content}");
}
