//! The README's quick start, as a newcomer runs it: the built binary started
//! with `serve` from a copy of the repository layout, with the README's
//! relative defaults (no `CLAUDE_CLI_PATH`, no `claude` on `PATH`, no
//! `DATA_DIR`, no `API_KEYS`), the key it prints, then the README's first
//! chat against the mock model.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

/// `PATH` without any folder that holds a `claude`, so the server must find
/// the project-local install as a fresh machine would.
fn path_without_claude() -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .filter(|dir| !dir.join("claude").exists())
        .map(|d| d.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

/// A checkout as `scripts/install-cli.sh` leaves it: the repository's
/// folders the server reads, and `.claude-cli/` (linked to this checkout's
/// install rather than downloaded again).
fn repository_copy(dir: &Path) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for folder in ["templates", "config"] {
        copy_dir(&repo.join(folder), &dir.join(folder));
    }
    let install = real_cli_path();
    // …/.claude-cli/node_modules/.bin/claude → …/.claude-cli
    let cli_root: PathBuf = install.ancestors().nth(3).unwrap().to_path_buf();
    std::os::unix::fs::symlink(&cli_root, dir.join(".claude-cli")).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Lines of a child's pipe, read on a thread of their own.
fn lines(pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[actix_web::test]
async fn the_readme_quick_start_answers_its_first_chat() {
    let repo = tempfile::tempdir().unwrap();
    repository_copy(repo.path());
    let home = tempfile::tempdir().unwrap();
    let mock = MockModel::start();
    // `cargo run --release -- serve`, minus cargo: the same binary, the same
    // working directory. API_PORT=0 only because 8000 may be taken here; the
    // model comes from the environment as the README says.
    let mut child = Command::new(env!("CARGO_BIN_EXE_claude-code-api"))
        .arg("serve")
        .current_dir(repo.path())
        .env_clear()
        .env("PATH", path_without_claude())
        .env("HOME", home.path())
        .env("API_PORT", "0")
        .env("ANTHROPIC_BASE_URL", &mock.base_url)
        .env("ANTHROPIC_API_KEY", "test-key")
        .env("CLAUDE_CODE_MAX_RETRIES", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the server binary");
    let stdout = lines(child.stdout.take().unwrap());
    let stderr = lines(child.stderr.take().unwrap());
    let _server = Server(child);

    let mut log = Vec::new();
    let port: u16 = loop {
        let line = stderr
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the server says it listens; its log:\n{}", log.join("\n")));
        log.push(line.clone());
        // The server's own line (actix-server logs a "listening on" too).
        if let Some(port) = line
            .contains(" listening ")
            .then(|| line.split(" port=").nth(1))
            .flatten()
        {
            break port.trim().parse().expect("a port number");
        }
    };
    assert!(
        !log.iter().any(|l| l.contains('\u{1b}')),
        "start-up log has colour codes though stderr is a pipe:\n{}",
        log.join("\n")
    );
    let cli_line = log
        .iter()
        .find(|l| l.contains("Claude Code CLI found"))
        .expect("the log names the CLI");
    let expected_cli = repo.path().join(".claude-cli/node_modules/.bin/claude");
    assert!(
        cli_line.contains(&expected_cli.display().to_string()),
        "{cli_line}"
    );
    let key = loop {
        let line = stdout
            .recv_timeout(Duration::from_secs(10))
            .expect("the generated key is printed");
        if let Some(key) = line.trim().strip_prefix("cca_") {
            break format!("cca_{key}");
        }
    };

    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let health: Value = client
        .get(format!("{base}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        health["checks"]["claude_cli"]["path"],
        expected_cli.display().to_string()
    );
    assert_eq!(
        health["paths"]["data_dir"],
        repo.path()
            .join("data")
            .canonicalize()
            .unwrap()
            .display()
            .to_string()
    );

    let res = client
        .post(format!("{base}/api/v1/sessions"))
        .header("X-API-Key", &key)
        .json(&json!({"name": "demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = client
        .post(format!("{base}/api/v1/sessions/demo/chat"))
        .header("X-API-Key", &key)
        .json(&json!({"message": "Create hello.py that prints hello, then run it"}))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let answer: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{answer}");
    let answer = &answer["data"];
    assert_eq!(answer["is_error"], false);
    assert!(
        answer["content"].as_str().unwrap().contains("hello"),
        "{answer}"
    );
    let tools: Vec<&str> = answer["tools_used"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["Write", "Bash"]);

    let workspace = repo.path().join("workspaces/default/demo");
    assert_eq!(
        std::fs::read_to_string(workspace.join("hello.py")).unwrap(),
        "print(\"hello\")\n"
    );
    let history: Value = client
        .get(format!("{base}/api/v1/sessions/demo/history"))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let roles: Vec<&str> = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant"]);
    assert!(repo.path().join("data/claude-code-api.db").is_file());
}
