//! The server as a real process: `kill -9` mid-job loses nothing, SIGTERM
//! drains, and no CLI process outlives the server.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;
use crate::receiver::Receiver;

/// The `claude-code-api` binary on a data dir and database of its own, on
/// the port it picked (read from its `listening` log line).
pub struct Server {
    child: Child,
    base: String,
    client: reqwest::Client,
}

pub struct Env {
    root: tempfile::TempDir,
    db: TestDb,
    mock: MockModel,
    /// `AGENT_SANDBOX` of the servers started.
    sandbox: &'static str,
    /// More variables for the servers started.
    vars: Vec<(&'static str, &'static str)>,
}

impl Env {
    pub fn new() -> Env {
        let root = tempfile::tempdir().unwrap();
        let db = TestDb::create(root.path());
        Env {
            root,
            db,
            mock: MockModel::start(),
            sandbox: "auto",
            vars: Vec::new(),
        }
    }

    /// With one more variable for the servers started.
    pub fn with_var(mut self, name: &'static str, value: &'static str) -> Env {
        self.vars.push((name, value));
        self
    }

    /// The servers' database, for assertions on rows.
    pub fn db(&self) -> &TestDb {
        &self.db
    }

    fn workspaces(&self) -> PathBuf {
        self.root.path().join("workspaces")
    }

    pub async fn start(&self, grace_secs: u64) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_claude-code-api"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.root.path().join("home"))
            .env("API_PORT", "0")
            .env("API_KEYS", format!("alice:{ALICE}"))
            .env("DATA_DIR", self.root.path().join("data"))
            .env("APPROVED_DIRECTORY", self.workspaces())
            .env("DATABASE_URL", &self.db.url)
            .env("CLAUDE_CLI_PATH", real_cli_path())
            .env("ANTHROPIC_BASE_URL", &self.mock.base_url)
            .env("ANTHROPIC_API_KEY", "test-key")
            .env("CLAUDE_CODE_MAX_RETRIES", "0")
            .env("WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")
            .env("WEBHOOK_RETRY_SCHEDULE_SECONDS", "1,1,1")
            .env("WEBHOOK_POLL_INTERVAL_MS", "100")
            .env("SHUTDOWN_GRACE_SECONDS", grace_secs.to_string())
            .env("LOG_LEVEL", "warn,claude_code_api=info")
            .env("LOG_FORMAT", "json")
            .env("AGENT_SANDBOX", self.sandbox)
            .envs(self.vars.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the server binary");
        let port = listening_port(&mut child);
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        };
        let up = eventually(60, || async {
            server
                .client
                .get(format!("{}/health", server.base))
                .send()
                .await
                .is_ok()
        })
        .await;
        assert!(up, "the server came up");
        server
    }
}

/// The port from the server's `listening` line; its later lines are passed
/// on to the test's output (which keeps the pipe from filling).
/// The port the server binary logs that it listens on; its later log
/// lines go on to this test's stderr.
pub fn listening_port(child: &mut Child) -> u16 {
    use std::io::BufRead;
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let parsed: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if let (Some(port), Some(sender)) = (parsed["port"].as_u64(), &tx) {
                if parsed["message"] == "listening" {
                    let _ = sender.send(port);
                    tx = None;
                    continue;
                }
            }
            eprintln!("{line}");
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server logs the port it listens on");
    u16::try_from(port).expect("a port")
}

impl Server {
    pub async fn post(&self, path: &str, body: Value) -> Value {
        let res = self
            .client
            .post(format!("{}{path}", self.base))
            .header("X-API-Key", ALICE)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{path}: {}", res.status());
        res.json().await.unwrap()
    }

    /// A GET as alice that must answer 200; its body.
    pub async fn get(&self, path: &str) -> Value {
        let res = self
            .client
            .get(format!("{}{path}", self.base))
            .header("X-API-Key", ALICE)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        res.json().await.unwrap()
    }

    async fn job(&self, session: &str, id: &str) -> Value {
        let res = self
            .client
            .get(format!("{}/api/v1/sessions/{session}/jobs/{id}", self.base))
            .header("X-API-Key", ALICE)
            .send()
            .await
            .unwrap();
        res.json::<Value>().await.unwrap()["data"].clone()
    }

    async fn wait_status(&self, session: &str, id: &str, status: &str, secs: u64) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let job = self.job(session, id).await;
            if job["status"] == status {
                return job;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "job {id} never became {status}: {job}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM; returns the exit code.
    fn terminate(mut self) -> Option<i32> {
        // SAFETY: sends SIGTERM to our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap().code()
    }
}

/// A test that ends (or fails) with its server still up leaves no process
/// behind.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Processes whose working directory is under `root` (the CLI and its tools).
fn processes_in(root: &Path) -> Vec<u32> {
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(&root))
        })
        .collect()
}

#[actix_web::test]
async fn kill_9_mid_job_loses_nothing_and_leaves_no_process() {
    // Unconfined, the CLI outlives a killed server, and the next start must
    // kill it (the sandbox kills it with the server: see sandbox.rs).
    let env = Env {
        sandbox: "off",
        ..Env::new()
    };
    let receiver = Receiver::start(&[200]);
    let server = env.start(30).await;
    server
        .post("/api/v1/sessions", json!({"name": "crash"}))
        .await;
    let running = server
        .post(
            "/api/v1/sessions/crash/jobs",
            json!({"message": "long [[slow 40 100]]", "webhook_url": receiver.url}),
        )
        .await;
    let queued = server
        .post(
            "/api/v1/sessions/crash/jobs",
            json!({"message": "after the crash", "webhook_url": receiver.url}),
        )
        .await;
    let running = running["data"]["id"].as_str().unwrap().to_string();
    let queued = queued["data"]["id"].as_str().unwrap().to_string();
    server.wait_status("crash", &running, "running", 30).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cli = processes_in(&env.workspaces());
    assert!(!cli.is_empty(), "the CLI runs in the workspace");

    server.kill9();
    assert!(
        !processes_in(&env.workspaces()).is_empty(),
        "the CLI outlived the killed server"
    );

    let server = env.start(30).await;
    assert!(
        eventually(10, || async {
            cli.iter()
                .all(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        })
        .await,
        "orphans of the dead server were killed"
    );
    let first = server.wait_status("crash", &running, "done", 60).await;
    assert_eq!(first["attempts"], 2, "resumed once: {first}");
    let second = server.wait_status("crash", &queued, "done", 60).await;
    assert_eq!(second["attempts"], 1);
    assert!(eventually(20, || async { receiver.received().len() >= 2 }).await);
    let types: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_string())
        .collect();
    assert!(types.iter().all(|t| t == "job.done"), "{types:?}");

    assert_eq!(server.terminate(), Some(0));
    assert!(
        processes_in(&env.workspaces()).is_empty(),
        "no CLI process left behind"
    );
}

#[actix_web::test]
async fn sigterm_interrupts_after_the_grace_and_keeps_queued_jobs() {
    let env = Env::new();
    let server = env.start(1).await;
    server
        .post("/api/v1/sessions", json!({"name": "term"}))
        .await;
    let long = server
        .post(
            "/api/v1/sessions/term/jobs",
            json!({"message": "long [[slow 200 100]]"}),
        )
        .await;
    let waiting = server
        .post("/api/v1/sessions/term/jobs", json!({"message": "waiting"}))
        .await;
    let long = long["data"]["id"].as_str().unwrap().to_string();
    let waiting = waiting["data"]["id"].as_str().unwrap().to_string();
    server.wait_status("term", &long, "running", 30).await;

    let started = std::time::Instant::now();
    assert_eq!(server.terminate(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        processes_in(&env.workspaces()).is_empty(),
        "no CLI process left behind"
    );
    let status = |id: &str| {
        env.db.query_i64(&format!(
            "SELECT COUNT(*) AS n FROM jobs WHERE id = '{id}' AND status = 'running'"
        ))
    };
    assert_eq!(
        status(&long),
        1,
        "the interrupted job stays open for the next start"
    );
    let queued = env.db.query_i64(&format!(
        "SELECT COUNT(*) AS n FROM jobs WHERE id = '{waiting}' AND status = 'queued'"
    ));
    assert_eq!(queued, 1, "the queued job stays queued");

    let server = env.start(30).await;
    let resumed = server.wait_status("term", &long, "done", 60).await;
    assert_eq!(resumed["attempts"], 2);
    server.wait_status("term", &waiting, "done", 60).await;
    assert_eq!(server.terminate(), Some(0));
}

#[actix_web::test]
async fn sigterm_lets_a_running_turn_finish_within_the_grace() {
    let env = Env::new();
    let server = env.start(30).await;
    server
        .post("/api/v1/sessions", json!({"name": "grace"}))
        .await;
    let job = server
        .post(
            "/api/v1/sessions/grace/jobs",
            json!({"message": "short [[slow 20 100]]"}),
        )
        .await;
    let id = job["data"]["id"].as_str().unwrap().to_string();
    server.wait_status("grace", &id, "running", 30).await;
    assert_eq!(server.terminate(), Some(0));
    let done = env.db.query_i64(&format!(
        "SELECT COUNT(*) AS n FROM jobs WHERE id = '{id}' AND status = 'done'"
    ));
    assert_eq!(done, 1, "the running job finished before the server exited");
}

#[actix_web::test]
async fn kill_9_mid_turn_releases_its_reservation_and_claim_and_charges_its_model_calls() {
    // A budget that one held reservation uses up whole.
    let env = Env {
        vars: vec![
            ("CLAUDE_MAX_COST_PER_USER", "0.5"),
            ("BUDGET_RESERVATION_USD", "0.5"),
        ],
        ..Env::new()
    };
    let server = env.start(30).await;
    server
        .post("/api/v1/sessions", json!({"name": "held"}))
        .await;
    let chat = |server: &Server| {
        server
            .client
            .post(format!("{}/api/v1/sessions/held/chat", server.base))
            .header("X-API-Key", ALICE)
            .header("Idempotency-Key", "retry-me")
            .json(&json!({"message": "[[bash]]sleep 4; echo slept[[/bash]]"}))
            .send()
    };
    let in_flight = tokio::spawn(chat(&server));
    let reserved = "SELECT reserved_micros AS n FROM tenants WHERE id = 'alice'";
    let spent = "SELECT spent_micros AS n FROM tenants WHERE id = 'alice'";
    let calls = "SELECT COUNT(*) AS n FROM model_calls WHERE status = 200";
    assert!(
        eventually(30, || async { env.db.query_i64(calls) == 1 }).await,
        "the model asked for the tool"
    );
    assert_eq!(
        env.db.query_i64(reserved),
        500_000,
        "the turn holds its reservation"
    );
    server.kill9();
    assert!(
        in_flight.await.unwrap().is_err(),
        "the request died with the server"
    );
    assert_eq!(env.db.query_i64(reserved), 500_000);

    assert_eq!(env.db.query_i64(spent), 0);
    let server = env.start(30).await;
    assert_eq!(env.db.query_i64(reserved), 0, "released at the next start");
    // The model call the dead turn made was billed: so is the tenant.
    let charged = env.db.query_i64(spent);
    assert!(charged > 0, "the dead turn's model call is charged");
    assert_eq!(
        env.db
            .query_i64("SELECT total_cost_micros AS n FROM sessions WHERE name = 'held'"),
        charged
    );
    assert_eq!(
        env.db
            .query_i64("SELECT COUNT(*) AS n FROM budget_reservations"),
        0
    );
    // The retry of the dead request runs (it is not "still being processed").
    let res = chat(&server).await.unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    assert_eq!(env.db.query_i64(reserved), 0, "settled");
    assert_eq!(server.terminate(), Some(0));
}
