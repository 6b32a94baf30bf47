//! The Claude Code CLI driver: how a process is launched (`command`), what
//! its stream-json lines mean (`protocol`), and the process itself with its
//! pipes, process group and stderr tail (`process`), and its transcript file
//! rebuilt from the database (`transcript`). No actor code here.

pub mod command;
pub mod process;
pub mod protocol;
pub mod transcript;

/// Detects the CLI's version (`claude --version`), `None` when it cannot run.
pub async fn detect_version(cli_path: &std::path::Path) -> Option<String> {
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        tokio::process::Command::new(cli_path)
            .arg("--version")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .ok()?
    .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace().next().map(str::to_owned)
}
