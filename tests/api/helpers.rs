//! Test harness: `TestApp::spawn` starts the server with its own temp dirs,
//! database (SQLite, or PostgreSQL when `TEST_DATABASE_URL` is set) and mock
//! model, and offers typed helpers for the HTTP API.

#![allow(dead_code)]

pub use claude_code_api_testkit::mock_model;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use claude_code_api::app::Application;
use claude_code_api_core::config::Settings;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde_json::{json, Value};

pub use mock_model::{Credential, MockModel};

pub const ALICE: &str = "alice-key-0123456789";
pub const BOB: &str = "bob-key-0123456789";
/// An admin key of tenant alice, made at start like `keys create --role admin`.
pub const ADMIN: &str = "admin-key-0123456789";
/// 32 bytes, base64: the tests' webhook signing secret.
pub const WEBHOOK_SECRET: &str = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// Which program plays the CLI.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cli {
    Real,
    Fake,
}

/// Whether the server (this test process) runs as root: then each tenant's
/// agent is a user of its own; else it is the server's user in a user
/// namespace (the suite runs both ways, see scripts/test.sh).
pub fn server_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The server's own uid.
pub fn server_uid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

pub fn real_cli_path() -> PathBuf {
    if let Ok(p) = std::env::var("CLAUDE_CLI_PATH") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".claude-cli/node_modules/.bin/claude")
}

pub struct Options {
    pub cli: Cli,
    pub vars: Vec<(&'static str, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cli: Cli::Real,
            vars: vec![],
        }
    }
}

impl Options {
    pub fn fake() -> Self {
        Options {
            cli: Cli::Fake,
            ..Default::default()
        }
    }

    pub fn var(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.vars.push((name, value.into()));
        self
    }
}

/// A database of the test's own, dropped at the end.
pub struct TestDb {
    pub url: String,
    admin_url: Option<String>,
    name: String,
}

impl TestDb {
    pub fn create(dir: &Path) -> TestDb {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(admin_url) if !admin_url.is_empty() => {
                let name = format!("cca_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn =
                    PgConnection::establish(&admin_url).expect("connect to TEST_DATABASE_URL");
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .expect("create test database");
                let base = admin_url
                    .rsplit_once('/')
                    .map(|(b, _)| b)
                    .unwrap_or(&admin_url);
                TestDb {
                    url: format!("{base}/{name}"),
                    admin_url: Some(admin_url),
                    name,
                }
            }
            _ => TestDb {
                url: dir.join("test.db").to_string_lossy().into_owned(),
                admin_url: None,
                name: String::new(),
            },
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.admin_url.is_some()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(admin) = &self.admin_url {
            if let Ok(mut conn) = PgConnection::establish(admin) {
                let _ = diesel::sql_query(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .execute(&mut conn);
            }
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub mock: Arc<MockModel>,
    pub root: Arc<tempfile::TempDir>,
    pub db: Arc<TestDb>,
    pub options_vars: BTreeMap<String, String>,
    pub cli: Cli,
    /// `http://127.0.0.1:PORT` of the `/metrics` listener, with `METRICS_ADDR`.
    pub metrics_base: Option<String>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(options: Options) -> TestApp {
        let root = Arc::new(tempfile::tempdir().expect("tempdir"));
        let db = Arc::new(TestDb::create(root.path()));
        let mock = Arc::new(MockModel::start());
        Self::start(
            options.cli,
            build_vars(&options, root.path(), &db, &mock),
            root,
            db,
            mock,
        )
        .await
    }

    /// Starts a second server on the same data, workspaces, database and
    /// mock model (a restart after this one was dropped).
    pub async fn restart(&self) -> TestApp {
        Self::start(
            self.cli,
            self.options_vars.clone(),
            self.root.clone(),
            self.db.clone(),
            self.mock.clone(),
        )
        .await
    }

    /// Another server on the same database and workspaces, as a node of its
    /// own: its own `DATA_DIR`, so neither takes the other for an earlier
    /// start of itself (whose holdings a start releases).
    pub async fn another_node(&self) -> TestApp {
        let data = self
            .root
            .path()
            .join(format!("data-{}", uuid::Uuid::new_v4().simple()));
        self.restart_with("DATA_DIR", &data.to_string_lossy()).await
    }

    /// A restart (as `restart`) with one setting changed.
    pub async fn restart_with(&self, name: &str, value: &str) -> TestApp {
        let mut vars = self.options_vars.clone();
        vars.insert(name.to_owned(), value.to_owned());
        Self::start(
            self.cli,
            vars,
            self.root.clone(),
            self.db.clone(),
            self.mock.clone(),
        )
        .await
    }

    async fn start(
        cli: Cli,
        vars: BTreeMap<String, String>,
        root: Arc<tempfile::TempDir>,
        db: Arc<TestDb>,
        mock: Arc<MockModel>,
    ) -> TestApp {
        if cli == Cli::Real && !real_cli_path().exists() {
            panic!(
                "the Claude Code CLI is not installed at {}: run scripts/install-cli.sh",
                real_cli_path().display()
            );
        }
        let mut settings = Settings::from_vars(&vars).expect("test settings");
        // TEST_LOG=debug shows the server's logs (e.g. with --nocapture).
        if let Ok(level) = std::env::var("TEST_LOG") {
            settings.server.log_level = level;
            claude_code_api_core::telemetry::init(&settings.server);
        }
        settings.sessions.cli_env.insert(
            "HOME".into(),
            root.path().join("home").to_string_lossy().into_owned(),
        );
        settings
            .sessions
            .cli_env
            .insert("CLAUDE_CODE_MAX_RETRIES".into(), "0".into());
        // The server runs inside this test binary: the sandbox's relay is
        // the server's own executable.
        settings.network.relay_program = Some(PathBuf::from(env!("CARGO_BIN_EXE_claude-code-api")));
        let app = Application::build(settings)
            .await
            .expect("application builds");
        add_admin_key(&db.url);
        let base = format!("http://127.0.0.1:{}", app.port());
        let metrics_base = app.metrics_port().map(|p| format!("http://127.0.0.1:{p}"));
        actix_web::rt::spawn(app.run_until_stopped());
        TestApp {
            base,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("client"),
            mock,
            root,
            db,
            options_vars: vars,
            cli,
            metrics_base,
        }
    }

    pub fn workspaces(&self) -> PathBuf {
        self.root.path().join("workspaces")
    }

    pub fn workspace(&self, tenant: &str, name: &str) -> PathBuf {
        self.workspaces().join(tenant).join(name)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn get(&self, path: &str, key: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path)).header("X-API-Key", key)
    }

    pub fn post(&self, path: &str, key: &str, body: Value) -> reqwest::RequestBuilder {
        self.client
            .post(self.url(path))
            .header("X-API-Key", key)
            .json(&body)
    }

    pub fn delete(&self, path: &str, key: &str) -> reqwest::RequestBuilder {
        self.client.delete(self.url(path)).header("X-API-Key", key)
    }

    /// Creates a session for `key`'s tenant, asserting 201.
    pub async fn create_session(&self, key: &str, name: &str) -> Value {
        self.create_session_with(key, json!({ "name": name })).await
    }

    pub async fn create_session_with(&self, key: &str, body: Value) -> Value {
        let res = self
            .post("/api/v1/sessions", key, body)
            .send()
            .await
            .expect("request");
        let status = res.status();
        let body: Value = res.json().await.expect("json");
        assert_eq!(status, 201, "create session: {body}");
        body["data"].clone()
    }

    /// Sends a sync chat; returns status and body.
    pub async fn chat(&self, key: &str, session: &str, message: &str) -> (u16, Value) {
        self.chat_value(key, session, json!(message)).await
    }

    /// A chat whose `message` is any JSON (a list of blocks).
    pub async fn chat_value(&self, key: &str, session: &str, message: Value) -> (u16, Value) {
        let res = self
            .post(
                &format!("/api/v1/sessions/{session}/chat"),
                key,
                json!({ "message": message }),
            )
            .send()
            .await
            .expect("request");
        let status = res.status().as_u16();
        (status, res.json().await.expect("json"))
    }

    /// A chat that must succeed; returns `data`.
    pub async fn chat_ok(&self, key: &str, session: &str, message: &str) -> Value {
        let (status, body) = self.chat(key, session, message).await;
        assert_eq!(status, 200, "chat failed: {body}");
        body["data"].clone()
    }

    pub async fn history(&self, key: &str, session: &str) -> Vec<Value> {
        let res = self
            .get(
                &format!("/api/v1/sessions/{session}/history?limit=100"),
                key,
            )
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.expect("json");
        body["data"].as_array().cloned().unwrap_or_default()
    }

    pub async fn health(&self) -> Value {
        self.client
            .get(self.url("/health"))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json")
    }

    /// Creates a job; returns status and body.
    pub async fn create_job(&self, key: &str, session: &str, body: Value) -> (u16, Value) {
        let res = self
            .post(&format!("/api/v1/sessions/{session}/jobs"), key, body)
            .send()
            .await
            .expect("request");
        let status = res.status().as_u16();
        (status, res.json().await.expect("json"))
    }

    pub async fn job(&self, key: &str, session: &str, id: &str) -> Value {
        let res = self
            .get(&format!("/api/v1/sessions/{session}/jobs/{id}"), key)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 200);
        res.json::<Value>().await.expect("json")["data"].clone()
    }

    /// Polls a job until it reaches a final state (or `secs` pass).
    pub async fn wait_job(&self, key: &str, session: &str, id: &str, secs: u64) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let job = self.job(key, session, id).await;
            let status = job["status"].as_str().unwrap_or("").to_string();
            if ["done", "failed", "cancelled", "interrupted"].contains(&status.as_str())
                || std::time::Instant::now() > deadline
            {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn deliveries(&self, key: &str, job_id: &str) -> Vec<Value> {
        let res = self
            .get(&format!("/api/v1/webhooks/deliveries?job_id={job_id}"), key)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 200);
        res.json::<Value>().await.expect("json")["data"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Direct SQL over the test's database, for assertions on rows.
    pub fn query_i64(&self, sql: &str) -> i64 {
        self.db.query_i64(sql)
    }

    /// Direct SQL: the TEXT column `s` of every row of `sql`, in order.
    pub fn query_strings(&self, sql: &str) -> Vec<String> {
        self.db.query_strings(sql)
    }

    /// Runs one SQL statement on the test database.
    pub fn exec(&self, sql: &str) {
        if self.db.is_postgres() {
            let mut c = PgConnection::establish(&self.db.url).expect("pg");
            diesel::sql_query(sql).execute(&mut c).expect("exec");
        } else {
            let mut c = sqlite(&self.db.url);
            diesel::sql_query(sql).execute(&mut c).expect("exec");
        }
    }
}

/// A connection to the test's SQLite database that waits for the server's
/// write lock like the server's own connections do.
fn sqlite(url: &str) -> SqliteConnection {
    let mut c = SqliteConnection::establish(url).expect("sqlite");
    c.batch_execute("PRAGMA busy_timeout = 10000")
        .expect("busy_timeout");
    c
}

/// Holds the test database's write lock (SQLite) or the `events` and
/// `approvals` tables' (PostgreSQL) until dropped: the server's session
/// writes wait meanwhile.
pub struct WriteHold {
    release: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WriteHold {
    /// Returns once the lock is held.
    pub fn take(db: &TestDb) -> WriteHold {
        let (postgres, url) = (db.is_postgres(), db.url.clone());
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            fn hold<C: Connection>(
                c: &mut C,
                lock: &str,
                held: std::sync::mpsc::Sender<()>,
                release: std::sync::mpsc::Receiver<()>,
            ) {
                c.batch_execute(lock).expect("take the lock");
                held.send(()).unwrap();
                let _ = release.recv();
                c.batch_execute("ROLLBACK").expect("release the lock");
            }
            if postgres {
                let mut c = PgConnection::establish(&url).expect("pg");
                hold(
                    &mut c,
                    "BEGIN; LOCK TABLE events, approvals IN EXCLUSIVE MODE",
                    held_tx,
                    release_rx,
                );
            } else {
                let mut c = sqlite(&url);
                hold(&mut c, "BEGIN IMMEDIATE", held_tx, release_rx);
            }
        });
        held_rx.recv().expect("the lock is held");
        WriteHold {
            release: Some(release),
            thread: Some(thread),
        }
    }
}

impl Drop for WriteHold {
    fn drop(&mut self) {
        drop(self.release.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl TestDb {
    /// Every row of `sql`, as `T`.
    pub fn load<T>(&self, sql: &str) -> Vec<T>
    where
        T: QueryableByName<diesel::pg::Pg> + QueryableByName<diesel::sqlite::Sqlite> + 'static,
    {
        if self.is_postgres() {
            let mut c = PgConnection::establish(&self.url).expect("pg");
            diesel::sql_query(sql).load(&mut c).expect("query")
        } else {
            let mut c = sqlite(&self.url);
            diesel::sql_query(sql).load(&mut c).expect("query")
        }
    }

    /// The TEXT column `s` of every row of `sql`, in order.
    pub fn query_strings(&self, sql: &str) -> Vec<String> {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            s: String,
        }
        let rows: Vec<Row> = if self.is_postgres() {
            let mut c = PgConnection::establish(&self.url).expect("pg");
            diesel::sql_query(sql).load(&mut c).expect("query")
        } else {
            let mut c = sqlite(&self.url);
            diesel::sql_query(sql).load(&mut c).expect("query")
        };
        rows.into_iter().map(|r| r.s).collect()
    }

    /// One BIGINT column `n` of the first row of `sql`.
    pub fn query_i64(&self, sql: &str) -> i64 {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let row: Row = if self.is_postgres() {
            let mut c = PgConnection::establish(&self.url).expect("pg");
            diesel::sql_query(sql).get_result(&mut c).expect("query")
        } else {
            let mut c = sqlite(&self.url);
            diesel::sql_query(sql).get_result(&mut c).expect("query")
        };
        row.n
    }
}

/// Stores `ADMIN` as an owner key (the server's administrator) of tenant
/// alice.
pub fn add_admin_key(url: &str) {
    use claude_code_api_core::db::models::tenant::{ensure_key, ApiKey};
    use claude_code_api_core::security::keys::hash_key;
    let pool = claude_code_api_core::db::connect(url).expect("test database");
    let mut conn = pool.get().expect("connection");
    ensure_key(
        &mut conn,
        &ApiKey {
            id: "key_test_admin".into(),
            tenant_id: "alice".into(),
            key_hash: hash_key(ADMIN),
            prefix: ADMIN[..8].into(),
            label: "test admin".into(),
            role: "owner".into(),
            created_at: claude_code_api_core::db::now(),
            revoked_at: None,
            owner_subject: None,
            expires_at: None,
        },
    )
    .expect("admin key");
}

fn build_vars(
    options: &Options,
    root: &Path,
    db: &TestDb,
    mock: &MockModel,
) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        vars.insert(k.to_string(), v);
    };
    set("API_HOST", "127.0.0.1".into());
    set("API_PORT", "0".into());
    set("API_KEYS", format!("alice:{ALICE},bob:{BOB}"));
    set(
        "APPROVED_DIRECTORY",
        root.join("workspaces").to_string_lossy().into_owned(),
    );
    set("DATA_DIR", root.join("data").to_string_lossy().into_owned());
    set("DATABASE_URL", db.url.clone());
    set("PATH", std::env::var("PATH").unwrap_or_default());
    set("HOME", root.join("home").to_string_lossy().into_owned());
    // The model and the server's credential (an option "" unsets one).
    set("ANTHROPIC_BASE_URL", mock.base_url.clone());
    set("ANTHROPIC_API_KEY", "test-key".into());
    set("LOG_LEVEL", "warn".into());
    // Secrets of the server: the agent must never see them.
    set("WEBHOOK_SECRET", WEBHOOK_SECRET.into());
    set("WEBHOOK_ALLOWED_HOSTS", "127.0.0.1".into());
    set("WEBHOOK_RETRY_SCHEDULE_SECONDS", "1,1,1".into());
    set("WEBHOOK_POLL_INTERVAL_MS", "100".into());
    // Tests poll jobs and history for as long as a slow machine needs; the
    // rate-limit tests set their own limit.
    set("RATE_LIMIT_REQUESTS", "1000000".into());
    let cli = match options.cli {
        Cli::Real => real_cli_path(),
        Cli::Fake => claude_code_api_testkit::fake_cli_path(),
    };
    set("CLAUDE_CLI_PATH", cli.to_string_lossy().into_owned());
    // `{mock}` in an option stands for the mock model's base URL.
    for (k, v) in &options.vars {
        set(k, v.replace("{mock}", &mock.base_url));
    }
    vars
}

/// Polls `check` every 100 ms until it holds or `secs` pass.
/// A GET that must answer 200, as JSON.
pub async fn get_json(app: &TestApp, path: &str, key: &str) -> Value {
    let res = app.get(path, key).send().await.unwrap();
    assert_eq!(res.status(), 200, "{path}");
    res.json().await.unwrap()
}

pub async fn eventually<F, Fut>(secs: u64, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Reads an SSE response to its end into `(event, id, data)` triples.
pub async fn read_sse(res: reqwest::Response) -> Vec<(String, String, Value)> {
    let text = res.text().await.expect("sse body");
    parse_sse(&text)
}

pub fn parse_sse(text: &str) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let (mut event, mut id, mut data) = (String::from("message"), String::new(), String::new());
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event: ") {
                event = v.to_string();
            } else if let Some(v) = line.strip_prefix("id: ") {
                id = v.to_string();
            } else if let Some(v) = line.strip_prefix("data: ") {
                data.push_str(v);
            }
        }
        if !data.is_empty() {
            out.push((
                event,
                id,
                serde_json::from_str(&data).unwrap_or(Value::String(data)),
            ));
        }
    }
    out
}

/// Asserts an RFC 9457 problem response and returns its body.
/// A problem answered before the request's body was read (a 413): the
/// server then closes the connection, and the client may lose the answer's
/// body to the reset of its unsent upload; the status always arrives, the
/// document is checked when it came whole.
pub async fn assert_early_problem(res: reqwest::Response, status: u16, kind: &str) {
    assert_eq!(res.status().as_u16(), status, "status");
    if let Ok(body) = res.json::<Value>().await {
        assert_eq!(
            body["type"],
            format!("urn:claude-code-api:problem:{kind}"),
            "{body}"
        );
    }
}

pub async fn assert_problem(res: reqwest::Response, status: u16, kind: &str) -> Value {
    assert_eq!(res.status().as_u16(), status, "status");
    assert!(
        res.headers().contains_key("x-request-id"),
        "X-Request-ID missing"
    );
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_string());
    assert_eq!(ct.as_deref(), Some("application/problem+json"));
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let body: Value = res.json().await.expect("problem json");
    assert_eq!(
        body["type"],
        format!("urn:claude-code-api:problem:{kind}"),
        "{body}"
    );
    assert_eq!(body["status"], status);
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    assert!(body["instance"].is_string(), "{body}");
    assert_eq!(body["request_id"], request_id);
    body
}

/// The tool output in an answer (the mock model echoes its first 500
/// characters after `Tool result: `).
pub fn tool_output(answer: &Value) -> String {
    answer["content"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("Tool result: ")
        .to_owned()
}

/// CLI processes running now, as `/health` counts them.
pub async fn live_processes(app: &TestApp) -> i64 {
    app.health().await["sessions"]["live_processes"]
        .as_i64()
        .unwrap()
}

/// `POST /sessions/{session}/repo` with `working_dir = dir`.
pub async fn set_repo(app: &TestApp, key: &str, session: &str, dir: &str) -> reqwest::Response {
    app.post(
        &format!("/api/v1/sessions/{session}/repo"),
        key,
        json!({ "working_dir": dir }),
    )
    .send()
    .await
    .unwrap()
}

/// `dir` when this user can write there, else a folder of the temporary
/// directory named `fallback` (the suite run as an unprivileged user keeps
/// what it makes out of the root-owned checkout).
pub fn writable_or_temp(dir: PathBuf, fallback: &str) -> PathBuf {
    let probe = dir.join(format!(".writable-{}", std::process::id()));
    let writable = std::fs::create_dir_all(&dir).is_ok() && std::fs::write(&probe, b"").is_ok();
    if writable {
        let _ = std::fs::remove_file(&probe);
        return dir;
    }
    let dir = std::env::temp_dir().join(fallback);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
