//! Cluster benchmark against the mock model (not a test): the server binary
//! as separate processes (`serve`) on one PostgreSQL database, driven over
//! HTTP with the real CLI.
//!
//! The same mixed load runs twice: (a) against one node on PostgreSQL
//! (single mode: no `NODE_ADVERTISE_URL`), (b) against three cluster nodes,
//! requests spread round-robin over the nodes, so about two thirds of them
//! reach a node that does not hold the session and are forwarded to the one
//! that does. The load: SESSIONS sessions created up front (spread over the
//! nodes) and given one turn each; then REQUESTS requests from 8 client
//! tasks, a fixed seeded mix of warm chat turns (30 %), GET the session
//! (30 %), GET its history (30 %) and a job submitted and polled until done
//! (10 %). Both runs have the same limits (raised so that neither the
//! tenant's running-turn cap nor the live-process cap shapes the result),
//! the sandbox off.
//!
//! Prints for each run the throughput (requests/s), p50 and p99 latency per
//! request kind and the failures; then the forwarding overhead: a cheap read
//! (GET /api/v1/sessions/{name}) sent many times in a row to the node
//! holding the session's lease and, paired with it, to one that does not
//! (forwarded); p50/p99 of both and the difference (goal: forwarding adds
//! under 2 ms p50 on loopback), with the same read on the single node.
//!
//! Run: `cargo build --release && cargo run --release --example cluster_bench --
//! [REQUESTS] [SESSIONS] [READS]` (defaults 600, 9 and 500). The server
//! binary is found next to this example's build directory
//! (`target/release/claude-code-api`) or at `SERVER_BIN`. PostgreSQL:
//! `BENCH_DATABASE_URL` (else `TEST_DATABASE_URL`, else
//! `postgres://postgres@127.0.0.1:5432/test`); each run makes a fresh
//! database there and drops it at the end. Node logs are kept when
//! `BENCH_KEEP_LOGS` names a folder.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use claude_code_api_testkit::mock_model::MockModel;
use diesel::prelude::*;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const KEY: &str = "bench-key-0123456789";
const SECRET: &str = "cluster-bench-secret-0123456789";
const CLIENTS: usize = 8;

fn cli_path() -> PathBuf {
    std::env::var("CLAUDE_CLI_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join(".claude-cli/node_modules/.bin/claude")
        })
}

/// The server binary: `SERVER_BIN`, else next to this example's build
/// directory (`target/<profile>/examples/..`).
fn server_bin() -> PathBuf {
    if let Ok(p) = std::env::var("SERVER_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    profile_dir.join("claude-code-api")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A database of its own for one run, dropped at the end.
struct BenchDb {
    admin_url: String,
    name: String,
    url: String,
}

impl BenchDb {
    fn create() -> BenchDb {
        let admin_url = std::env::var("BENCH_DATABASE_URL")
            .or_else(|_| std::env::var("TEST_DATABASE_URL"))
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into());
        let name = format!("cca_bench_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::establish(&admin_url)
            .unwrap_or_else(|e| panic!("cannot connect to PostgreSQL at {admin_url}: {e}"));
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .expect("create the benchmark database");
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b)
            .unwrap_or(&admin_url);
        BenchDb {
            url: format!("{base}/{name}"),
            admin_url,
            name,
        }
    }

    fn connect(&self) -> PgConnection {
        PgConnection::establish(&self.url).unwrap()
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&self.admin_url) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn);
        }
    }
}

/// One server process.
struct Node {
    child: Option<Child>,
    base: String,
    log: PathBuf,
}

impl Node {
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM (the node drains and stops its CLI processes), then waits;
    /// `kill -9` after 15 s.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = i32::try_from(child.id()).unwrap();
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// N nodes on one database: a cluster when `clustered`, else one node in
/// single mode.
struct Nodes {
    nodes: Vec<Node>,
    client: reqwest::Client,
    // Dropped after the nodes (fields drop in order).
    db: BenchDb,
    root: tempfile::TempDir,
}

impl Nodes {
    async fn start(n: usize, clustered: bool, mock: &MockModel, sessions: usize) -> Nodes {
        let bin = server_bin();
        assert!(
            bin.exists(),
            "the server binary is missing at {} (build it first: `cargo build --release`, or set SERVER_BIN)",
            bin.display()
        );
        let root = tempfile::tempdir().unwrap();
        let db = BenchDb::create();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        let mut nodes = Vec::new();
        for i in 0..n {
            let port = free_port();
            let base = format!("http://127.0.0.1:{port}");
            let data = root.path().join(format!("node-{i}"));
            std::fs::create_dir_all(&data).unwrap();
            let log = data.join("server.log");
            let mut cmd = Command::new(&bin);
            cmd.arg("serve")
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("HOME", root.path().join("home"))
                .env("API_HOST", "127.0.0.1")
                .env("API_PORT", port.to_string())
                .env("API_KEYS", format!("bench:{KEY}"))
                .env("APPROVED_DIRECTORY", root.path().join("workspaces"))
                .env("DATA_DIR", &data)
                .env("DATABASE_URL", &db.url)
                .env("AGENT_SANDBOX", "off")
                .env("SHUTDOWN_GRACE_SECONDS", "5")
                .env("CLAUDE_CLI_PATH", cli_path())
                .env("CLAUDE_CODE_MAX_RETRIES", "0")
                .env("ANTHROPIC_BASE_URL", &mock.base_url)
                .env("ANTHROPIC_API_KEY", "test-key")
                .env("RATE_LIMIT_REQUESTS", "1000000")
                // Every session keeps its process on one node alone, and
                // every client task may have a turn running, in both modes
                // (a cluster node gets a third of the tenant's turns).
                .env("MAX_LIVE_SESSIONS", (sessions + 4).to_string())
                .env("MAX_RUNNING_TURNS_PER_TENANT", (3 * CLIENTS).to_string())
                .env("LOG_LEVEL", "info")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap());
            if clustered {
                cmd.env("NODE_ADVERTISE_URL", &base)
                    .env("CLUSTER_SECRET", SECRET);
            }
            let child = cmd.spawn().expect("start the server binary");
            let node = Node {
                child: Some(child),
                base,
                log,
            };
            // One after the other, as the first start migrates the database.
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Ok(res) = client.get(node.url("/health")).send().await {
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
            nodes.push(node);
        }
        if clustered {
            // Every node has seen the others' heartbeats (the limits' shares).
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let health: Value = client
                    .get(nodes[0].url("/health"))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap_or(Value::Null);
                let alive = health["cluster"]["nodes"]
                    .as_array()
                    .map_or(0, |a| a.iter().filter(|n| n["alive"] == true).count());
                if alive == n || Instant::now() > deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        Nodes {
            nodes,
            client,
            db,
            root,
        }
    }

    fn get(&self, node: usize, path: &str) -> reqwest::RequestBuilder {
        self.client
            .get(self.nodes[node].url(path))
            .header("X-API-Key", KEY)
    }

    fn post(&self, node: usize, path: &str, body: Value) -> reqwest::RequestBuilder {
        self.client
            .post(self.nodes[node].url(path))
            .header("X-API-Key", KEY)
            .json(&body)
    }

    /// The instance id of node `i`, from its `/health`.
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
            .unwrap_or_default()
            .to_owned()
    }

    /// The node holding the session's live lease.
    async fn owner(&self, session: &str) -> Option<usize> {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            owner_instance: Option<String>,
        }
        let mut conn = self.db.connect();
        let row: Row = diesel::sql_query(format!(
            "SELECT owner_instance FROM sessions WHERE name = '{session}' \
             AND lease_until > (now() AT TIME ZONE 'UTC')"
        ))
        .get_result(&mut conn)
        .ok()?;
        let held = row.owner_instance?;
        for i in 0..self.nodes.len() {
            if self.instance_id(i).await == held {
                return Some(i);
            }
        }
        None
    }

    /// Node logs' warnings and errors.
    fn log_problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            for line in node.log().lines() {
                // The sandbox is off on purpose; its start-up warning says so.
                let expected = line.contains("NOT confined");
                if (line.contains("WARN") || line.contains("ERROR")) && !expected {
                    out.push(format!("node {i}: {line}"));
                }
            }
        }
        out
    }

    fn keep_logs(&self, label: &str) {
        let Ok(dir) = std::env::var("BENCH_KEEP_LOGS") else {
            return;
        };
        let dir = Path::new(&dir);
        std::fs::create_dir_all(dir).unwrap();
        for (i, node) in self.nodes.iter().enumerate() {
            let _ = std::fs::copy(&node.log, dir.join(format!("{label}-node-{i}.log")));
        }
        let _ = &self.root;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Chat,
    Session,
    History,
    Job,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Chat, Kind::Session, Kind::History, Kind::Job];

    fn label(self) -> &'static str {
        match self {
            Kind::Chat => "chat turn (warm, sync)",
            Kind::Session => "GET session",
            Kind::History => "GET history",
            Kind::Job => "job (submit, poll to done)",
        }
    }
}

/// The same requests, in the same order, for every run: (kind, session).
fn plan(requests: usize, sessions: usize) -> Vec<(Kind, usize)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    (0..requests)
        .map(|_| {
            let kind = match rng.random_range(0..10) {
                0..=2 => Kind::Chat,
                3..=5 => Kind::Session,
                6..=8 => Kind::History,
                _ => Kind::Job,
            };
            (kind, rng.random_range(0..sessions))
        })
        .collect()
}

fn session_name(s: usize) -> String {
    format!("load-{s}")
}

/// One request of the load, sent to `node`; its latency, or what failed.
async fn one(c: &Nodes, node: usize, kind: Kind, session: &str, i: usize) -> Result<(), String> {
    let path = format!("/api/v1/sessions/{session}");
    let res = match kind {
        Kind::Chat => {
            c.post(
                node,
                &format!("{path}/chat"),
                json!({ "message": format!("say hi {i}") }),
            )
            .send()
            .await
        }
        Kind::Session => c.get(node, &path).send().await,
        Kind::History => c.get(node, &format!("{path}/history")).send().await,
        Kind::Job => {
            c.post(
                node,
                &format!("{path}/jobs"),
                json!({ "message": format!("job {i}") }),
            )
            .send()
            .await
        }
    }
    .map_err(|e| format!("{kind:?}: {e}"))?;
    let status = res.status();
    let body = res.text().await.map_err(|e| format!("{kind:?}: {e}"))?;
    if !status.is_success() {
        return Err(format!("{kind:?} {status}: {body}"));
    }
    if kind != Kind::Job {
        return Ok(());
    }
    let job: Value = serde_json::from_str(&body).map_err(|e| format!("job: {e}"))?;
    let id = job["data"]["id"].as_str().unwrap_or_default().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let res = c
            .get(node, &format!("{path}/jobs/{id}"))
            .send()
            .await
            .map_err(|e| format!("job poll: {e}"))?;
        let status = res.status();
        let job: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(format!("job poll {status}: {job}"));
        }
        match job["data"]["status"].as_str().unwrap_or_default() {
            "done" => return Ok(()),
            "queued" | "running" => {}
            other => return Err(format!("job ended {other}: {job}")),
        }
        if Instant::now() > deadline {
            return Err(format!("job {id} not done after 60 s"));
        }
    }
}

struct RunResult {
    wall: Duration,
    latencies: BTreeMap<Kind, Vec<Duration>>,
    errors: Vec<String>,
    forwarded: usize,
    requests: usize,
}

/// Creates the sessions (session `s` on node `s % n`, one turn each), then
/// runs the plan from `CLIENTS` tasks, request `i` to node `i % n`.
async fn run_load(c: &Nodes, plan: &[(Kind, usize)], sessions: usize) -> RunResult {
    use futures_util::StreamExt;
    let n = c.nodes.len();
    futures_util::stream::iter(0..sessions)
        .for_each_concurrent(4, |s| async move {
            let name = session_name(s);
            let res = c
                .post(s % n, "/api/v1/sessions", json!({ "name": name }))
                .send()
                .await
                .unwrap();
            let status = res.status();
            assert_eq!(status, 201, "{}", res.text().await.unwrap_or_default());
            let res = c
                .post(
                    s % n,
                    &format!("/api/v1/sessions/{name}/chat"),
                    json!({ "message": "hello" }),
                )
                .send()
                .await
                .unwrap();
            let status = res.status();
            assert_eq!(status, 200, "{}", res.text().await.unwrap_or_default());
        })
        .await;
    if n > 1 {
        for s in 0..sessions {
            let owner = c.owner(&session_name(s)).await;
            assert_eq!(owner, Some(s % n), "session {s} runs where it was created");
        }
    }
    let next = AtomicUsize::new(0);
    let t = Instant::now();
    let per_client = futures_util::future::join_all((0..CLIENTS).map(|_| async {
        let mut samples = Vec::new();
        let mut errors = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(&(kind, s)) = plan.get(i) else {
                break;
            };
            let node = i % n;
            let started = Instant::now();
            match one(c, node, kind, &session_name(s), i).await {
                Ok(()) => samples.push((kind, started.elapsed(), s % n != node)),
                Err(e) => errors.push(format!("request {i} to node {node}: {e}")),
            }
        }
        (samples, errors)
    }))
    .await;
    let wall = t.elapsed();
    let mut latencies: BTreeMap<Kind, Vec<Duration>> = BTreeMap::new();
    let mut errors = Vec::new();
    let mut forwarded = 0;
    for (samples, errs) in per_client {
        for (kind, d, fwd) in samples {
            latencies.entry(kind).or_default().push(d);
            forwarded += usize::from(fwd);
        }
        errors.extend(errs);
    }
    RunResult {
        wall,
        latencies,
        errors,
        forwarded,
        requests: plan.len(),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// p50 and p99, in ms.
fn pcts(samples: &[Duration]) -> (f64, f64) {
    let mut s = samples.to_vec();
    s.sort();
    if s.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let at = |q: usize| ms(s[((s.len() * q) / 100).min(s.len() - 1)]);
    (at(50), at(99))
}

fn print_run(title: &str, r: &RunResult) {
    let ok: usize = r.latencies.values().map(Vec::len).sum();
    println!("{title}");
    println!(
        "  {} requests in {:.1} s: {:.1} requests/s; {} failed; {} sent to a node not holding the session",
        r.requests,
        r.wall.as_secs_f64(),
        ok as f64 / r.wall.as_secs_f64(),
        r.errors.len(),
        r.forwarded
    );
    println!(
        "  {:<30} {:>6} {:>10} {:>10}",
        "kind", "n", "p50 ms", "p99 ms"
    );
    for kind in Kind::ALL {
        let samples = r.latencies.get(&kind).map_or(&[][..], Vec::as_slice);
        let (p50, p99) = pcts(samples);
        println!(
            "  {:<30} {:>6} {:>10.1} {:>10.1}",
            kind.label(),
            samples.len(),
            p50,
            p99
        );
    }
    for e in r.errors.iter().take(5) {
        println!("  failed: {}", e.chars().take(300).collect::<String>());
    }
    println!();
}

/// One GET of the session through `node`; how long it took.
async fn read(c: &Nodes, node: usize, session: &str) -> Duration {
    let t = Instant::now();
    let res = c
        .get(node, &format!("/api/v1/sessions/{session}"))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body = res.bytes().await.unwrap();
    assert!(
        status.is_success(),
        "GET session via node {node}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    t.elapsed()
}

#[actix_web::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let requests: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(600);
    let sessions: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(9).max(1);
    let reads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(500);
    let mock = MockModel::start();
    let version = Command::new(cli_path()).arg("--version").output().unwrap();
    println!(
        "Claude Code CLI {} against the mock model; server {}; {requests} requests ({CLIENTS} clients) over {sessions} sessions, {reads} paired reads\n",
        String::from_utf8_lossy(&version.stdout).trim(),
        server_bin().display()
    );
    let plan = plan(requests, sessions);

    // (a) one node, single mode, on PostgreSQL.
    let single = Nodes::start(1, false, &mock, sessions).await;
    let single_run = run_load(&single, &plan, sessions).await;
    let mut single_reads = Vec::new();
    for i in 0..reads + 20 {
        let d = read(&single, 0, &session_name(0)).await;
        if i >= 20 {
            single_reads.push(d);
        }
    }
    let single_problems = single.log_problems();
    single.keep_logs("single");
    drop(single);

    // (b) three cluster nodes, requests round-robin.
    let cluster = Nodes::start(3, true, &mock, sessions).await;
    let cluster_run = run_load(&cluster, &plan, sessions).await;
    // The forwarding overhead: session 0 runs on node 0; the same read to
    // node 0 and, in alternation, forwarded from node 1 or 2.
    let session = session_name(0);
    let owner = cluster.owner(&session).await;
    assert_eq!(owner, Some(0), "the session is held by node 0");
    let (mut direct, mut forwarded) = (Vec::new(), Vec::new());
    for i in 0..reads + 20 {
        let d = read(&cluster, 0, &session).await;
        let f = read(&cluster, 1 + i % 2, &session).await;
        if i >= 20 {
            direct.push(d);
            forwarded.push(f);
        }
    }
    let still = cluster.owner(&session).await;
    let cluster_problems = cluster.log_problems();
    cluster.keep_logs("cluster");
    drop(cluster);

    print_run("(a) one node, single mode, PostgreSQL", &single_run);
    print_run(
        "(b) three cluster nodes, requests round-robin over the nodes",
        &cluster_run,
    );
    let rate = |r: &RunResult| {
        r.latencies.values().map(Vec::len).sum::<usize>() as f64 / r.wall.as_secs_f64()
    };
    println!(
        "cluster / single throughput: {:.2}x",
        rate(&cluster_run) / rate(&single_run)
    );
    println!();
    let (s50, s99) = pcts(&single_reads);
    let (d50, d99) = pcts(&direct);
    let (f50, f99) = pcts(&forwarded);
    println!("forwarding overhead, GET /api/v1/sessions/{{name}}, {reads} sequential reads each:");
    println!("  {:<38} {:>10} {:>10}", "", "p50 ms", "p99 ms");
    println!("  {:<38} {:>10.2} {:>10.2}", "single node", s50, s99);
    println!(
        "  {:<38} {:>10.2} {:>10.2}",
        "cluster, to the owner node", d50, d99
    );
    println!(
        "  {:<38} {:>10.2} {:>10.2}",
        "cluster, to another node (forwarded)", f50, f99
    );
    println!(
        "  forwarding adds {:+.2} ms p50, {:+.2} ms p99 (goal: under 2 ms p50 on loopback)",
        f50 - d50,
        f99 - d99
    );
    if still != Some(0) {
        println!("  note: after the reads the session's lease is held by {still:?}, not node 0");
    }
    for (label, problems) in [("single", single_problems), ("cluster", cluster_problems)] {
        if !problems.is_empty() {
            println!();
            println!(
                "{label} run: {} warning/error lines in the node logs, first ones:",
                problems.len()
            );
            for line in problems.iter().take(10) {
                println!("  {}", line.chars().take(400).collect::<String>());
            }
        }
    }
}
