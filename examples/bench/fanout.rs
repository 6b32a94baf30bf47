//! Fan-out: many clients watching the event streams of many sessions while
//! those sessions run turns. Every event must reach every subscriber of its
//! session; prints how far apart the subscribers of a session received
//! each event, and the bench process's RSS meanwhile. The turns run on the fake
//! CLI (the testkit's), so the figures are the server's, not the CLI's.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;

use claude_code_api_testkit::mock_model::MockModel;

use super::{rss_mib, BenchServer, KEY};

/// (session, event id) → when each of its subscribers got it.
type Arrivals = Arc<Mutex<HashMap<(usize, i64), Vec<Instant>>>>;

pub async fn run(mock: &MockModel, root: &Path, sessions: usize, per_session: usize, turns: usize) {
    let fake = root.join("no-fake-cli");
    let fake = std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.ancestors()
                .map(|dir| dir.join("examples").join("fake-claude"))
                .find(|p| p.is_file())
        })
        .unwrap_or(fake);
    if !fake.is_file() {
        println!(
            "fan-out: skipped (build the fake CLI first: cargo build --release -p claude-code-api-testkit --examples)\n"
        );
        return;
    }
    let fake = fake.to_string_lossy().into_owned();
    let slots = sessions.to_string();
    let server = BenchServer::start_with(
        mock,
        root,
        "off",
        &[
            ("CLAUDE_CLI_PATH", fake.as_str()),
            ("MAX_LIVE_SESSIONS", slots.as_str()),
            ("MAX_RUNNING_TURNS_PER_TENANT", slots.as_str()),
            ("RATE_LIMIT_REQUESTS", "1000000"),
            ("RATE_LIMIT_WINDOW", "1"),
        ],
    )
    .await;
    for s in 0..sessions {
        server.create(&format!("fan-{s}")).await;
    }
    let arrivals: Arrivals = Arc::default();
    let client = reqwest::Client::new();
    let mut watchers = Vec::new();
    for s in 0..sessions {
        for _ in 0..per_session {
            let res = client
                .get(format!("{}/sessions/fan-{s}/events", server.base))
                .header("X-API-Key", KEY)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            let arrivals = arrivals.clone();
            watchers.push(tokio::spawn(async move {
                let mut body = res.bytes_stream();
                let mut pending = String::new();
                while let Some(Ok(chunk)) = body.next().await {
                    let now = Instant::now();
                    pending.push_str(&String::from_utf8_lossy(&chunk));
                    while let Some(end) = pending.find("\n\n") {
                        let frame: String = pending.drain(..end + 2).collect();
                        let id = frame
                            .lines()
                            .find_map(|l| l.strip_prefix("id: "))
                            .and_then(|v| v.trim().parse::<i64>().ok());
                        if let Some(id) = id {
                            let mut seen = arrivals.lock().unwrap();
                            seen.entry((s, id)).or_default().push(now);
                        }
                    }
                }
            }));
        }
    }
    let rss_before = rss_mib();
    // Each session runs its turns one after the other, all sessions at once.
    let answered: Arc<Mutex<usize>> = Arc::default();
    let mut runs = Vec::new();
    for s in 0..sessions {
        let (client, base, answered) = (client.clone(), server.base.clone(), answered.clone());
        runs.push(tokio::spawn(async move {
            for t in 0..turns {
                let res = client
                    .post(format!("{base}/sessions/fan-{s}/chat"))
                    .header("X-API-Key", KEY)
                    .json(&json!({"message": format!("turn {t}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                let _ = res.bytes().await;
                *answered.lock().unwrap() += 1;
            }
        }));
    }
    for run in runs {
        run.await.unwrap();
    }
    let rss_during = rss_mib();
    tokio::time::sleep(Duration::from_secs(1)).await;
    for watcher in &watchers {
        watcher.abort();
    }
    let seen = arrivals.lock().unwrap().clone();
    let events = seen.len();
    let missing: usize = seen
        .values()
        .map(|got| (per_session).saturating_sub(got.len()))
        .sum();
    let mut spread: Vec<f64> = seen
        .values()
        .filter(|got| !got.is_empty())
        .map(|got| {
            let first = got.iter().min().unwrap();
            let last = got.iter().max().unwrap();
            last.duration_since(*first).as_secs_f64() * 1000.0
        })
        .collect();
    spread.sort_by(f64::total_cmp);
    let at = |v: &[f64], q: f64| {
        v.get(((v.len() as f64 * q) as usize).min(v.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "fan-out: {sessions} sessions x {per_session} subscribers = {} streams, {turns} turns per session (fake CLI)",
        sessions * per_session
    );
    println!(
        "  events: {events} distinct, each to {per_session} subscribers; missed deliveries: {missing} (goal 0)"
    );
    println!(
        "  one event, first to last subscriber of its session: p50 {:.2} ms, p99 {:.2} ms (goal p99 < 50 ms)",
        at(&spread, 0.5),
        at(&spread, 0.99)
    );
    let answers = *answered.lock().unwrap();
    println!(
        "  turns answered: {answers}; bench process RSS (server, mock, {} client streams): {rss_before:.1} MiB before the turns, {rss_during:.1} MiB after (goal: server < 100 MB)",
        sessions * per_session
    );
    println!();
}
