//! The session event stream (replay with `Last-Event-ID`, many clients) and
//! interrupting a running turn.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::helpers::*;

/// Reads an SSE response event by event.
pub struct SseReader {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

impl SseReader {
    pub fn new(res: reqwest::Response) -> SseReader {
        assert_eq!(res.status(), 200);
        SseReader {
            body: Box::pin(res.bytes_stream()),
            buf: String::new(),
        }
    }

    /// The next event `(kind, id, data)`, or `None` at the end or after `secs`.
    pub async fn next(&mut self, secs: u64) -> Option<(String, String, Value)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                if let Some(event) = parse_sse(&block).into_iter().next() {
                    return Some(event);
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .ok()??
                .ok()?;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Events until the first of `kind`, then any more until none comes
    /// for `quiet_secs`.
    pub async fn until_then_quiet(
        &mut self,
        kind: &str,
        quiet_secs: u64,
    ) -> Vec<(String, String, Value)> {
        let mut out = self.until(kind, 60).await;
        while let Some(event) = self.next(quiet_secs).await {
            out.push(event);
        }
        out
    }

    /// Events until (and including) the first of `kind`.
    pub async fn until(&mut self, kind: &str, secs: u64) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        while let Some(event) = self.next(secs).await {
            let last = event.0 == kind;
            out.push(event);
            if last {
                return out;
            }
        }
        panic!("no {kind} event; got {out:?}");
    }
}

pub async fn subscribe(app: &TestApp, key: &str, session: &str, after: Option<&str>) -> SseReader {
    let mut req = app.get(&format!("/api/v1/sessions/{session}/events"), key);
    if let Some(after) = after {
        req = req.header("Last-Event-ID", after);
    }
    SseReader::new(req.send().await.unwrap())
}

/// A streamed chat of ALICE's, read to its end in the background.
pub fn stream_chat(
    app: &TestApp,
    session: &str,
    message: &str,
) -> tokio::task::JoinHandle<Vec<(String, String, Value)>> {
    let req = app.post(
        &format!("/api/v1/sessions/{session}/chat/stream"),
        ALICE,
        json!({ "message": message }),
    );
    tokio::spawn(async move { read_sse(req.send().await.unwrap()).await })
}

/// A turn's closing events reach clients only once the turn is stored: a
/// client that sees `job_status` and reads the job and the history at once
/// finds them up to date.
#[actix_web::test]
async fn closing_events_wait_until_the_turn_is_stored() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "st").await;
    app.chat_ok(ALICE, "st", "warm up").await;
    let mut events = subscribe(&app, ALICE, "st", None).await;
    let (status, job) = app
        .create_job(ALICE, "st", json!({"message": "stored [[slow 20 100]]"}))
        .await;
    assert_eq!(status, 202, "{job}");
    let job_id = job["data"]["id"].as_str().unwrap().to_owned();
    events.until("delta", 60).await;

    // The session's writes wait on the lock; the CLI finishes the turn (its
    // last text block is `assistant`), and `done` would follow at once.
    let hold = WriteHold::take(&app.db);
    let while_held = events.until_then_quiet("assistant", 2).await;
    let kinds: Vec<&str> = while_held.iter().map(|e| e.0.as_str()).collect();
    assert!(kinds.contains(&"delta"), "live events go on: {kinds:?}");
    assert!(
        !kinds.contains(&"done") && !kinds.contains(&"job_status"),
        "closing events came before the turn was stored: {kinds:?}"
    );

    drop(hold);
    let rest = events.until("job_status", 30).await;
    let last = rest.last().unwrap();
    assert_eq!(last.2["status"], "done", "{rest:?}");
    assert!(rest.iter().any(|e| e.0 == "done"), "{rest:?}");
    // Read at once, no polling: already stored.
    assert_eq!(app.job(ALICE, "st", &job_id).await["status"], "done");
    let history = app.history(ALICE, "st").await;
    assert_eq!(history.len(), 4, "{history:?}");
    assert!(history[3]["content"].as_str().unwrap().contains("chunk19"));
    // In order, without a gap.
    let ids: Vec<i64> = while_held
        .iter()
        .chain(rest.iter())
        .map(|e| e.1.parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
}

#[actix_web::test]
async fn two_clients_one_resumes_with_last_event_id_and_gets_exactly_the_missed_events() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "ev").await;
    let mut a = subscribe(&app, ALICE, "ev", None).await;
    let mut b = subscribe(&app, ALICE, "ev", None).await;
    let chat = stream_chat(&app, "ev", "count [[slow 20 50]]");
    // B reads a few events, then its connection drops.
    let mut b_seen = Vec::new();
    for _ in 0..4 {
        b_seen.push(b.next(60).await.expect("event for b"));
    }
    drop(b);
    let a_all = a.until("done", 60).await;
    let turn = chat.await.unwrap();
    // The per-turn stream carries the same ids.
    assert_eq!(
        turn.iter().map(|e| e.1.clone()).collect::<Vec<_>>(),
        a_all.iter().map(|e| e.1.clone()).collect::<Vec<_>>()
    );
    assert_eq!(a_all[0].0, "turn_started");
    let ids: Vec<i64> = a_all.iter().map(|e| e.1.parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    assert_eq!(b_seen[..], a_all[..4]);

    // B resumes: exactly the events it missed, then it is live again.
    let last = b_seen.last().unwrap().1.clone();
    let mut b = subscribe(&app, ALICE, "ev", Some(&last)).await;
    let missed = b.until("done", 30).await;
    assert_eq!(missed[..], a_all[4..]);
    // Live after the replay: the next turn arrives on both, once.
    app.chat_ok(ALICE, "ev", "again").await;
    let b_next = b.until("done", 30).await;
    let a_next = a.until("done", 30).await;
    assert_eq!(b_next, a_next);
    assert_eq!(
        b_next[0].1.parse::<i64>().unwrap(),
        ids.last().unwrap() + 1,
        "no gap, no duplicate"
    );
    // `?after=` works the same as the header.
    let res = app
        .get(
            &format!("/api/v1/sessions/ev/events?after={}", ids[ids.len() - 2]),
            ALICE,
        )
        .send()
        .await
        .unwrap();
    let mut c = SseReader::new(res);
    assert_eq!(c.next(10).await.unwrap(), a_all[a_all.len() - 1]);
}

#[actix_web::test]
async fn a_client_resuming_from_purged_events_is_told_to_reset() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "old").await;
    app.chat_ok(ALICE, "old", "one").await;
    app.chat_ok(ALICE, "old", "two").await;
    // Simulate the retention purge of the first turn's events.
    let deleted = app.query_i64("SELECT COUNT(*) AS n FROM events WHERE seq <= 3");
    assert!(deleted > 0);
    app.exec("DELETE FROM events WHERE seq <= 3");
    let mut c = subscribe(&app, ALICE, "old", Some("1")).await;
    let (kind, _, data) = c.next(10).await.unwrap();
    assert_eq!(kind, "reset");
    assert!(data["history_url"]
        .as_str()
        .unwrap()
        .ends_with("/sessions/old/history"));
    let (_, id, _) = c.next(10).await.unwrap();
    assert_eq!(id, "4", "then what is still stored");
}

/// A client that resumes a session deleted and made again under the same
/// name holds an id past the new session's last event: it is told to reset,
/// with the head, and then gets the live events (not a silent stream).
#[actix_web::test]
async fn a_client_resuming_past_the_last_event_is_told_to_reset_then_goes_live() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "again").await;
    let mut old = subscribe(&app, ALICE, "again", None).await;
    app.chat_ok(ALICE, "again", "one").await;
    app.chat_ok(ALICE, "again", "two").await;
    let old_events = old.until("done", 30).await;
    let old_events = [old_events, old.until("done", 30).await].concat();
    let old_last = old_events.last().unwrap().1.clone();
    drop(old);

    let res = app
        .delete("/api/v1/sessions/again", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    app.create_session(ALICE, "again").await;
    app.chat_ok(ALICE, "again", "fresh").await;
    let head = app.query_i64(
        "SELECT MAX(e.seq) AS n FROM events e JOIN sessions s ON s.id = e.session_id \
         WHERE s.name = 'again'",
    );
    assert!(
        head < old_last.parse::<i64>().unwrap(),
        "{head} vs {old_last}"
    );

    let mut c = subscribe(&app, ALICE, "again", Some(&old_last)).await;
    let (kind, id, data) = c.next(10).await.expect("a reset, not silence");
    assert_eq!(kind, "reset", "{data}");
    assert_eq!(data["last_event_id"], head, "{data}");
    assert_eq!(id, head.to_string(), "a reconnect resumes from the head");
    assert!(data["history_url"]
        .as_str()
        .unwrap()
        .ends_with("/sessions/again/history"));
    // Then live: the next turn's events, from the one after the head.
    app.chat_ok(ALICE, "again", "next").await;
    let live = c.until("done", 30).await;
    assert_eq!(live[0].0, "turn_started");
    assert_eq!(live[0].1, (head + 1).to_string());

    // A plain typo far past the head behaves the same.
    let res = app
        .get("/api/v1/sessions/again/events?after=999999", ALICE)
        .send()
        .await
        .unwrap();
    let mut typo = SseReader::new(res);
    let (kind, _, data) = typo.next(10).await.expect("a reset");
    assert_eq!(kind, "reset");
    assert!(data["last_event_id"].as_i64().unwrap() > head, "{data}");
}

#[actix_web::test]
async fn interrupt_during_a_slow_stream_keeps_the_partial_answer_and_runs_the_next_turn() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "int").await;
    // Nothing runs yet.
    let res = app
        .post("/api/v1/sessions/int/interrupt", ALICE, json!({}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 409, "conflict").await;

    let mut events = subscribe(&app, ALICE, "int", None).await;
    let first = {
        let req = app.post(
            "/api/v1/sessions/int/chat",
            ALICE,
            json!({"message": "long [[slow 100 100]]"}),
        );
        tokio::spawn(async move { req.send().await.unwrap() })
    };
    // Wait until the answer streams, queue a second turn, then interrupt.
    loop {
        let (kind, _, _) = events.next(60).await.expect("events");
        if kind == "delta" {
            break;
        }
    }
    let second = {
        let req = app.post(
            "/api/v1/sessions/int/chat",
            ALICE,
            json!({"message": "after"}),
        );
        tokio::spawn(async move { req.send().await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let res = app
        .post("/api/v1/sessions/int/interrupt", ALICE, json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"]["interrupted"], true);

    let res = first.await.unwrap();
    assert_eq!(res.status(), 200, "an interrupted sync chat answers 200");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"]["interrupted"], true);
    let partial = body["data"]["content"].as_str().unwrap().to_string();
    assert!(partial.contains("chunk0"), "{partial}");
    assert!(!partial.contains("chunk99"), "{partial}");
    let interrupted = events.until("turn_interrupted", 30).await;
    assert_eq!(interrupted.last().unwrap().2["interrupted"], true);

    let res = second.await.unwrap();
    assert_eq!(res.status(), 200, "the next queued turn ran");
    let history = app.history(ALICE, "int").await;
    assert_eq!(history.len(), 4, "{history:?}");
    assert_eq!(history[1]["interrupted"], true);
    assert_eq!(history[1]["content"], partial.as_str());
    assert_eq!(history[3]["interrupted"], false);
}

fn sleep_processes(marker: &str) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.trim() == marker {
                n += 1;
            }
        }
    }
    n
}

#[actix_web::test]
async fn interrupt_during_a_bash_command_kills_it() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "ib").await;
    let mut events = subscribe(&app, ALICE, "ib", None).await;
    let chat = stream_chat(
        &app,
        "ib",
        "[[bash]]sleep 31.5; echo done > late.txt[[/bash]]",
    );
    events.until("tool", 60).await;
    assert!(
        eventually(20, || async { sleep_processes("sleep 31.5") > 0 }).await,
        "the command runs"
    );
    let res = app
        .post("/api/v1/sessions/ib/interrupt", ALICE, json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let turn = tokio::time::timeout(Duration::from_secs(30), chat)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(turn.last().unwrap().0, "turn_interrupted", "{turn:?}");
    assert!(
        eventually(10, || async { sleep_processes("sleep 31.5") == 0 }).await,
        "the command's process is gone"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!app.workspace("alice", "ib").join("late.txt").exists());
    // The session takes new turns.
    app.chat_ok(ALICE, "ib", "still there?").await;
}

#[actix_web::test]
async fn other_tenants_get_404_on_every_control_route() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "mine").await;
    let res = app
        .get("/api/v1/sessions/mine/events", BOB)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
    let res = app
        .post("/api/v1/sessions/mine/interrupt", BOB, json!({}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
    let res = app
        .get("/api/v1/sessions/mine/approvals", BOB)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
    let res = app
        .post(
            "/api/v1/sessions/mine/approvals/x",
            BOB,
            json!({"decision": "allow"}),
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
}

/// `?after=0` on a long history streams the stored events a page at a time
/// as the client takes them, rather than loading them all first: events
/// deleted while a slow client is still early in its replay never reach it
/// (loaded whole, all 8000 would), and what it gets has no gap.
#[actix_web::test]
async fn a_replay_reads_stored_events_a_page_at_a_time() {
    // The events are written behind the server's back: no actor (a warm
    // one started at create) may have read the session's numbering first.
    let app = TestApp::spawn_with(Options::fake().var("WARM_ON_CREATE", "false")).await;
    app.create_session(ALICE, "long").await;
    // 8000 stored events of 4 KB each (32 MB).
    let (numbers, filler, now) = if app.db.is_postgres() {
        (
            "SELECT generate_series(1, 8000) AS i",
            "repeat('x', 4000)",
            "CURRENT_TIMESTAMP::timestamp",
        )
    } else {
        (
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 8000) \
             SELECT i FROM n",
            "replace(hex(zeroblob(2000)), '0', 'x')",
            "CURRENT_TIMESTAMP",
        )
    };
    app.exec(&format!(
        "INSERT INTO events (session_id, seq, kind, payload, created_at) \
         SELECT s.id, n.i, 'delta', '{{\"text\":\"' || {filler} || '\"}}', {now} \
         FROM sessions s, ({numbers}) n WHERE s.name = 'long'"
    ));
    let res = app
        .get("/api/v1/sessions/long/events?after=0", ALICE)
        .send()
        .await
        .unwrap();
    let mut c = SseReader::new(res);
    let (kind, id, data) = c.next(30).await.expect("the first event");
    assert_eq!((kind.as_str(), id.as_str()), ("delta", "1"));
    assert_eq!(data["text"].as_str().unwrap().len(), 4000);
    // The client is slow; meanwhile the later half goes.
    app.exec("DELETE FROM events WHERE seq > 4000");
    let mut last = 1;
    while let Some((_, id, _)) = c.next(5).await {
        let id: i64 = id.parse().unwrap();
        assert_eq!(id, last + 1, "no gap, no duplicate");
        last = id;
    }
    assert!(
        (2000..8000).contains(&last),
        "replayed up to {last}: the stored events were loaded before streaming"
    );
}
