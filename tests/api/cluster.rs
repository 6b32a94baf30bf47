//! Many nodes on one PostgreSQL: three server processes (the built binary)
//! on one database, each with its own `DATA_DIR` and port, sharing the
//! workspace root, the mock model and `CLUSTER_SECRET`. Sessions run under
//! leases; any node answers any request; a node that dies or drains hands
//! its sessions over. PostgreSQL only (`TEST_DATABASE_URL`): on SQLite a
//! server runs alone and these tests say so and return.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;
use crate::receiver::Receiver;

const SECRET: &str = "cluster-secret-0123456789";
/// Short beats, so a dead node's leases run out in 3 s.
const HEARTBEAT: &str = "1";

struct Node {
    child: Option<Child>,
    base: String,
    data: PathBuf,
}

impl Node {
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.data.join("server.log")).unwrap_or_default()
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.child.as_ref().expect("running").id()).unwrap()
    }

    /// `kill -9`: no drain, no release; its leases must run out.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for the process to end.
    fn terminate(&mut self) -> std::thread::JoinHandle<()> {
        let mut child = self.child.take().expect("running");
        let pid = i32::try_from(child.id()).unwrap();
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        std::thread::spawn(move || {
            let _ = child.wait();
        })
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Cluster {
    nodes: Vec<Node>,
    client: reqwest::Client,
    mock: MockModel,
    db: TestDb,
    root: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    /// `None` (after saying why) when the suite runs on SQLite.
    async fn start(n: usize) -> Option<Cluster> {
        let root = tempfile::tempdir().unwrap();
        let db = TestDb::create(root.path());
        if !db.is_postgres() {
            eprintln!(
                "cluster tests need PostgreSQL (TEST_DATABASE_URL); a SQLite server runs alone"
            );
            return None;
        }
        let mut cluster = Cluster {
            nodes: Vec::new(),
            // Pooled connections live less than the servers' keep-alive
            // (5 s), so none is reused just as a node closes it.
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .pool_idle_timeout(Duration::from_secs(2))
                .build()
                .unwrap(),
            mock: MockModel::start(),
            db,
            root,
        };
        for i in 0..n {
            cluster.spawn_node(i).await;
        }
        add_admin_key(&cluster.db.url);
        Some(cluster)
    }

    async fn spawn_node(&mut self, i: usize) {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let data = self.root.path().join(format!("node-{i}"));
        std::fs::create_dir_all(&data).unwrap();
        let log = std::fs::File::create(data.join("server.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_claude-code-api"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.root.path().join("home"))
            .env("API_HOST", "127.0.0.1")
            .env("API_PORT", port.to_string())
            .env("API_KEYS", format!("alice:{ALICE},bob:{BOB}"))
            .env("APPROVED_DIRECTORY", self.root.path().join("workspaces"))
            .env("DATA_DIR", &data)
            .env("DATABASE_URL", &self.db.url)
            .env("NODE_ADVERTISE_URL", &base)
            .env("CLUSTER_SECRET", SECRET)
            .env("NODE_HEARTBEAT_SECONDS", HEARTBEAT)
            .env("SHUTDOWN_GRACE_SECONDS", "20")
            .env("CLAUDE_CLI_PATH", real_cli_path())
            .env("CLAUDE_CODE_MAX_RETRIES", "0")
            .env("ANTHROPIC_BASE_URL", &self.mock.base_url)
            .env("ANTHROPIC_API_KEY", "test-key")
            .env("WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")
            .env("WEBHOOK_RETRY_SCHEDULE_SECONDS", "1,1,1")
            .env("WEBHOOK_POLL_INTERVAL_MS", "100")
            .env("RATE_LIMIT_REQUESTS", "1000000")
            // Resolved keys stay a minute unless a change says otherwise:
            // the cluster tests prove that changes say so on every node.
            .env("AUTH_CACHE_SECONDS", "60")
            .env("LOG_LEVEL", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the server binary");
        let node = Node {
            child: Some(child),
            base,
            data,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(res) = self.client.get(node.url("/health")).send().await {
                if res.status().is_success() {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "node {i} does not answer /health; its log:\n{}",
                node.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if i < self.nodes.len() {
            self.nodes[i] = node;
        } else {
            self.nodes.push(node);
        }
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| format!("--- node {i}\n{}", n.log()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn get(&self, node: usize, path: &str, key: &str) -> reqwest::RequestBuilder {
        self.client.get(self.nodes[node].url(path)).bearer_auth(key)
    }

    fn post(&self, node: usize, path: &str, key: &str, body: Value) -> reqwest::RequestBuilder {
        self.client
            .post(self.nodes[node].url(path))
            .bearer_auth(key)
            .json(&body)
    }

    async fn create(&self, node: usize, name: &str) {
        let res = self
            .post(node, "/api/v1/sessions", ALICE, json!({ "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    }

    /// A session created on `node` and talked to there once: it runs there.
    async fn session_on(&self, node: usize, name: &str, message: &str) {
        self.create(node, name).await;
        let (status, answer) = self.chat(node, name, message).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(self.owner(name).await, Some(node));
    }

    async fn chat(&self, node: usize, session: &str, message: &str) -> (u16, Value) {
        let res = self
            .post(
                node,
                &format!("/api/v1/sessions/{session}/chat"),
                ALICE,
                json!({ "message": message }),
            )
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// A chat sent to `node` in the background: its status, and when its
    /// answer came.
    fn spawn_chat(
        &self,
        node: usize,
        session: &str,
        message: &str,
    ) -> tokio::task::JoinHandle<(u16, Instant)> {
        let request = self
            .post(
                node,
                &format!("/api/v1/sessions/{session}/chat"),
                ALICE,
                json!({ "message": message }),
            )
            .send();
        tokio::spawn(async move {
            let status = request.await.unwrap().status().as_u16();
            (status, Instant::now())
        })
    }

    fn query_i64(&self, sql: &str) -> i64 {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = diesel::PgConnection::establish(&self.db.url).unwrap();
        diesel::sql_query(sql)
            .get_result::<Row>(&mut conn)
            .unwrap()
            .n
    }

    fn exec(&self, sql: &str) {
        use diesel::prelude::*;
        let mut conn = diesel::PgConnection::establish(&self.db.url).unwrap();
        diesel::sql_query(sql).execute(&mut conn).unwrap();
    }

    /// The instance id of node `i` (from its own `/health`).
    async fn instance_id(&self, node: usize) -> String {
        let health: Value = self
            .client
            .get(self.nodes[node].url("/health"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        health["cluster"]["instance_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Which node holds the session's live lease.
    async fn owner(&self, session: &str) -> Option<usize> {
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].child.is_some())
            .collect();
        let ids: Vec<String> =
            futures_util::future::join_all(running.iter().map(|i| self.instance_id(*i))).await;
        for (&i, id) in running.iter().zip(&ids) {
            let held = self.query_i64(&format!(
                "SELECT count(*) AS n FROM sessions WHERE name = '{session}' AND owner_instance = '{id}' \
                 AND lease_until > (now() AT TIME ZONE 'UTC')"
            ));
            if held == 1 {
                return Some(i);
            }
        }
        None
    }
}

fn text_of(answer: &Value) -> String {
    answer["data"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[actix_web::test]
async fn every_route_works_through_any_node() {
    let Some(c) = Cluster::start(3).await else {
        return;
    };
    // Three live nodes, each seeing the others' marks in the shared root.
    let nodes: Value = c
        .get(1, "/api/v1/admin/nodes", ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = nodes["data"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{nodes}");
    assert!(listed
        .iter()
        .all(|n| n["alive"] == true && n["draining"] == false));
    assert_eq!(listed.iter().filter(|n| n["this_node"] == true).count(), 1);
    let health: Value = c
        .get(2, "/health", ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["cluster"]["mode"], "cluster");
    assert_eq!(
        health["checks"]["workspace_root"]["status"], "ok",
        "{health}"
    );
    assert_eq!(health["status"], "ok", "{health}");

    // Created on node 0, it runs there; nodes 1 and 2 forward to it.
    c.create(0, "shared").await;
    let (status, answer) = c.chat(1, "shared", "first via node one").await;
    assert_eq!(status, 200, "{answer}\n{}", c.logs());
    assert!(text_of(&answer).contains("first via node one"), "{answer}");
    let owner = c.owner("shared").await;
    let (status, answer) = c.chat(2, "shared", "[[recall]]").await;
    assert_eq!(status, 200, "{answer}");
    assert!(text_of(&answer).contains("first via node one"), "{answer}");
    assert_eq!(
        c.owner("shared").await,
        owner,
        "the session stayed where it ran"
    );
    let listed: Value = c
        .get(1, "/api/v1/admin/nodes", ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let held: i64 = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["sessions"].as_i64().unwrap())
        .sum();
    assert_eq!(held, 1, "{listed}");

    // History, the session, files and jobs: the same from every node.
    for node in 0..3 {
        let history: Value = c
            .get(node, "/api/v1/sessions/shared/history", ALICE)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(history["data"].as_array().unwrap().len(), 4, "{history}");
        let session: Value = c
            .get(node, "/api/v1/sessions/shared", ALICE)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(session["data"]["turns"], 2, "{session}");
    }
    let body =
        crate::files::multipart(&[crate::files::file_part("note.txt", b"hello from node two")]);
    let res = c
        .client
        .post(c.nodes[2].url("/api/v1/sessions/shared/files"))
        .bearer_auth(ALICE)
        .header("content-type", crate::files::multipart_type())
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    let body = c
        .get(1, "/api/v1/sessions/shared/files/note.txt", ALICE)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "hello from node two");

    let res = c
        .post(
            1,
            "/api/v1/sessions/shared/jobs",
            ALICE,
            json!({ "message": "a job via node one" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    let job: Value = res.json().await.unwrap();
    let id = job["data"]["id"].as_str().unwrap().to_owned();
    let done = eventually(60, || async {
        let job: Value = c
            .get(2, &format!("/api/v1/sessions/shared/jobs/{id}"), ALICE)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        job["data"]["status"] == "done"
    })
    .await;
    assert!(done, "the job completes\n{}", c.logs());

    // The OpenAI surface names its session in a header or the body: it is
    // forwarded all the same, and the turn joins the same conversation.
    let owner_before = c.owner("shared").await;
    let other = (0..3).find(|n| Some(*n) != owner_before).unwrap();
    let res = c
        .post(
            other,
            "/v1/chat/completions",
            ALICE,
            json!({ "model": "claude-code", "user": "shared",
                    "messages": [{ "role": "user", "content": "[[recall]]" }] }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let completion: Value = res.json().await.unwrap();
    let content = completion["choices"][0]["message"]["content"]
        .as_str()
        .unwrap();
    assert!(content.contains("first via node one"), "{completion}");
    assert_eq!(c.owner("shared").await, owner_before);

    // Control routes, through a node that does not run the session.
    let res = c
        .get(2, "/api/v1/sessions/shared/approvals", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = c
        .post(2, "/api/v1/sessions/shared/interrupt", ALICE, json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409, "no turn runs on its node");
    let res = c
        .get(1, "/api/v1/sessions/shared/archive", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(!res.bytes().await.unwrap().is_empty());

    // Another tenant's session is a 404 on every node.
    for node in 0..3 {
        let res = c
            .get(node, "/api/v1/sessions/shared", BOB)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
    }
    // A cluster header without a valid signature is just ignored: the
    // request is forwarded (and counted) as any other.
    let res = c
        .get(2, "/api/v1/sessions/shared", ALICE)
        .header("x-cluster-auth", "1.deadbeef")
        .header("x-cluster-from", "someone")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("ratelimit-limit"));

    // Deleted through one node, gone on all.
    let res = c
        .client
        .delete(c.nodes[2].url("/api/v1/sessions/shared"))
        .bearer_auth(ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    for node in 0..3 {
        let res = c
            .get(node, "/api/v1/sessions/shared", ALICE)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
    }
    assert_eq!(c.owner("shared").await, None);
}

#[actix_web::test]
async fn a_stream_on_one_node_sees_a_turn_running_on_another() {
    let Some(mut c) = Cluster::start(2).await else {
        return;
    };
    c.session_on(0, "watched", "warm up").await;

    // Subscribed through node 1; the turn runs on node 0. Then node 0 dies,
    // the session moves to node 1, and the same stream goes on.
    let stream = c
        .get(1, "/api/v1/sessions/watched/events", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(
        stream.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let reader = tokio::spawn(async move {
        let mut stream = stream;
        let mut text = String::new();
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_secs(5), stream.chunk()).await {
                Ok(Ok(Some(chunk))) => {
                    text.push_str(&String::from_utf8_lossy(&chunk));
                    let _ = seen_tx.send(text.clone());
                    if text.matches("event: done").count() >= 2 {
                        break;
                    }
                }
                Ok(_) => break,
                Err(_) => {}
            }
        }
        text
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let turn = c.spawn_chat(0, "watched", "[[slow 10 200]]");
    // Node 1's list of sessions shows the turn running on node 0.
    let listed_running = eventually(10, || async {
        let list: Value = c
            .get(1, "/api/v1/sessions", ALICE)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "watched" && s["status"] == "running")
    })
    .await;
    assert!(listed_running, "node 1 lists the session as running");
    assert_eq!(turn.await.unwrap().0, 200);
    // The stream on node 1 carried node 0's turn.
    let first_done = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(text) = seen_rx.recv().await {
            if text.contains("event: done") {
                return text;
            }
        }
        String::new()
    })
    .await
    .unwrap();
    assert!(first_done.contains("chunk9"), "{first_done}");

    c.nodes[0].kill();
    let (status, answer) = c.chat(1, "watched", "[[recall]]").await;
    assert_eq!(status, 200, "{answer}\n{}", c.logs());
    assert_eq!(c.owner("watched").await, Some(1));

    let text = reader.await.unwrap();
    let events = parse_sse(&text);
    assert_eq!(
        events.iter().filter(|(kind, _, _)| kind == "done").count(),
        2,
        "both turns, on two nodes, on one stream:\n{text}"
    );
    assert!(text.contains("Prompts so far"), "{text}");
    // Ids in order, no gap, no repeat, across the change of node.
    let ids: Vec<i64> = events
        .iter()
        .filter_map(|(_, id, _)| id.parse().ok())
        .collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    // The stored numbering agrees.
    let stored = c.query_i64(
        "SELECT max(e.seq) AS n FROM events e JOIN sessions s ON s.id = e.session_id WHERE s.name = 'watched'",
    );
    assert_eq!(ids.last().copied(), Some(stored));

    // Resuming from an id in the middle (now on the session's new node):
    // exactly the events after it.
    let middle = ids[ids.len() / 2];
    let res = c
        .get(1, "/api/v1/sessions/watched/events", ALICE)
        .header("Last-Event-ID", middle.to_string())
        .send()
        .await
        .unwrap();
    let mut resumed = res;
    let mut text = String::new();
    while let Ok(Ok(Some(chunk))) =
        tokio::time::timeout(Duration::from_secs(2), resumed.chunk()).await
    {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let again: Vec<i64> = parse_sse(&text)
        .iter()
        .filter_map(|(_, id, _)| id.parse().ok())
        .collect();
    assert_eq!(
        again,
        ids.iter()
            .copied()
            .filter(|id| *id > middle)
            .collect::<Vec<_>>()
    );
}

#[actix_web::test]
async fn a_node_whose_lease_was_taken_cannot_write() {
    let Some(c) = Cluster::start(2).await else {
        return;
    };
    c.session_on(0, "contested", "before").await;
    let turns_before = c.query_i64("SELECT turns AS n FROM sessions WHERE name = 'contested'");

    // A slow turn starts on node 0; halfway, node 1 takes the lease (as
    // it would after node 0 was paused past its lease).
    let slow = c.spawn_chat(0, "contested", "[[slow 20 150]]");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let intruder = c.instance_id(1).await;
    c.exec(&format!(
        "UPDATE sessions SET owner_instance = '{intruder}', owner_epoch = owner_epoch + 1, \
         lease_until = (now() AT TIME ZONE 'UTC') + interval '1 hour' WHERE name = 'contested'"
    ));
    let events_at_takeover =
        c.query_i64("SELECT count(*) AS n FROM events e JOIN sessions s ON s.id = e.session_id WHERE s.name = 'contested'");
    let (status, _) = slow.await.unwrap();
    assert_ne!(
        status, 200,
        "the turn of a node that lost its lease is not answered as stored"
    );

    // Nothing node 0 did after losing the lease reached the database.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let turns_after = c.query_i64("SELECT turns AS n FROM sessions WHERE name = 'contested'");
    assert_eq!(
        turns_after, turns_before,
        "no turn record from the old holder"
    );
    let events_after =
        c.query_i64("SELECT count(*) AS n FROM events e JOIN sessions s ON s.id = e.session_id WHERE s.name = 'contested'");
    assert_eq!(
        events_after, events_at_takeover,
        "no event from the old holder"
    );
    assert!(
        c.nodes[0]
            .log()
            .contains("another node holds this session now")
            || c.nodes[0].log().contains("held by another instance"),
        "node 0 noticed:\n{}",
        c.nodes[0].log()
    );
    // The new holder runs it from here, through either node.
    let (status, answer) = c.chat(0, "contested", "after the takeover").await;
    assert_eq!(status, 200, "{answer}\n{}", c.logs());
    assert_eq!(c.owner("contested").await, Some(1));
}

#[actix_web::test]
async fn jobs_spread_over_the_nodes_each_run_once_and_notify_once() {
    let Some(c) = Cluster::start(3).await else {
        return;
    };
    let receiver = Receiver::start(&[200]);
    let sessions = 12;
    let jobs = 200;
    for s in 0..sessions {
        c.create(s % 3, &format!("batch-{s}")).await;
    }
    let mut ids = Vec::new();
    for j in 0..jobs {
        let session = format!("batch-{}", j % sessions);
        let res = c
            .post(
                (j * 7) % 3,
                &format!("/api/v1/sessions/{session}/jobs"),
                ALICE,
                json!({ "message": format!("job number {j}"), "webhook_url": receiver.url }),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
        let body: Value = res.json().await.unwrap();
        ids.push(body["data"]["id"].as_str().unwrap().to_owned());
    }
    let all_done = eventually(300, || async {
        c.query_i64("SELECT count(*) AS n FROM jobs WHERE status = 'done'") == jobs as i64
    })
    .await;
    assert!(
        all_done,
        "{} of {jobs} completed\n{}",
        c.query_i64("SELECT count(*) AS n FROM jobs WHERE status = 'done'"),
        c.logs()
    );
    assert_eq!(
        c.query_i64("SELECT count(*) AS n FROM jobs WHERE attempts <> 1"),
        0,
        "each job ran once"
    );
    let delivered = eventually(60, || async { receiver.received().len() >= jobs }).await;
    assert!(delivered, "{} webhooks", receiver.received().len());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut per_job: HashMap<String, usize> = HashMap::new();
    for r in receiver.received() {
        let body = r.json();
        *per_job
            .entry(body["job"]["id"].as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    assert_eq!(per_job.len(), jobs, "every job notified");
    assert!(ids.iter().all(|id| per_job.contains_key(id)));
    assert!(
        per_job.values().all(|n| *n == 1),
        "each event delivered once: {per_job:?}"
    );
    assert_eq!(
        c.query_i64("SELECT count(*) AS n FROM webhook_attempts"),
        jobs as i64,
        "one attempt per delivery"
    );
}

#[actix_web::test]
async fn kill_9_of_the_owner_mid_job_lets_another_node_finish_it() {
    let Some(mut c) = Cluster::start(2).await else {
        return;
    };
    let receiver = Receiver::start(&[200]);
    c.session_on(0, "survivor", "remember the word zebra").await;
    let res = c
        .post(
            0,
            "/api/v1/sessions/survivor/jobs",
            ALICE,
            json!({ "message": "[[slow 40 100]]", "webhook_url": receiver.url }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let job: Value = res.json().await.unwrap();
    let id = job["data"]["id"].as_str().unwrap().to_owned();
    let running = eventually(30, || async {
        c.query_i64(&format!(
            "SELECT count(*) AS n FROM jobs WHERE id = '{id}' AND status = 'running'"
        )) == 1
    })
    .await;
    assert!(running);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = c.nodes[0].pid();
    c.nodes[0].kill();

    // Node 1 notices the lease ran out, takes the session and runs the job
    // again (a second attempt); its webhook goes out once.
    let finished = eventually(90, || async {
        c.query_i64(&format!(
            "SELECT count(*) AS n FROM jobs WHERE id = '{id}' AND status = 'done'"
        )) == 1
    })
    .await;
    assert!(finished, "another node finished the job\n{}", c.logs());
    assert_eq!(
        c.query_i64(&format!("SELECT attempts AS n FROM jobs WHERE id = '{id}'")),
        2
    );
    assert_eq!(c.owner("survivor").await, Some(1));
    // The turn cut off with node 0 ended `interrupted` on the stream.
    assert_eq!(
        c.query_i64(
            "SELECT count(*) AS n FROM events e JOIN sessions s ON s.id = e.session_id \
             WHERE s.name = 'survivor' AND e.kind = 'turn_interrupted'"
        ),
        1
    );
    let delivered = eventually(30, || async { !receiver.received().is_empty() }).await;
    assert!(delivered);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.received().len(), 1);
    // The conversation goes on on node 1, with what was said on node 0.
    let (status, answer) = c.chat(1, "survivor", "[[recall]]").await;
    assert_eq!(status, 200, "{answer}\n{}", c.logs());
    assert!(
        text_of(&answer).contains("remember the word zebra"),
        "the context survived the node: {answer}"
    );
}

#[actix_web::test]
async fn sigterm_drain_hands_sessions_over_without_a_failed_request() {
    let Some(mut c) = Cluster::start(2).await else {
        return;
    };
    c.session_on(0, "moving", "remember the word walrus").await;

    // A client talks to node 1 the whole time, until node 0 has stopped
    // (12 messages at least, 300 at most).
    let client = c.client.clone();
    let url = c.nodes[1].url("/api/v1/sessions/moving/chat");
    let talking = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let still_talking = talking.clone();
    let talker = tokio::spawn(async move {
        let mut statuses = Vec::new();
        for i in 0..300 {
            if i >= 12 && !still_talking.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            let res = client
                .post(&url)
                .bearer_auth(ALICE)
                .json(&json!({ "message": format!("[[slow 3 100]] message {i}") }))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let body = res.text().await.unwrap_or_default();
            statuses.push((status, body));
        }
        statuses
    });
    // Two more sessions on node 0: one idle, one in a long turn when the
    // SIGTERM comes. The idle one is handed over at once; the long turn
    // finishes on node 0 within the grace period.
    c.create(0, "idle-one").await;
    c.create(0, "busy-one").await;
    let (status, _) = c.chat(0, "idle-one", "hello").await;
    assert_eq!(status, 200);
    assert_eq!(c.owner("idle-one").await, Some(0));
    // 9 s: long enough that the handover of the idle one, even on a loaded
    // machine, comes first; well inside the 20 s grace period.
    let busy = c.spawn_chat(0, "busy-one", "[[slow 60 150]]");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stopped = c.nodes[0].terminate();
    let released = eventually(10, || async {
        c.query_i64(
            "SELECT count(*) AS n FROM sessions WHERE name = 'idle-one' AND owner_instance IS NULL",
        ) == 1
    })
    .await;
    let released_at = Instant::now();
    assert!(released, "the idle session was handed over\n{}", c.logs());
    let (busy_status, busy_done_at) = busy.await.unwrap();
    assert_eq!(
        busy_status,
        200,
        "the long turn finished within the grace period\n{}",
        c.logs()
    );
    assert!(
        released_at < busy_done_at,
        "the idle session went back before the long turn ended ({:?} later)\n{}",
        released_at - busy_done_at,
        c.logs()
    );
    tokio::task::spawn_blocking(move || stopped.join().unwrap())
        .await
        .unwrap();
    talking.store(false, std::sync::atomic::Ordering::SeqCst);
    let statuses = talker.await.unwrap();
    for (status, body) in &statuses {
        assert_eq!(*status, 200, "every request answered: {body}\n{}", c.logs());
    }
    assert_eq!(c.owner("moving").await, Some(1), "{}", c.logs());
    let (status, answer) = c.chat(1, "moving", "[[recall]]").await;
    assert_eq!(status, 200, "{answer}");
    assert!(text_of(&answer).contains("walrus"), "{answer}");
    let _ = Path::new("");
}

#[actix_web::test]
async fn a_key_revoked_on_one_node_is_refused_by_every_node_within_a_second() {
    let Some(c) = Cluster::start(3).await else {
        return;
    };
    let created: Value = c
        .post(
            0,
            "/api/v1/admin/keys",
            ADMIN,
            json!({"tenant": "alice", "label": "everywhere"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["data"]["key"].as_str().unwrap().to_owned();
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    // Every node has resolved (and cached) it.
    for node in 0..3 {
        let res = c.get(node, "/api/v1/sessions", &key).send().await.unwrap();
        assert_eq!(res.status(), 200, "node {node}");
    }
    let res = c
        .post(
            1,
            &format!("/api/v1/admin/keys/{id}/revoke"),
            ADMIN,
            json!({}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let revoked = Instant::now();
    for node in 0..3 {
        loop {
            let res = c.get(node, "/api/v1/sessions", &key).send().await.unwrap();
            if res.status() == 401 {
                break;
            }
            assert!(
                revoked.elapsed() < Duration::from_secs(1),
                "node {node} still serves the revoked key after {:?}\n{}",
                revoked.elapsed(),
                c.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // And a key made on one node works on the others at once.
    let made: Value = c
        .post(2, "/api/v1/admin/keys", ADMIN, json!({"tenant": "bob"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fresh = made["data"]["key"].as_str().unwrap();
    for node in 0..3 {
        let res = c.get(node, "/api/v1/sessions", fresh).send().await.unwrap();
        assert_eq!(res.status(), 200, "node {node}");
    }
}

#[actix_web::test]
async fn three_nodes_fire_each_due_time_of_a_schedule_once() {
    let Some(c) = Cluster::start(3).await else {
        return;
    };
    c.session_on(0, "tick", "hello").await;
    // Ten schedules due every second, sent to different nodes: whichever
    // node claims a due time, it runs once.
    for i in 0..10 {
        let res = c
            .post(
                i % 3,
                "/api/v1/schedules",
                ALICE,
                json!({
                    "name": format!("every-second-{i}"),
                    "every": "1s",
                    "overlap": "allow",
                    "job": {"session": "tick", "message": format!("tick {i}")},
                }),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.query_i64("SELECT COUNT(*) AS n FROM schedule_runs") < 200 {
        assert!(Instant::now() < deadline, "200 runs within a minute");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.exec("UPDATE schedules SET paused = TRUE, next_run_at = NULL");
    // Runs claimed by a node the session does not run on wait for its node.
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.query_i64("SELECT COUNT(*) AS n FROM schedule_runs WHERE status <> 'started'") > 0 {
        assert!(
            Instant::now() < deadline,
            "every run starts on the session's node"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let runs = c.query_i64("SELECT COUNT(*) AS n FROM schedule_runs");
    assert!(runs >= 200);
    assert_eq!(
        c.query_i64(
            "SELECT COUNT(*) AS n FROM (SELECT DISTINCT schedule_id, due_at FROM schedule_runs) d"
        ),
        runs,
        "no due time claimed twice"
    );
    assert_eq!(
        c.query_i64("SELECT COUNT(*) AS n FROM schedule_runs WHERE status <> 'started'"),
        0,
        "every run started"
    );
    assert_eq!(
        c.query_i64(
            "SELECT COUNT(*) AS n FROM jobs WHERE id IN (SELECT job_id FROM schedule_runs)"
        ),
        runs,
        "one job per run"
    );
    assert_eq!(
        c.query_i64("SELECT COUNT(*) AS n FROM jobs"),
        runs,
        "and no other job"
    );
    // No gaps: each schedule's due times are one second apart.
    assert_eq!(
        c.query_i64(
            "SELECT COUNT(*) AS n FROM (SELECT schedule_id, \
             EXTRACT(EPOCH FROM MAX(due_at) - MIN(due_at))::BIGINT + 1 - COUNT(*) AS gap \
             FROM schedule_runs GROUP BY schedule_id) g WHERE gap <> 0"
        ),
        0,
        "no due time skipped"
    );
}
