//! Latency benchmark against the mock model (not a test):
//!
//! 1. a chat turn on a warm session through the server (HTTP → actor → CLI),
//! 2. the same turn on a raw long-lived stream-json CLI process,
//! 3. the same raw process reaching the model through the model gateway
//!    (what the gateway adds per model call),
//! 4. a fresh `claude -p` per prompt (what a spawn-per-request server pays);
//!
//! and, through the server with the sandbox on and off, the first turn of a
//! new session (the CLI spawned, then answering) and the warm turn; the
//! same with the sandbox on with its network namespace and seccomp filter
//! (`AGENT_NETWORK=proxy`: the gateway through the relay) and without
//! either (`host`, `AGENT_SECCOMP=false`); and the first
//! turn a second after the session was created, with warm-up
//! (`WARM_ON_CREATE`) off and on.
//!
//! Run: `cargo build --release && cargo run --release --example bench --
//! [TURNS] [FRESH_RUNS]` (defaults 50 and 10; the server's binary is the
//! sandbox's relay). Prints median and p90 of each and the ratios.
//!
//! It starts with the reads (`reads.rs`): requests per second and p99 of
//! `/health`, an authenticated list and get and a job status poll, and a
//! warm turn's time on the server step by step. `… --example bench --
//! reads [SECONDS]` runs only those (default 5 s per row). Then the
//! fan-out (`fanout.rs`): 500 event-stream subscribers on 50 sessions
//! running turns on the fake CLI; `… -- fanout [SESSIONS] [PER_SESSION]`
//! runs only that (build the fake CLI first: `cargo build --release -p
//! claude-code-api-testkit --examples`). Then the turn that resumes an
//! evicted session, sandbox on and off, with its start step by step
//! (`resume.rs`; `… -- resume [RUNS]` alone). `… -- repo [MB]` (`repos.rs`)
//! times sessions from a large repository: the first (the mirror cloned)
//! against later ones (a worktree borrowing its objects), with their disk.
//! `… -- first [RUNS]` (`first.rs`) pairs the first turn one second after
//! create with a warm turn of the same server, step by step.
//!
//! `cargo run --release --example bench -- idle [SESSIONS] [CHATTED]`
//! (defaults 10000 and 20), in a process of its own: CHATTED sessions each
//! get one turn, then SESSIONS more are created and their event stream
//! opened (which starts their actors); once everything is idle, prints the
//! process's RSS and CPU use over 10 s (server, mock model and client all
//! live in this process).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fanout;
mod first;
mod load;
mod reads;
mod repos;
mod resume;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use claude_code_api::app::Application;
use claude_code_api_core::config::Settings;
use claude_code_api_core::gateway::{ModelGateway, ProcessGrant};
use claude_code_api_testkit::mock_model::MockModel;
use serde_json::{json, Value};

const KEY: &str = "bench-key-0123456789";

fn cli_path() -> PathBuf {
    std::env::var("CLAUDE_CLI_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join(".claude-cli/node_modules/.bin/claude")
        })
}

/// The CLI environment every variant gets: same mock, same knobs.
fn cli_env(mock: &MockModel, home: &Path) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("PATH".into(), std::env::var("PATH").unwrap_or_default());
    env.insert("HOME".into(), home.to_string_lossy().into_owned());
    env.insert("ANTHROPIC_BASE_URL".into(), mock.base_url.clone());
    env.insert("ANTHROPIC_API_KEY".into(), "test-key".into());
    env.insert(
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".into(),
        "1".into(),
    );
    env.insert("IS_SANDBOX".into(), "1".into());
    env
}

/// The server's binary, built next to this example (`target/<profile>/`):
/// the sandbox runs it as the relay of its network namespace.
fn relay_program() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("claude-code-api"))
        .unwrap();
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --release` first",
        path.display()
    );
    path
}

fn stats(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = ms(samples[samples.len() / 2]);
    let p90 = ms(samples[((samples.len() * 9) / 10).min(samples.len() - 1)]);
    (median, p90)
}

/// A server of the benchmark's own, on the mock model, with `AGENT_SANDBOX`
/// = `sandbox`.
struct BenchServer {
    base: String,
    client: reqwest::Client,
}

impl BenchServer {
    async fn start(mock: &MockModel, root: &Path, sandbox: &str) -> BenchServer {
        Self::start_with(mock, root, sandbox, &[]).await
    }

    /// A server with extra settings (`name`, `value`); its data goes under
    /// a folder named after the sandbox mode and those settings.
    async fn start_with(
        mock: &MockModel,
        root: &Path,
        sandbox: &str,
        extra: &[(&str, &str)],
    ) -> BenchServer {
        let suffix: String = extra.iter().map(|(k, v)| format!("-{k}={v}")).collect();
        // A path in a value (or a long list) would make the folder's path too
        // long for the gateway's socket: a short digest of it instead.
        let suffix = if suffix.len() > 40 || suffix.contains('/') {
            use std::hash::{Hash as _, Hasher as _};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            suffix.hash(&mut h);
            format!("-{:x}", h.finish())
        } else {
            suffix
        };
        let root = root.join(format!("server-{sandbox}{suffix}"));
        let mut vars = BTreeMap::new();
        let mut set = |k: &str, v: String| {
            vars.insert(k.to_string(), v);
        };
        set("AGENT_SANDBOX", sandbox.into());
        set("API_PORT", "0".into());
        set("API_KEYS", KEY.into());
        set("LOG_LEVEL", "warn".into());
        set("DATA_DIR", root.join("data").to_string_lossy().into_owned());
        set(
            "APPROVED_DIRECTORY",
            root.join("ws").to_string_lossy().into_owned(),
        );
        set("CLAUDE_CLI_PATH", cli_path().to_string_lossy().into_owned());
        set("ANTHROPIC_BASE_URL", mock.base_url.clone());
        set("ANTHROPIC_API_KEY", "test-key".into());
        for (name, value) in extra {
            set(name, (*value).to_owned());
        }
        let mut settings = Settings::from_vars(&vars).unwrap();
        settings.sessions.cli_env = cli_env(mock, &root.join("home"));
        settings.network.relay_program = Some(relay_program());
        let app = Application::build(settings).await.unwrap();
        let base = format!("http://127.0.0.1:{}/api/v1", app.port());
        actix_web::rt::spawn(app.run_until_stopped());
        BenchServer {
            base,
            client: reqwest::Client::new(),
        }
    }

    async fn create(&self, name: &str) {
        let res = self
            .client
            .post(format!("{}/sessions", self.base))
            .header("X-API-Key", KEY)
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap();
        let status = res.status();
        assert_eq!(status, 201, "{}", res.text().await.unwrap_or_default());
    }

    async fn delete(&self, name: &str) {
        let res = self
            .client
            .delete(format!("{}/sessions/{name}", self.base))
            .header("X-API-Key", KEY)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{}", res.status());
    }

    /// Opens the session's event stream and leaves at once.
    async fn open_events(&self, name: &str) {
        let res = self
            .client
            .get(format!("{}/sessions/{name}/events", self.base))
            .header("X-API-Key", KEY)
            .send()
            .await
            .unwrap();
        let status = res.status();
        assert_eq!(status, 200, "{}", res.text().await.unwrap_or_default());
    }

    /// `/health`'s session numbers.
    async fn sessions(&self) -> Value {
        let res = self
            .client
            .get(format!("{}/health", self.base.trim_end_matches("/api/v1")))
            .send()
            .await
            .unwrap();
        let health: Value = res.json().await.unwrap();
        health["sessions"].clone()
    }

    /// One sync chat; how long it took.
    async fn chat(&self, session: &str, i: usize) -> Duration {
        let t = Instant::now();
        let res = self
            .client
            .post(format!("{}/sessions/{session}/chat", self.base))
            .header("X-API-Key", KEY)
            .json(&json!({"message": format!("say hi {i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let _: Value = res.json().await.unwrap();
        t.elapsed()
    }
}

/// Warm turns, then first turns of new sessions (the CLI spawned, then
/// answering), on two servers taken in turn, so that a machine's drift
/// weighs on both alike.
async fn on_both(
    a: &BenchServer,
    b: &BenchServer,
    turns: usize,
    cold: usize,
) -> [(Vec<Duration>, Vec<Duration>); 2] {
    let mut warm = [Vec::new(), Vec::new()];
    let mut first = [Vec::new(), Vec::new()];
    for server in [a, b] {
        server.create("warm").await;
        server.chat("warm", 0).await;
    }
    for i in 1..=turns {
        for (n, server) in [a, b].into_iter().enumerate() {
            warm[n].push(server.chat("warm", i).await);
        }
    }
    for i in 0..cold {
        for (n, server) in [a, b].into_iter().enumerate() {
            let name = format!("cold-{i}");
            server.create(&name).await;
            first[n].push(server.chat(&name, 0).await);
        }
    }
    let [wa, wb] = warm;
    let [fa, fb] = first;
    [(wa, fa), (wb, fb)]
}

/// First turns one second after the session was created (a client that
/// creates, then types), on a server without and one with warm-up, taken
/// in turn; each session is deleted after, so its slot is free again.
async fn first_turn_after_create(
    off: &BenchServer,
    on: &BenchServer,
    runs: usize,
) -> [Vec<Duration>; 2] {
    let mut first = [Vec::new(), Vec::new()];
    for i in 0..runs {
        for (n, server) in [off, on].into_iter().enumerate() {
            let name = format!("typed-{i}");
            server.create(&name).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            first[n].push(server.chat(&name, 0).await);
            server.delete(&name).await;
        }
    }
    first
}

/// This process's resident memory, in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// CPU time (user + system) this process has used.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which may hold spaces) in parentheses.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Duration::from_secs_f64(ticks as f64 / per_second)
}

/// Many sessions used once, then idle: memory and CPU of the process.
async fn idle_after_many(mock: &MockModel, root: &Path, sessions: usize, chatted: usize) {
    use futures_util::StreamExt;
    let server = BenchServer::start_with(
        mock,
        root,
        "off",
        &[
            ("SESSION_IDLE_TIMEOUT_SECONDS", "2"),
            // One client creating ten thousand sessions.
            ("RATE_LIMIT_REQUESTS", "1000000"),
            ("MAX_SESSIONS_PER_TENANT", "1000000"),
            // Warm-up would start (and retire) a CLI for every session that
            // finds a free slot: not what is measured here.
            ("WARM_ON_CREATE", "false"),
        ],
    )
    .await;
    let baseline = rss_mib();
    let t = Instant::now();
    for i in 0..chatted {
        let name = format!("chat-{i}");
        server.create(&name).await;
        server.chat(&name, i).await;
    }
    println!(
        "{chatted} sessions created and given one turn each in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    futures_util::stream::iter(0..sessions)
        .for_each_concurrent(16, |i| {
            let server = &server;
            async move {
                let name = format!("s-{i}");
                server.create(&name).await;
                server.open_events(&name).await;
            }
        })
        .await;
    println!(
        "{sessions} sessions created and their event stream opened (actor started, no turn, warm-up off) in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let idle = loop {
        let stats = server.sessions().await;
        let idle = stats["live_sessions"] == 0 && stats["live_processes"] == 0;
        if idle || t.elapsed() > Duration::from_secs(120) {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!("idle after {:.1} s: {idle}", t.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu0, t0) = (cpu_time(), Instant::now());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let cpu = (cpu_time() - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64() * 100.0;
    println!();
    println!(
        "RSS idle:       {:.1} MiB (at start {baseline:.1} MiB; target ≤ 60 MB)",
        rss_mib()
    );
    println!("CPU idle, 10 s: {cpu:.2} % of a core (target ≤ 1 %)");
    // How much of it is freed memory the allocator keeps rather than live data.
    // SAFETY: malloc_trim only returns free heap pages to the system.
    unsafe { libc::malloc_trim(0) };
    println!(
        "RSS after malloc_trim: {:.1} MiB (what is still live)",
        rss_mib()
    );
}

/// A model gateway of its own (as the server runs one) in front of the mock:
/// the environment a CLI process gets from it.
async fn gateway_env(mock: &MockModel, root: &Path) -> (BTreeMap<String, String>, ProcessGrant) {
    let mut vars = BTreeMap::new();
    vars.insert("ANTHROPIC_BASE_URL".to_string(), mock.base_url.clone());
    vars.insert("ANTHROPIC_API_KEY".to_string(), "test-key".to_string());
    let settings = Settings::from_vars(&vars).unwrap();
    let pool =
        claude_code_api_core::db::connect(&root.join("gateway.db").to_string_lossy()).unwrap();
    let gateway = ModelGateway::new(&settings.model, pool).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    actix_web::rt::spawn(
        claude_code_api::gateway_listener::serve(&gateway, listener, None).unwrap(),
    );
    let grant = gateway.grant("bench", None);
    let mut env = cli_env(mock, &root.join("gw-home"));
    env.remove("ANTHROPIC_API_KEY");
    env.extend(grant.env());
    (env, grant)
}

/// A raw long-lived stream-json CLI process, driven turn by turn.
struct RawCli {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

impl RawCli {
    fn start(env: BTreeMap<String, String>, ws: &Path) -> RawCli {
        std::fs::create_dir_all(ws).unwrap();
        let mut child = Command::new(cli_path())
            .args([
                "--input-format",
                "stream-json",
                "--output-format",
                "stream-json",
                "--verbose",
                "--include-partial-messages",
                "--permission-mode=bypassPermissions",
            ])
            .current_dir(ws)
            .env_clear()
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut cli = RawCli {
            child,
            stdin,
            stdout,
        };
        cli.send(json!({"type":"control_request","request_id":"req_1","request":{"subtype":"initialize","hooks":null}}));
        cli.wait_for("control_response");
        cli.turn(0);
        cli
    }

    fn send(&mut self, line: Value) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn wait_for(&mut self, kind: &str) {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(self.stdout.read_line(&mut line).unwrap() > 0, "CLI exited");
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if v["type"] == kind {
                return;
            }
        }
    }

    /// One turn; how long it took.
    fn turn(&mut self, i: usize) -> Duration {
        let t = Instant::now();
        self.send(json!({"type":"user","message":{"role":"user","content":format!("say hi {i}")},"parent_tool_use_id":null,"session_id":""}));
        self.wait_for("result");
        t.elapsed()
    }
}

impl Drop for RawCli {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Warm turns of two raw processes, taken in turn.
fn raw_pair(a: &mut RawCli, b: &mut RawCli, turns: usize) -> [Vec<Duration>; 2] {
    let mut samples = [Vec::new(), Vec::new()];
    for i in 1..=turns {
        samples[0].push(a.turn(i));
        samples[1].push(b.turn(i));
    }
    samples
}

fn fresh_cli(mock: &MockModel, root: &Path, runs: usize) -> Vec<Duration> {
    let ws = root.join("fresh-ws");
    std::fs::create_dir_all(&ws).unwrap();
    (0..runs)
        .map(|i| {
            let t = Instant::now();
            let out = Command::new(cli_path())
                .args([
                    "-p",
                    &format!("say hi {i}"),
                    "--output-format",
                    "stream-json",
                    "--verbose",
                    "--permission-mode=bypassPermissions",
                ])
                .current_dir(&ws)
                .env_clear()
                .envs(cli_env(mock, &root.join("fresh-home")))
                .output()
                .unwrap();
            assert!(out.status.success(), "claude -p failed");
            t.elapsed()
        })
        .collect()
}

#[actix_web::main]
async fn main() {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("idle") {
        args.next();
        let sessions = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
        let chatted = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
        let root = tempfile::tempdir().unwrap();
        let mock = MockModel::start();
        idle_after_many(&mock, root.path(), sessions, chatted).await;
        return;
    }
    if args.peek().map(String::as_str) == Some("fanout") {
        args.next();
        let sessions = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);
        let per_session = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
        let root = tempfile::tempdir().unwrap();
        let mock = MockModel::start();
        fanout::run(&mock, root.path(), sessions, per_session, 5).await;
        return;
    }
    if args.peek().map(String::as_str) == Some("repo") {
        args.next();
        let mb = args.next().and_then(|a| a.parse().ok()).unwrap_or(500);
        let root = tempfile::tempdir().unwrap();
        let mock = MockModel::start();
        repos::run(&mock, root.path(), mb).await;
        return;
    }
    if args.peek().map(String::as_str) == Some("first") {
        args.next();
        let runs = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
        let root = tempfile::tempdir().unwrap();
        let mock = MockModel::start();
        first::run(&mock, root.path(), runs).await;
        return;
    }
    if args.peek().map(String::as_str) == Some("resume") {
        args.next();
        let runs = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
        let root = tempfile::tempdir().unwrap();
        let mock = MockModel::start();
        resume::run(&mock, root.path(), runs).await;
        return;
    }
    if args.peek().map(String::as_str) == Some("reads") {
        args.next();
        let seconds = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
        let root = tempfile::tempdir().unwrap();
        let mock = MockModel::start();
        reads::run(&mock, root.path(), seconds, 50).await;
        return;
    }
    let turns: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);
    let fresh_runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let root = tempfile::tempdir().unwrap();
    let mock = MockModel::start();
    let version = Command::new(cli_path()).arg("--version").output().unwrap();
    println!(
        "Claude Code CLI {} against the mock model; {turns} warm turns, {fresh_runs} fresh runs\n",
        String::from_utf8_lossy(&version.stdout).trim()
    );

    reads::run(&mock, root.path(), 5, turns).await;
    fanout::run(&mock, root.path(), 50, 10, 5).await;
    resume::run(&mock, root.path(), fresh_runs).await;

    let boxed = BenchServer::start(&mock, root.path(), "bwrap").await;
    let unboxed = BenchServer::start(&mock, root.path(), "off").await;
    let [(server, cold_boxed), (unboxed, cold_unboxed)] =
        on_both(&boxed, &unboxed, turns, fresh_runs).await;
    let isolated =
        BenchServer::start_with(&mock, root.path(), "bwrap", &[("AGENT_NETWORK", "proxy")]).await;
    // The same sandbox without the network namespace and the seccomp filter.
    let shared = BenchServer::start_with(
        &mock,
        root.path(),
        "bwrap",
        &[("AGENT_NETWORK", "host"), ("AGENT_SECCOMP", "false")],
    )
    .await;
    let [(net_warm, net_cold), (host_warm, host_cold)] =
        on_both(&isolated, &shared, turns, fresh_runs).await;
    // The raw CLIs are driven on a blocking thread: this one must stay free
    // to serve the gateway (and the servers above).
    let raw_env = cli_env(&mock, &root.path().join("raw-home"));
    let (env, _grant) = gateway_env(&mock, root.path()).await;
    let (raw_ws, gw_ws) = (root.path().join("raw-ws"), root.path().join("gw-ws"));
    let [raw, via_gateway] = tokio::task::spawn_blocking(move || {
        let mut direct = RawCli::start(raw_env, &raw_ws);
        let mut through = RawCli::start(env, &gw_ws);
        raw_pair(&mut direct, &mut through, turns)
    })
    .await
    .unwrap();
    let fresh = fresh_cli(&mock, root.path(), fresh_runs);
    let cold_start =
        BenchServer::start_with(&mock, root.path(), "off", &[("WARM_ON_CREATE", "false")]).await;
    let warm_start =
        BenchServer::start_with(&mock, root.path(), "off", &[("WARM_ON_CREATE", "true")]).await;
    let [typed_cold, typed_warm] =
        first_turn_after_create(&cold_start, &warm_start, fresh_runs).await;

    let (s_med, s_p90) = stats(server);
    let (u_med, u_p90) = stats(unboxed);
    let (cb_med, cb_p90) = stats(cold_boxed);
    let (cu_med, cu_p90) = stats(cold_unboxed);
    let (r_med, r_p90) = stats(raw);
    let (g_med, g_p90) = stats(via_gateway);
    let (f_med, f_p90) = stats(fresh);
    let (nw_med, nw_p90) = stats(net_warm);
    let (hw_med, hw_p90) = stats(host_warm);
    let (nc_med, nc_p90) = stats(net_cold);
    let (hc_med, hc_p90) = stats(host_cold);
    let (tc_med, tc_p90) = stats(typed_cold);
    let (tw_med, tw_p90) = stats(typed_warm);
    println!("{:<44} {:>10} {:>10}", "variant", "median ms", "p90 ms");
    println!(
        "{:<44} {:>10.1} {:>10.1}",
        "server, warm session (HTTP sync chat)", s_med, s_p90
    );
    println!(
        "{:<44} {:>10.1} {:>10.1}",
        "server, warm session, sandbox off", u_med, u_p90
    );
    println!(
        "{:<44} {:>10.1} {:>10.1}",
        "server, first turn of a new session", cb_med, cb_p90
    );
    println!(
        "{:<44} {:>10.1} {:>10.1}",
        "server, first turn, sandbox off", cu_med, cu_p90
    );
    println!(
        "{:<44} {:>10.1} {:>10.1}",
        "server, warm, sandbox + netns + seccomp", nw_med, nw_p90
    );
    println!(
        "{:<44} {:>10.1} {:>10.1}",
        "server, warm, sandbox, no netns, no seccomp", hw_med, hw_p90
    );
    println!(
        "{:<44} {:>10.1} {:>10.1}",
        "server, first turn, sandbox + netns + seccomp", nc_med, nc_p90
    );
    println!(
        "{:<44} {:>10.1} {:>10.1}",
        "server, first turn, sandbox, neither", hc_med, hc_p90
    );
    println!(
        "{:<44} {:>10.1} {:>10.1}",
        "server, first turn 1 s after create, cold", tc_med, tc_p90
    );
    println!(
        "{:<44} {:>10.1} {:>10.1}",
        "server, first turn 1 s after create, warm", tw_med, tw_p90
    );
    println!(
        "{:<44} {:>10.1} {:>10.1}",
        "raw CLI, long-lived stream-json process", r_med, r_p90
    );
    println!(
        "{:<44} {:>10.1} {:>10.1}",
        "raw CLI, long-lived, through the gateway", g_med, g_p90
    );
    println!(
        "{:<44} {:>10.1} {:>10.1}",
        "raw CLI, fresh `claude -p` per prompt", f_med, f_p90
    );
    println!();
    println!(
        "server warm / raw warm CLI:  {:.2}x median, {:.2}x p90 (target ≤ 1.2x)",
        s_med / r_med,
        s_p90 / r_p90
    );
    println!(
        "sandbox, warm turn:           {:+.2} ms median, {:+.2} ms p90 (goal: unchanged)",
        s_med - u_med,
        s_p90 - u_p90
    );
    println!(
        "sandbox, spawn (first turn):  {:+.1} ms median, {:+.1} ms p90 (goal < 50 ms)",
        cb_med - cu_med,
        cb_p90 - cu_p90
    );
    println!(
        "netns + seccomp, warm turn:   {:+.2} ms median, {:+.2} ms p90 (goal: unchanged)",
        nw_med - hw_med,
        nw_p90 - hw_p90
    );
    println!(
        "netns + seccomp, spawn:       {:+.1} ms median, {:+.1} ms p90 (goal ≤ 50 ms)",
        nc_med - hc_med,
        nc_p90 - hc_p90
    );
    println!(
        "gateway added per model call: {:+.2} ms median, {:+.2} ms p90 (goal < 2 ms)",
        g_med - r_med,
        g_p90 - r_p90
    );
    println!("fresh -p / server warm:      {:.1}x median", f_med / s_med);
    println!(
        "warm-up, first turn:          {:+.1} ms median, {:+.1} ms p90 (WARM_ON_CREATE on vs off)",
        tw_med - tc_med,
        tw_p90 - tc_p90
    );
    println!(
        "first turn 1 s after create / warm turn (sandbox off): {:.2}x median (goal ≤ 1.5x)",
        tw_med / u_med
    );
    println!();
    reads::print_process_starts();
}
